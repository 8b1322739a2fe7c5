"""The operations both APIs call: create, get, list, cancel, retry, upload, and the reaper.

REST and GraphQL handlers are thin: they parse their transport and call one of these.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ulid import ULID

from mpr.callback import WINDOW_SECONDS, CallbackReport, attempt_token, verify
from mpr.dispatch import CeleryDispatcher, Dispatcher, StepFunctionsDispatcher
from mpr.errors import (
    ConflictError,
    DispatchError,
    ExecutionEndedError,
    SourceMissingError,
    UnauthorizedError,
    ValidationError,
)
from mpr.jobs import Job, JobStatus
from mpr.settings import Settings
from mpr.specs import CreateJobRequest, S3Location, default_output, has_control_characters, parse_s3_uri
from mpr.storage import MediaStorage
from mpr.store import MAX_PAGE, JobStore

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
RESEND_PENDING_AFTER_SECONDS = 600
# A job not yet marked as handed over may still be inside its create call; give that a moment.
NEVER_SENT_GRACE_SECONDS = 10
MAX_FILENAME_BYTES = 255
OUTPUTS_PREFIX = "outputs/"


class JobService:
    def __init__(self, settings: Settings, store: JobStore | None = None, storage: MediaStorage | None = None,
                 dispatcher: Dispatcher | None = None, on_change: Callable[[Job], None] | None = None):
        self.settings = settings
        self.store = store or JobStore(settings)
        self.storage = storage or MediaStorage(settings)
        self.dispatcher = dispatcher or default_dispatcher(settings, self.execution_input)
        self.on_change = on_change or (lambda job: None)

    # -- reads -------------------------------------------------------------------------------------

    def view(self, job: Job) -> dict:
        url = None
        if job.status is JobStatus.COMPLETED:
            url = self.storage.presign_get(parse_s3_uri(job.output, "output"))
        return job.to_api(output_url=url)

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def list(self, status: str | None, limit: int, next_token: str | None) -> tuple[list[Job], str | None]:
        wanted = None
        if status:
            try:
                wanted = JobStatus(status.upper())
            except ValueError:
                allowed = ", ".join(state.value for state in JobStatus)
                raise ValidationError("status", f"status must be one of {allowed}") from None
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError("limit", f"limit must be between 1 and {MAX_PAGE}")
        return self.store.list(wanted, limit, next_token)

    # -- writes ------------------------------------------------------------------------------------

    def create(self, request: CreateJobRequest, idempotency_key: str | None = None) -> Job:
        if not idempotency_key:
            return self._create(request)
        from mpr.idempotency import run_once

        job_id = run_once(self.settings, idempotency_key, request.model_dump(mode="json"),
                          lambda: self._create(request).id)
        return self.store.get(job_id)

    def _create(self, request: CreateJobRequest) -> Job:
        source = self._owned(parse_s3_uri(request.source, "source"), "source")
        try:
            self.storage.size_of(source)
        except SourceMissingError as error:
            raise ValidationError("source", error.message) from None
        job_id = str(ULID())
        if request.output:
            output = self._owned(parse_s3_uri(request.output, "output"), "output")
            if not output.key.startswith(OUTPUTS_PREFIX) or output == source:
                raise ValidationError(
                    "output", f"output must be under s3://{self.settings.media_bucket}/{OUTPUTS_PREFIX} and "
                    "must not be the job's source, so that a job never overwrites an upload",
                )
        else:
            output = default_output(self.settings.media_bucket, job_id, source.key, request.output_extension)
        job = Job(
            id=job_id, status=JobStatus.PENDING, operation=request.operation, source=source.uri,
            output=output.uri, preset=request.preset,
            trim=request.trim.model_dump(mode="json") if request.trim else None,
            executor=self.settings.executor,
        )
        job = self.store.create(job)
        logger.info("job created", extra={"job_id": job.id, "operation": job.operation})
        self.on_change(job)
        self._dispatch(job)
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.store.cancel(job_id)
        logger.info("job cancelled", extra={"job_id": job_id})
        self.on_change(job)
        self.dispatcher.stop(job)
        return job

    def retry(self, job_id: str) -> Job:
        job = self.store.retry(job_id)
        logger.info("job retried", extra={"job_id": job_id, "attempt": job.attempt})
        self.on_change(job)
        self._dispatch(job)
        return job

    def callback(self, job_id: str, headers: dict[str, str], body: bytes) -> Job:
        """A report from the lambda executor, signed for this attempt of this job."""
        report = verify(self._callback_key(), job_id, headers, body)
        if not self.store.remember_nonce(report.nonce, 2 * WINDOW_SECONDS):
            raise UnauthorizedError("callback was already received (replayed nonce)")
        try:
            job = self._apply(report)
        except ConflictError as error:
            if _repeated(error.current, report):
                return error.current  # a repeated report changes nothing
            raise
        self.on_change(job)
        return job

    def _apply(self, report: CallbackReport) -> Job:
        if report.event == "started":
            return self.store.claim(report.job_id, report.attempt, runner=report.runner)
        if report.event == "progress":
            return self.store.heartbeat(report.job_id, report.attempt, report.progress)
        if report.event == "completed":
            return self.store.complete(report.job_id, report.attempt, report.result or {})
        message = report.error or "the FFmpeg Lambda failed without a reason; retry the job"
        current = self.store.get(report.job_id)
        if current.status is JobStatus.PENDING and current.attempt == report.attempt:
            # NOTE: the execution died before it could report "started"; the job passes through
            # PROCESSING so that it ends FAILED by allowed transitions only.
            self.on_change(self.store.claim(report.job_id, report.attempt))
        return self.store.fail(report.job_id, report.attempt, message)

    def execution_input(self, job: Job) -> dict:
        """What a Step Functions execution (and so the FFmpeg Lambda) is handed for one attempt."""
        return {
            "job_id": job.id,
            "attempt": job.attempt,
            "callback_url": self.settings.callback_url,
            "callback_token": attempt_token(self._callback_key(), job.id, job.attempt),
        }

    def _callback_key(self) -> str:
        if self.settings.callback_secret:
            return self.settings.callback_secret
        if self.settings.callback_secret_arn:
            from aws_lambda_powertools.utilities.parameters import get_secret

            return str(get_secret(self.settings.callback_secret_arn, max_age=300))
        raise UnauthorizedError("callbacks are not configured: set MPR_CALLBACK_SECRET or MPR_CALLBACK_SECRET_ARN")

    def create_upload(self, filename: str) -> dict:
        name = _safe_filename(filename)
        location = S3Location(self.settings.media_bucket, f"uploads/{ULID()}/{name}")
        return {"source": location.uri, "upload_url": self.storage.presign_put(location),
                "expires_in": self.settings.presign_expires}

    def reap(self, now: float | None = None) -> dict:
        """Fail jobs whose worker stopped renewing its lease; resend jobs whose dispatch was lost."""
        now = time.time() if now is None else now
        failed = resent = 0
        for job in self.store.in_status(JobStatus.PROCESSING):
            if job.lease_expires is not None and job.lease_expires < now:
                message = (f"the worker running attempt {job.attempt} stopped responding; retry the job")
                try:
                    self.on_change(self.store.fail(job.id, job.attempt, message, lease_expired_before=now))
                    failed += 1
                except ConflictError:
                    pass
        for job in self.store.in_status(JobStatus.PENDING):
            if _needs_resend(job, now):
                resent += self._dispatch(job)
        return {"failed": failed, "resent": resent}

    # -- internals ---------------------------------------------------------------------------------

    def _owned(self, location: S3Location, field: str) -> S3Location:
        if location.bucket != self.settings.media_bucket:
            raise ValidationError(
                field, f"{field} must be in the service's bucket s3://{self.settings.media_bucket}/ "
                "(upload through POST /api/uploads)",
            )
        return location

    def _dispatch(self, job: Job) -> bool:
        """Hand the job's attempt to the executor; False when it could not be handed over now."""
        try:
            execution = self.dispatcher.send(job)
        except ExecutionEndedError as error:
            # The job passes through PROCESSING so that it ends FAILED by allowed transitions only.
            try:
                self.on_change(self.store.claim(job.id, job.attempt))
                self.on_change(self.store.fail(job.id, job.attempt, error.message))
            except ConflictError:
                pass  # it started after all, or was cancelled: nothing to end
            return False
        except DispatchError as error:
            # NOTE: the job is already stored PENDING; the reaper resends it, so nothing is lost.
            logger.warning("job left pending", extra={"job_id": job.id, "reason": error.message})
            return False
        self.store.mark_dispatched(job.id, job.attempt, execution)
        return True


def _safe_filename(filename: object) -> str:
    if not isinstance(filename, str) or not filename.strip():
        raise ValidationError("filename", "filename must be a non-empty string")
    name = filename.strip()
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ValidationError("filename", "filename must be a plain file name, without folders")
    if has_control_characters(name):
        raise ValidationError("filename", "filename must not contain control or text-direction characters")
    if len(name.encode()) > MAX_FILENAME_BYTES:
        raise ValidationError("filename", f"filename must be at most {MAX_FILENAME_BYTES} bytes in UTF-8")
    return name


def _needs_resend(job: Job, now: float) -> bool:
    """A PENDING job whose hand-over failed (resent at once, once the executor answers again), or
    whose hand-over succeeded long ago without the job starting (the message or execution was lost)."""
    if job.dispatched_at is None:
        created = job.created_at.timestamp() if job.created_at else 0.0
        return created < now - NEVER_SENT_GRACE_SECONDS
    return job.dispatched_at < now - RESEND_PENDING_AFTER_SECONDS


def _repeated(job: Job | None, report: CallbackReport) -> bool:
    """Is this report one the job has already taken from the same attempt (a resend)?

    A second `started` counts only from the invocation that claimed the job: another invocation of the
    same attempt (a Step Functions retry of an invoke that did run) gets 409 and must not encode it again.
    """
    if job is None or job.attempt != report.attempt:
        return False
    reached = {"started": JobStatus.PROCESSING, "completed": JobStatus.COMPLETED, "failed": JobStatus.FAILED}
    if reached.get(report.event) is not job.status:
        return False
    return report.event != "started" or (report.runner is not None and job.runner == report.runner)


def default_dispatcher(settings: Settings, execution_input=None) -> Dispatcher:
    if settings.executor == "lambda":
        return StepFunctionsDispatcher(settings, execution_input=execution_input)
    return CeleryDispatcher(settings)
