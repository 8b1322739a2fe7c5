"""Cancel, retry, races, idempotency, listing and the reaper, against the real local stack."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from ulid import ULID

from mpr.errors import ConflictError
from mpr.jobs import Job, JobStatus
from mpr.service import JobService
from mpr.store import JobStore
from tests.integration.support import Api, stored_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(local_stack, stack_settings) -> Api:
    return Api(local_stack.env()["MPR_CALLBACK_URL"], stack_settings)


@pytest.fixture(scope="module")
def store(stack_settings) -> JobStore:
    return JobStore(stack_settings)


def race(*calls):
    """Run the calls at the same instant; return each one's result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def runner(index, call):
        barrier.wait()
        try:
            outcomes[index] = call()
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_cancel_of_pending_job_is_immediate_and_final(api, store):
    job = stored_job(store, api.settings)

    first = api.http.post(f"/api/jobs/{job.id}/cancel")
    second = api.http.post(f"/api/jobs/{job.id}/cancel")

    assert first.status_code == 200 and first.json()["status"] == "CANCELLED"
    assert second.status_code == 409 and "CANCELLED" in second.json()["error"]["message"]


def test_retry_of_failed_job_runs_the_next_attempt(api):
    # Given a job that failed because its upload was empty
    source = api.upload("zero_bytes.mp4")
    failed = api.run({"source": source, "operation": "transcode", "preset": "mp4-480p"})
    assert failed["status"] == "FAILED"
    bucket, _, key = source.removeprefix("s3://").partition("/")

    # When the user uploads the real file to the same key and retries
    api.s3.upload_file(str(Path(__file__).resolve().parents[2] / "media" / "normal_h264_aac.mp4"), bucket, key)
    retried = api.http.post(f"/api/jobs/{failed['id']}/retry")

    # Then the same job runs again as attempt 2 and completes
    assert retried.status_code == 200
    assert retried.json()["status"] == "PENDING" and retried.json()["attempt"] == 2
    assert retried.json()["error"] is None
    done = api.wait(failed["id"])
    assert done["status"] == "COMPLETED" and done["attempt"] == 2


def test_retry_is_refused_unless_failed(api, store):
    job = stored_job(store, api.settings)

    response = api.http.post(f"/api/jobs/{job.id}/retry")

    assert response.status_code == 409
    assert "PENDING" in response.json()["error"]["message"]


@pytest.mark.parametrize("round_", range(5))
def test_two_racing_claims_have_exactly_one_winner(store, stack_settings, round_):
    job = stored_job(store, stack_settings)

    outcomes = race(lambda: store.claim(job.id, 1), lambda: store.claim(job.id, 1))

    winners = [o for o in outcomes if isinstance(o, Job)]
    losers = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(winners) == 1 and len(losers) == 1
    assert store.get(job.id).status is JobStatus.PROCESSING


@pytest.mark.parametrize("round_", range(5))
def test_cancel_racing_completion_has_exactly_one_winner(store, stack_settings, round_):
    job = stored_job(store, stack_settings, JobStatus.PROCESSING)

    cancel, complete = race(lambda: store.cancel(job.id), lambda: store.complete(job.id, 1, {"size": 1}))

    assert isinstance(cancel, Job) != isinstance(complete, Job)
    final = store.get(job.id).status
    assert final is (JobStatus.CANCELLED if isinstance(cancel, Job) else JobStatus.COMPLETED)


def test_stale_attempt_cannot_write_after_retry(store, stack_settings):
    job = stored_job(store, stack_settings, JobStatus.PROCESSING)
    store.fail(job.id, 1, "boom")
    store.retry(job.id)

    with pytest.raises(ConflictError):
        store.heartbeat(job.id, 1, 50)
    with pytest.raises(ConflictError):
        store.claim(job.id, 1)
    assert store.claim(job.id, 2).status is JobStatus.PROCESSING


def test_reaper_fails_a_job_whose_worker_went_silent(store, stack_settings):
    # Given a PROCESSING job whose lease has run out
    job = stored_job(store, stack_settings, JobStatus.PROCESSING)
    service = JobService(stack_settings, store=store)

    # When the reaper runs after the lease
    service.reap(now=time.time() + stack_settings.lease_seconds + 1)

    # Then the job is FAILED with a reason, not PROCESSING forever
    reaped = store.get(job.id)
    assert reaped.status is JobStatus.FAILED
    assert "stopped responding" in reaped.error


def test_reaper_leaves_a_job_with_a_live_lease(store, stack_settings):
    job = stored_job(store, stack_settings, JobStatus.PROCESSING)
    service = JobService(stack_settings, store=store)

    service.reap(now=time.time())

    assert store.get(job.id).status is JobStatus.PROCESSING


def test_idempotency_key_returns_the_first_job(api):
    source = api.upload("zero_bytes.mp4")
    body = {"source": source, "operation": "transcode", "preset": "mp4-480p"}
    key = f"key-{ULID()}"

    first = api.create(body, **{"Idempotency-Key": key})
    again = api.create(body, **{"Idempotency-Key": key})
    changed = api.create({**body, "preset": "mp4-720p"}, **{"Idempotency-Key": key})

    assert first.status_code == 201 and again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert changed.status_code == 422 and "Idempotency-Key" in changed.json()["error"]["message"]


def test_listing_is_newest_first_paginated_and_filtered(api, store):
    made = [stored_job(store, api.settings).id for _ in range(3)]
    api.http.post(f"/api/jobs/{made[1]}/cancel")

    page = api.http.get("/api/jobs", params={"limit": 2}).json()
    rest = api.http.get("/api/jobs", params={"limit": 2, "next_token": page["next_token"]}).json()
    cancelled = api.http.get("/api/jobs", params={"status": "CANCELLED", "limit": 100}).json()

    assert [job["id"] for job in page["items"]] == [made[2], made[1]]
    assert rest["items"][0]["id"] == made[0]
    assert made[1] in [job["id"] for job in cancelled["items"]]
    assert {job["status"] for job in cancelled["items"]} == {"CANCELLED"}


def test_bad_requests_name_the_field(api):
    source = api.upload("zero_bytes.mp4")
    cases = [
        ({"source": source, "operation": "trim", "trim": {"start": 3, "end": 1}}, "trim.end"),
        ({"source": "s3://someone-else/x.mp4", "operation": "transcode", "preset": "mp4-480p"}, "source"),
        ({"source": source, "operation": "transcode", "preset": "mp4-480p", "extra": 1}, "extra"),
        ({"source": source, "operation": "transcode", "preset": "-vf drawtext"}, "preset"),
    ]
    for body, field in cases:
        response = api.create(body)
        assert response.status_code == 422, response.text
        assert field in response.json()["error"]["message"]
    assert api.http.get("/api/jobs", params={"status": "DONE"}).status_code == 422
    assert api.http.get("/api/jobs", params={"next_token": "garbage"}).status_code == 422
    assert api.http.get(f"/api/jobs/{ULID()}").status_code == 404



def test_concurrent_requests_each_get_their_own_job(api, store):
    # Given several jobs, and the gateway serving requests on a thread pool
    jobs = [stored_job(store, api.settings).id for _ in range(4)]
    wanted = jobs * 6
    answers = [None] * len(wanted)

    def fetch(index):
        answers[index] = api.http.get(f"/api/jobs/{wanted[index]}").json().get("id")

    # When they are all asked for at once
    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(wanted))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every answer is the job that request asked for, never another request's
    assert answers == wanted
