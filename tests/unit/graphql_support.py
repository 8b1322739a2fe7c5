"""Stand-ins for the GraphQL unit tests: a job service held in memory, and the local endpoint over it.

No network: the service answers from a dict and the endpoint runs in-process (Starlette's TestClient).
"""

from __future__ import annotations

import dataclasses

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import functions.graphql
from local import graphql_server
from mpr.errors import ConflictError, NotFoundError
from mpr.jobs import Job, JobStatus
from mpr.specs import CreateJobRequest

BUCKET = "mpr-media"
OUTPUT_URL = "http://127.0.0.1:9/mpr-media/outputs/signed"


def make_job(job_id: str = "01JOB", status: JobStatus = JobStatus.PENDING, **fields) -> Job:
    defaults = {"operation": "transcode", "source": f"s3://{BUCKET}/uploads/a/clip.mp4",
                "output": f"s3://{BUCKET}/outputs/{job_id}/clip.mp4", "preset": "mp4-480p"}
    return Job(id=job_id, status=status, **{**defaults, **fields})


class FakeJobService:
    """JobService's operations as the GraphQL Lambda calls them, with the calls recorded."""

    def __init__(self, *jobs: Job):
        self.jobs = {job.id: job for job in jobs}
        self.calls: list[tuple] = []

    def view(self, job: Job) -> dict:
        return job.to_api(output_url=OUTPUT_URL if job.status is JobStatus.COMPLETED else None)

    def get(self, job_id: str) -> Job:
        self.calls.append(("get", job_id))
        if job_id not in self.jobs:
            raise NotFoundError(f"job {job_id} does not exist")
        return self.jobs[job_id]

    def list(self, status: str | None, limit: int, next_token: str | None) -> tuple[list[Job], str | None]:
        self.calls.append(("list", status, limit, next_token))
        found = [job for job in self.jobs.values() if status in (None, job.status.value)]
        return found[:limit], "next-page" if len(found) > limit else None

    def create(self, request: CreateJobRequest, idempotency_key: str | None = None) -> Job:
        self.calls.append(("create", request, idempotency_key))
        trim = request.trim.model_dump(mode="json") if request.trim else None
        job = make_job("01NEW", operation=request.operation, source=request.source, preset=request.preset, trim=trim)
        self.jobs[job.id] = job
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status not in (JobStatus.PENDING, JobStatus.PROCESSING):
            raise ConflictError(f"cannot cancel job {job_id}: it is {job.status.value}")
        self.jobs[job_id] = dataclasses.replace(job, status=JobStatus.CANCELLED)
        return self.jobs[job_id]

    def retry(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status is not JobStatus.FAILED:
            raise ConflictError(f"cannot retry job {job_id}: it is {job.status.value}")
        self.jobs[job_id] = dataclasses.replace(job, status=JobStatus.PENDING, attempt=job.attempt + 1)
        return self.jobs[job_id]

    def create_upload(self, filename: str) -> dict:
        self.calls.append(("create_upload", filename))
        return {"source": f"s3://{BUCKET}/uploads/01UP/{filename}",
                "upload_url": f"http://127.0.0.1:9/{BUCKET}/uploads/01UP/{filename}?signed", "expires_in": 900}


def install_service(monkeypatch: pytest.MonkeyPatch) -> FakeJobService:
    """Point the GraphQL Lambda at a fake service holding one COMPLETED and one FAILED job."""
    fake = FakeJobService(make_job("01DONE", JobStatus.COMPLETED, progress=100, result={"size": 10}),
                          make_job("01FAIL", JobStatus.FAILED, error="source has no video stream"))
    monkeypatch.setattr(functions.graphql, "service", lambda: fake)
    return fake


def local_client() -> TestClient:
    """The local /graphql routes, served in-process."""
    return TestClient(Starlette(routes=graphql_server.routes))


def post(client: TestClient, query: str, **variables) -> dict:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()
