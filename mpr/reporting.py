"""Reporters: where a running job's progress and outcome are written.

`StoreReporter` writes the job table directly (the local executor). The lambda executor's reporter
posts the same reports to the signed callback instead.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from mpr.callback import report_body, signed_headers
from mpr.errors import ConflictError, JobFailure, UnauthorizedError
from mpr.jobs import Job, job_from_api

if TYPE_CHECKING:
    from mpr.store import JobStore

logger = logging.getLogger(__name__)

MIN_WRITE_INTERVAL = 1.0  # seconds between progress writes, at most about one a second
CALLBACK_TRIES = 5
CALLBACK_TIMEOUT_SECONDS = 10
# Stop with this much of the Lambda's time left, so that the failure can still be reported.
DEADLINE_MARGIN_SECONDS = 20


class StoreReporter:
    def __init__(self, store: JobStore, job_id: str, attempt: int,
                 on_change: Callable[[Job], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._job_id = job_id
        self._attempt = attempt
        self._on_change = on_change or (lambda job: None)
        self._clock = clock
        self._last_write = float("-inf")
        self._progress = 0

    def start(self) -> Job:
        job = self._store.claim(self._job_id, self._attempt)
        self._last_write = self._clock()
        self._on_change(job)
        return job

    def progress(self, percent: int, force: bool = False) -> bool:
        """Record progress (never backwards) and renew the lease; False once the job is not ours."""
        self._progress = max(self._progress, int(percent))
        now = self._clock()
        if not force and now - self._last_write < MIN_WRITE_INTERVAL:
            return True
        try:
            job = self._store.heartbeat(self._job_id, self._attempt, self._progress)
        except ConflictError:
            return False
        self._last_write = now
        self._on_change(job)
        return True

    def complete(self, result: dict) -> None:
        self._on_change(self._store.complete(self._job_id, self._attempt, result))

    def fail(self, error: str) -> None:
        self._on_change(self._store.fail(self._job_id, self._attempt, error))


class CallbackReporter:
    """The lambda executor's reporter: every report is a signed POST to the job's callback URL."""

    def __init__(self, callback_url: str, job_id: str, attempt: int, token: str,
                 remaining_seconds: Callable[[], float] | None = None, clock: Callable[[], float] = time.monotonic):
        self._url = f"{callback_url.rstrip('/')}/api/jobs/{job_id}/callback"
        self._job_id = job_id
        self._attempt = attempt
        self._token = token
        self._remaining = remaining_seconds or (lambda: float("inf"))
        self._clock = clock
        self._last_write = float("-inf")
        self._progress = 0
        self._runner = uuid.uuid4().hex

    def start(self) -> Job:
        job = job_from_api(self._send("started", runner=self._runner))
        self._last_write = self._clock()
        return job

    def progress(self, percent: int, force: bool = False) -> bool:
        if self._remaining() < DEADLINE_MARGIN_SECONDS:
            raise JobFailure(
                "the FFmpeg Lambda ran out of time before the job finished; run long videos with the local "
                "executor"
            )
        self._progress = max(self._progress, int(percent))
        now = self._clock()
        if not force and now - self._last_write < MIN_WRITE_INTERVAL:
            return True
        try:
            self._send("progress", progress=self._progress)
        except ConflictError:
            return False
        self._last_write = now
        return True

    def complete(self, result: dict) -> None:
        self._send("completed", result=result)

    def fail(self, error: str) -> None:
        self._send("failed", error=error)

    def _send(self, event: str, **fields) -> dict:
        body = report_body(self._attempt, event, **fields)
        for attempt in range(1, CALLBACK_TRIES + 1):
            # Each try is signed afresh: a resent nonce would be refused as a replay.
            request = urllib.request.Request(self._url, data=body, method="POST",  # noqa: S310 - http(s) only
                                             headers=signed_headers(self._token, body))
            try:
                with urllib.request.urlopen(request, timeout=CALLBACK_TIMEOUT_SECONDS) as response:  # noqa: S310
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as error:
                if error.code == 409:
                    raise ConflictError(_message(error), current=None) from None
                if error.code == 401:
                    raise UnauthorizedError(_message(error)) from None
                if error.code < 500 or attempt == CALLBACK_TRIES:
                    raise
            except urllib.error.URLError:
                if attempt == CALLBACK_TRIES:
                    raise
            logger.debug("callback retry", extra={"job_id": self._job_id, "event": event, "try": attempt})
            time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return json.loads(error.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"callback answered {error.code}"
