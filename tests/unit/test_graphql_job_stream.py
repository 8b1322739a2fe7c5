"""The job-stream Lambda: which stream records become publishJobUpdate calls, and how they are signed."""

from __future__ import annotations

import dataclasses
import io
import json
import urllib.request

import pytest
from botocore.credentials import Credentials

from functions import job_stream
from mpr.jobs import Job, JobStatus, iso
from mpr.store import JobRecord
from tests.unit.graphql_support import make_job

URL = "https://example0123.appsync-api.us-east-1.amazonaws.com/graphql"


def image(job: Job) -> dict:
    """The job as the table's stream shows it: DynamoDB JSON."""
    record = JobRecord(
        job.id, status=job.status.value, operation=job.operation, source=job.source, output=job.output,
        preset=job.preset, trim=job.trim, progress=job.progress, attempt=job.attempt, executor=job.executor,
        error=job.error, result=job.result, created_at=iso(job.created_at), started_at=iso(job.started_at),
        finished_at=iso(job.finished_at), updated_at=iso(job.updated_at), lease_expires=job.lease_expires,
        created_key=job.id,
    )
    return record.serialize()


def modified(old: Job | None, new: Job | None) -> dict:
    change = {}
    if old is not None:
        change["OldImage"] = image(old)
    if new is not None:
        change["NewImage"] = image(new)
    event_name = "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY")
    return {"eventName": event_name, "dynamodb": change}


class RecordingOpener:
    """Stands in for urllib's opener: keeps each request, answers with a fixed GraphQL body."""

    def __init__(self, answer: dict):
        self.answer = answer
        self.requests: list[urllib.request.Request] = []

    def open(self, request: urllib.request.Request, timeout: float):
        self.requests.append(request)
        return io.BytesIO(json.dumps(self.answer).encode())


def publisher(answer: dict | None = None) -> tuple[job_stream.AppSyncPublisher, RecordingOpener]:
    opener = RecordingOpener(answer or {"data": {"publishJobUpdate": {"id": "01JOB"}}})
    credentials = Credentials("AKIDEXAMPLE", "secret-example")
    return job_stream.AppSyncPublisher(URL, "us-east-1", credentials=credentials, opener=opener), opener


def test_new_job_is_published():
    job = make_job()

    assert job_stream.changed_job(modified(None, job)) == job


def test_progress_change_is_published():
    before = make_job(status=JobStatus.PROCESSING, progress=10)
    after = dataclasses.replace(before, progress=11)

    assert job_stream.changed_job(modified(before, after)).progress == 11


def test_lease_renewal_without_visible_change_is_skipped():
    before = make_job(status=JobStatus.PROCESSING, progress=10, lease_expires=100.0)
    after = dataclasses.replace(before, lease_expires=160.0, updated_at=before.updated_at.replace(year=2031))

    assert job_stream.changed_job(modified(before, after)) is None


def test_removed_job_is_skipped():
    assert job_stream.changed_job(modified(make_job(), None)) is None


def test_image_becomes_the_job_it_was_written_from():
    job = make_job(status=JobStatus.COMPLETED, operation="trim", preset=None, progress=100,
                   trim={"start": 1.0, "end": 2.5, "mode": "fast"}, result={"size": 5, "actual_start": 0.96})

    assert job_stream.changed_job(modified(None, job)).to_api() == job.to_api()


def test_batch_keeps_the_last_change_of_each_job_in_stream_order():
    first, second = make_job("01A", JobStatus.PROCESSING, progress=1), make_job("01B")
    records = [modified(None, first), modified(None, second),
               modified(first, dataclasses.replace(first, progress=50))]

    jobs = job_stream.changed_jobs(records)

    assert [(job.id, job.progress) for job in jobs] == [("01B", 0), ("01A", 50)]


def test_publish_is_a_sigv4_signed_mutation_with_the_job_in_schema_names():
    appsync, opener = publisher()
    job = make_job(status=JobStatus.COMPLETED, progress=100, result={"size": 5})

    appsync.publish(job)

    (request,) = opener.requests
    headers = {name.lower(): value for name, value in request.header_items()}
    assert request.full_url == URL and request.get_method() == "POST"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/appsync/aws4_request" in headers["authorization"]
    assert "x-amz-date" in headers
    body = json.loads(request.data)
    assert body["query"] == job_stream.PUBLISH_MUTATION
    assert body["variables"]["job"]["createdAt"] == iso(job.created_at)
    assert json.loads(body["variables"]["job"]["result"]) == {"size": 5}


def test_graphql_errors_in_the_answer_fail_the_publish():
    appsync, _ = publisher({"data": None, "errors": [{"message": "Not Authorized to access publishJobUpdate"}]})

    with pytest.raises(job_stream.PublishError, match="Not Authorized"):
        appsync.publish(make_job())


def test_publisher_refuses_a_url_that_is_not_https():
    with pytest.raises(ValueError, match="https"):
        job_stream.AppSyncPublisher("file:///etc/passwd", "us-east-1", credentials=Credentials("a", "b"))


def test_handler_publishes_each_changed_job_and_survives_a_failed_one(monkeypatch):
    # Given two changed jobs, the first of which AppSync refuses
    appsync, _ = publisher()
    sent: list[str] = []

    def publish(job: Job) -> None:
        sent.append(job.id)
        if job.id == "01A":
            raise job_stream.PublishError("throttled")

    monkeypatch.setattr(appsync, "publish", publish)
    monkeypatch.setattr(job_stream, "publisher", lambda: appsync)
    records = [modified(None, make_job("01A")), modified(None, make_job("01B"))]

    # When the stream delivers them
    outcome = job_stream.handler({"Records": records}, LambdaContextStub())

    # Then both were tried and the batch is not failed
    assert sent == ["01A", "01B"]
    assert outcome == {"published": 1, "failed": 1}


class LambdaContextStub:
    function_name = "mpr-job-stream-test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:mpr-job-stream-test"
    aws_request_id = "test-request"
