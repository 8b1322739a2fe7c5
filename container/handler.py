"""The FFmpeg Lambda: runs one attempt of one job and reports through the signed callback.

Two kinds of event come from the state machine:
- the execution input, `{"job_id", "attempt", "callback_url", "callback_token"}`: do the job;
- the same with `"failure": {"Error": ..., "Cause": ...}` from the state machine's catch: the run
  crashed or timed out, so report the job FAILED with a reason.
"""

from __future__ import annotations

from mpr import processing
from mpr.logs import service_logger
from mpr.reporting import CallbackReporter
from mpr.settings import get_settings
from mpr.storage import MediaStorage

logger = service_logger()

TIMEOUT_ERRORS = ("States.Timeout", "Sandbox.Timedout")


def failure_message(failure: dict) -> str:
    """A sentence for the job's `error`, from what Step Functions caught."""
    error = str(failure.get("Error") or "")
    if error in TIMEOUT_ERRORS or "Timeout" in error or "timed out" in str(failure.get("Cause") or ""):
        return "the FFmpeg Lambda timed out before the job finished; run long videos with the local executor"
    return f"the FFmpeg Lambda stopped unexpectedly ({error or 'unknown error'}); retry the job"


def reporter_for(event: dict, context) -> CallbackReporter:
    remaining = (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
    return CallbackReporter(event["callback_url"], event["job_id"], int(event["attempt"]),
                            event["callback_token"], remaining_seconds=remaining)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context) -> dict:
    logger.append_keys(job_id=event.get("job_id"), attempt=event.get("attempt"))
    reporter = reporter_for(event, context)
    if "failure" in event:
        reporter.fail(failure_message(event["failure"] or {}))
        return {"job_id": event["job_id"], "reported": "failed"}
    settings = get_settings()
    # A Lambda container runs one invocation at a time: job folders in /tmp now are from a run that
    # was killed (timeout, out of memory) and would otherwise fill the scratch disk of warm containers.
    processing.clear_stale_scratch(settings)
    job = processing.run(reporter, MediaStorage(settings), settings)
    return {"job_id": event["job_id"], "ran": job is not None}
