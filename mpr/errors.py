"""Domain errors. Each one maps to one HTTP status and API error code here, and nowhere else.

Errors raised while a job runs carry a sentence a user can act on; it becomes the job's `error`.
"""

from __future__ import annotations


class MprError(Exception):
    """Base of every error the service explains to a user."""

    http_status = 500
    code = "internal_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationError(MprError):
    http_status = 422
    code = "validation_error"

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field and not message.startswith(field) else message)
        self.field = field


class NotFoundError(MprError):
    http_status = 404
    code = "not_found"


class ConflictError(MprError):
    """A state transition that is not allowed from the job's current state, or lost a race."""

    http_status = 409
    code = "conflict"

    def __init__(self, message: str, current=None):
        super().__init__(message)
        self.current = current  # the job as the losing writer found it, when known


class UnauthorizedError(MprError):
    http_status = 401
    code = "unauthorized"


class DispatchError(MprError):
    http_status = 503
    code = "dispatch_unavailable"


class ExecutionEndedError(DispatchError):
    """The attempt's one execution has already ended, yet the job never started: it cannot run again."""


class JobFailure(MprError):
    """Raised while processing: the job ends FAILED with this message as its `error`."""

    code = "job_failed"


class InputError(JobFailure):
    """The source cannot be processed as asked (empty, not media, missing streams, trim past the end)."""


class FfmpegError(JobFailure):
    """FFmpeg exited with an error; `stderr_tail` keeps its last lines for the logs."""

    def __init__(self, message: str, stderr_tail: str = ""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


class OutputCheckError(JobFailure):
    """The produced file is not what was asked for; nothing is published."""


class StorageError(JobFailure):
    """Reading the source or writing the output failed."""


class JobCancelled(MprError):
    """The job was cancelled (or moved on to another attempt) while this worker ran it."""

    http_status = 409
    code = "cancelled"


class SourceMissingError(StorageError):
    """The source object does not exist."""
