"""The signed callback over HTTP: the local stack's gateway, the real job table, nothing faked.

Each test writes its job straight to the table (no worker knows about it) and then posts what the
FFmpeg Lambda would post, signed as mpr.reporting signs it, or as an attacker or a stale retry would.
"""

from __future__ import annotations

import time

import httpx
import pytest

from mpr.callback import HEADER_SIGNATURE, attempt_token, report_body, signed_headers
from mpr.jobs import Job, JobStatus
from mpr.store import JobStore
from tests.integration.support import stored_job

pytestmark = pytest.mark.integration


class Callbacks:
    """Posts reports to one stack's callback route, signed with any attempt's token."""

    def __init__(self, base_url: str, master_key: str):
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.master_key = master_key

    def headers(self, job_id: str, body: bytes, token_attempt: int = 1, now: float | None = None) -> dict:
        return signed_headers(attempt_token(self.master_key, job_id, token_attempt), body, now=now)

    def post(self, job_id: str, body: bytes, headers: dict) -> httpx.Response:
        return self.http.post(f"/api/jobs/{job_id}/callback", content=body, headers=headers)

    def send(self, job_id: str, attempt: int, event: str, token_attempt: int | None = None,
             **fields) -> httpx.Response:
        body = report_body(attempt, event, **fields)
        return self.post(job_id, body, self.headers(job_id, body, token_attempt or attempt))


@pytest.fixture(scope="module")
def callbacks(local_stack) -> Callbacks:
    env = local_stack.env()
    return Callbacks(env["MPR_CALLBACK_URL"], env["MPR_CALLBACK_SECRET"])


@pytest.fixture(scope="module")
def store(stack_settings) -> JobStore:
    return JobStore(stack_settings)


@pytest.fixture
def pending(store, stack_settings) -> Job:
    return stored_job(store, stack_settings)


@pytest.fixture
def processing(store, stack_settings) -> Job:
    return stored_job(store, stack_settings, JobStatus.PROCESSING)


def test_a_forged_signature_is_answered_401_and_changes_nothing(callbacks, store, pending):
    # Given a report whose signature was not made with the job's token
    body = report_body(1, "started")
    headers = {**callbacks.headers(pending.id, body), HEADER_SIGNATURE: "v1=" + "ab" * 32}

    # When it is posted
    response = callbacks.post(pending.id, body, headers)

    # Then it is refused and the job is untouched
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert store.get(pending.id).status is JobStatus.PENDING


def test_a_report_signed_under_another_key_is_answered_401(callbacks, store, pending):
    body = report_body(1, "started")
    headers = signed_headers(attempt_token("not-the-stack-key", pending.id, 1), body)

    assert callbacks.post(pending.id, body, headers).status_code == 401
    assert store.get(pending.id).status is JobStatus.PENDING


def test_a_stale_timestamp_is_answered_401(callbacks, store, pending):
    # Given a correctly signed report made six minutes ago
    body = report_body(1, "started")
    headers = callbacks.headers(pending.id, body, now=time.time() - 360)

    response = callbacks.post(pending.id, body, headers)

    assert response.status_code == 401
    assert "window" in response.json()["error"]["message"]
    assert store.get(pending.id).status is JobStatus.PENDING


def test_an_exact_replay_is_answered_401(callbacks, store, processing):
    # Given a valid progress report that was accepted
    body = report_body(1, "progress", progress=30)
    headers = callbacks.headers(processing.id, body)
    first = callbacks.post(processing.id, body, headers)
    assert first.status_code == 200, first.text

    # When the same request (same headers, same nonce, same body) arrives again
    again = callbacks.post(processing.id, body, headers)

    # Then it is refused as a replay
    assert again.status_code == 401
    assert "replayed" in again.json()["error"]["message"]


def test_a_valid_started_report_moves_the_job_to_processing(callbacks, store, pending):
    response = callbacks.send(pending.id, 1, "started")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "PROCESSING"
    stored = store.get(pending.id)
    assert stored.status is JobStatus.PROCESSING and stored.started_at is not None


def test_a_repeated_started_report_changes_nothing(callbacks, store, pending):
    # Given a job the Lambda has already reported started
    assert callbacks.send(pending.id, 1, "started", runner="invocation-1").status_code == 200
    before = store.get(pending.id)

    # When the same report comes again from the same invocation, freshly signed (a retried POST)
    time.sleep(1.1)  # so that any write would show in updated_at, which has whole seconds
    again = callbacks.send(pending.id, 1, "started", runner="invocation-1")

    # Then it is answered 200 with the job as it was
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "PROCESSING"
    assert store.get(pending.id) == before


def test_a_second_invocation_of_the_same_attempt_is_told_not_to_run(callbacks, store, pending):
    # Given an attempt one invocation has claimed
    assert callbacks.send(pending.id, 1, "started", runner="invocation-1").status_code == 200

    # When Step Functions retries the invoke and a second invocation reports started
    second = callbacks.send(pending.id, 1, "started", runner="invocation-2")

    # Then it gets 409, so the source is not encoded twice, and the job still belongs to the first
    assert second.status_code == 409
    assert store.get(pending.id).runner == "invocation-1"


def test_a_progress_report_updates_progress(callbacks, store, processing):
    response = callbacks.send(processing.id, 1, "progress", progress=42)

    assert response.status_code == 200, response.text
    assert response.json()["progress"] == 42
    assert store.get(processing.id).progress == 42


def test_a_late_lower_progress_report_does_not_move_progress_back(callbacks, store, processing):
    # Given progress 60 recorded, and a report of 40 that was delayed on the way (a slow first try
    # of a POST the reporter had already sent again)
    assert callbacks.send(processing.id, 1, "progress", progress=60).status_code == 200
    lease_before = store.get(processing.id).lease_expires

    # When the late report arrives
    time.sleep(0.1)
    late = callbacks.send(processing.id, 1, "progress", progress=40)

    # Then it is accepted (the job is still this attempt's) and renews the lease, but progress only grows
    assert late.status_code == 200, late.text
    assert late.json()["progress"] == 60
    stored = store.get(processing.id)
    assert stored.progress == 60
    assert stored.lease_expires > lease_before


def test_completed_after_the_job_was_cancelled_is_answered_409(callbacks, store, processing):
    # Given a running job the user cancelled
    store.cancel(processing.id)

    # When the Lambda reports it completed
    response = callbacks.send(processing.id, 1, "completed", result={"size": 10})

    # Then the late report loses and the job stays CANCELLED
    assert response.status_code == 409
    assert "CANCELLED" in response.json()["error"]["message"]
    assert store.get(processing.id).status is JobStatus.CANCELLED


def test_failed_for_a_pending_job_ends_it_failed_with_the_error(callbacks, store, pending):
    # Given a job whose execution died before it could report started (the state machine's catch)
    error = "the FFmpeg Lambda stopped unexpectedly (Runtime.ExitError); retry the job"

    # When the report task posts failed
    response = callbacks.send(pending.id, 1, "failed", error=error)

    # Then the job is FAILED with that sentence
    assert response.status_code == 200, response.text
    stored = store.get(pending.id)
    assert stored.status is JobStatus.FAILED
    assert stored.error == error
    assert stored.finished_at is not None


def test_the_token_of_attempt_1_cannot_move_attempt_2(callbacks, store, processing):
    # Given attempt 1 failed and the user retried: attempt 2 is PENDING
    store.fail(processing.id, 1, "boom")
    store.retry(processing.id)

    # When the first execution, still holding attempt 1's token, reports for attempt 1 or claims attempt 2
    late = callbacks.send(processing.id, 1, "started")
    impostor = callbacks.send(processing.id, 2, "started", token_attempt=1)

    # Then the late report is a stale transition and the claim on attempt 2 is not signed for it
    assert late.status_code == 409
    assert impostor.status_code == 401
    stored = store.get(processing.id)
    assert (stored.status, stored.attempt) == (JobStatus.PENDING, 2)
    assert callbacks.send(processing.id, 2, "started").status_code == 200
