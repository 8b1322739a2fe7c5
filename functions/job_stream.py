"""The job table's stream to AppSync: each changed job is sent to the IAM-only mutation
publishJobUpdate, because AppSync subscriptions (onJobUpdated) fire on mutations only.

Stream images are DynamoDB JSON, the wire format the job table's pynamodb model reads, so a record
becomes a Job through mpr.store's own conversion (JobRecord.from_raw_data, to_job): this Lambda
imports pynamodb rather than keep a second copy of that mapping. Requests are signed with SigV4
by botocore and sent with urllib; there is no HTTP client dependency.

Publishing is best effort: a lost update costs subscribers one change, never the job, whose state
is in the table (the same rule as mpr/events.py locally).
"""

from __future__ import annotations

import functools
import json
import urllib.request
from typing import Any

import botocore.session
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from functions.graphql_view import job_fields
from mpr.jobs import Job
from mpr.logs import service_logger
from mpr.settings import get_settings
from mpr.store import JobRecord, to_job

logger = service_logger()

JOB_SELECTION = ("id status operation source preset trim { start end mode } output outputUrl "
                 "progress attempt executor error result createdAt startedAt finishedAt updatedAt")
PUBLISH_MUTATION = (
    "mutation PublishJobUpdate($job: JobUpdateInput!) { publishJobUpdate(job: $job) { "
    f"{JOB_SELECTION} }} }}"
)
TIMEOUT_SECONDS = 5.0


class PublishError(Exception):
    """AppSync answered the mutation with errors."""


class AppSyncPublisher:
    """Calls publishJobUpdate on one AppSync API, signed with the function's IAM credentials."""

    def __init__(self, url: str, region: str, credentials=None,
                 opener: urllib.request.OpenerDirector | None = None):
        if not url.startswith("https://"):
            raise ValueError(f"the AppSync URL must be https://, not {url!r}")
        self.url = url
        self.region = region
        self._credentials = credentials or botocore.session.get_session().get_credentials()
        self._opener = opener or urllib.request.build_opener()

    def signed_request(self, job: dict[str, Any]) -> urllib.request.Request:
        body = json.dumps({"query": PUBLISH_MUTATION, "variables": {"job": job}}).encode()
        headers = {"Content-Type": "application/json"}
        request = AWSRequest(method="POST", url=self.url, data=body, headers=headers)
        credentials = self._credentials.get_frozen_credentials()
        SigV4Auth(credentials, "appsync", self.region).add_auth(request)
        # NOTE: __init__ accepts only an https:// URL, so urllib opens no other scheme here.
        return urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=dict(request.headers), method="POST"
        )

    def publish(self, job: Job) -> None:
        request = self.signed_request(job_fields(job.to_api()))
        with self._opener.open(request, timeout=TIMEOUT_SECONDS) as answer:
            errors = json.loads(answer.read()).get("errors")
        if errors:
            raise PublishError("; ".join(str(error.get("message")) for error in errors))


def _job(image: dict | None) -> Job | None:
    return to_job(JobRecord.from_raw_data(image)) if image else None


def _visible(job: Job) -> dict[str, Any]:
    # NOTE: updated_at alone changes on lease renewals with the same progress; that is no news.
    view = job.to_api()
    view.pop("updated_at")
    return view


def changed_job(record: dict) -> Job | None:
    """The job a stream record leaves behind, or None when a subscriber would see no change."""
    change = record.get("dynamodb") or {}
    new = _job(change.get("NewImage"))
    if new is None:
        return None
    old = _job(change.get("OldImage"))
    return new if old is None or _visible(old) != _visible(new) else None


def changed_jobs(records: list[dict]) -> list[Job]:
    """The last change of each job in a batch, in stream order; earlier ones are already stale."""
    latest: dict[str, Job] = {}
    for record in records:
        job = changed_job(record)
        if job is not None:
            latest.pop(job.id, None)
            latest[job.id] = job
    return list(latest.values())


@functools.cache
def publisher() -> AppSyncPublisher:
    settings = get_settings()
    if not settings.graphql_url:
        raise RuntimeError("MPR_GRAPHQL_URL is not set; the stream Lambda has nowhere to publish")
    return AppSyncPublisher(settings.graphql_url, settings.region)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    jobs = changed_jobs(event.get("Records") or [])
    failed = 0
    for job in jobs:
        try:
            publisher().publish(job)
        except (OSError, ValueError, PublishError) as error:
            failed += 1
            logger.warning("publish failed", extra={"job_id": job.id, "error": str(error)})
    logger.debug("jobs published", extra={"published": len(jobs) - failed, "failed": failed})
    return {"published": len(jobs) - failed, "failed": failed}
