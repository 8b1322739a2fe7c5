"""The job table: every state transition is one conditional write. The only module that imports pynamodb.

A writer that loses a race gets a ConflictError naming the state it found, never a silent overwrite.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError, QueryError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from mpr.errors import ConflictError, NotFoundError, ValidationError
from mpr.jobs import Job, JobStatus, iso, parse_iso, utc_now
from mpr.settings import Settings

logger = logging.getLogger(__name__)

# NOTE: every job shares one partition of the by_created index so that listing all jobs newest
# first is a Query, not a Scan. That partition takes about 1,000 writes a second, far above what a
# transcoding service creates; a busier deployment would shard list_pk by day.
LIST_PARTITION = "JOB"
MAX_PAGE = 100
PAGE_KEY_ATTRIBUTES = {"id", "created_key", "list_pk", "status"}


class ByStatus(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class ByCreated(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_created"
        projection = AllProjection()

    list_pk = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class JobRecord(Model):
    class Meta:
        table_name = "mpr-jobs"
        region = "us-east-1"
        billing_mode = "PAY_PER_REQUEST"

    id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute()
    operation = UnicodeAttribute()
    source = UnicodeAttribute()
    output = UnicodeAttribute()
    preset = UnicodeAttribute(null=True)
    trim = JSONAttribute(null=True)
    progress = NumberAttribute(default=0)
    attempt = NumberAttribute(default=1)
    executor = UnicodeAttribute()
    error = UnicodeAttribute(null=True)
    result = JSONAttribute(null=True)
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    finished_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute()
    lease_expires = NumberAttribute(null=True)
    dispatched_at = NumberAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    runner = UnicodeAttribute(null=True)
    list_pk = UnicodeAttribute(default=LIST_PARTITION)
    created_key = UnicodeAttribute()

    by_status = ByStatus()
    by_created = ByCreated()


class CallbackNonce(Model):
    """A callback nonce seen recently; kept in the idempotency table until the signing window closes."""

    class Meta:
        table_name = "mpr-idempotency"
        region = "us-east-1"

    id = UnicodeAttribute(hash_key=True)
    expiration = NumberAttribute()


def _point(model: type[Model], table: str, settings: Settings) -> None:
    meta = model.Meta
    if (meta.table_name, getattr(meta, "host", None), meta.region) != (
        table, settings.dynamodb_endpoint, settings.region,
    ):
        meta.table_name = table
        meta.host = settings.dynamodb_endpoint
        meta.region = settings.region
        model._connection = None


def configure(settings: Settings) -> None:
    """Point the models at the configured tables and endpoint; call before the first request."""
    _point(JobRecord, settings.job_table, settings)
    _point(CallbackNonce, settings.idempotency_table, settings)


def create_tables(settings: Settings) -> None:
    """Create the job table (the local stack; in AWS the CDK app owns it). The idempotency table too."""
    configure(settings)
    if not JobRecord.exists():
        JobRecord.create_table(wait=True)
    _create_idempotency_table(settings)


def _create_idempotency_table(settings: Settings) -> None:
    import boto3

    client = boto3.client("dynamodb", region_name=settings.region, endpoint_url=settings.dynamodb_endpoint)
    if settings.idempotency_table in client.list_tables().get("TableNames", []):
        return
    client.create_table(
        TableName=settings.idempotency_table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )


def to_job(record: JobRecord) -> Job:
    return Job(
        id=record.id, status=JobStatus(record.status), operation=record.operation, source=record.source,
        output=record.output, preset=record.preset, trim=record.trim, progress=int(record.progress or 0),
        attempt=int(record.attempt or 1), executor=record.executor, error=record.error, result=record.result,
        created_at=parse_iso(record.created_at), started_at=parse_iso(record.started_at),
        finished_at=parse_iso(record.finished_at), updated_at=parse_iso(record.updated_at),
        lease_expires=record.lease_expires, dispatched_at=record.dispatched_at, runner=record.runner,
        execution_arn=record.execution_arn,
    )


def encode_token(key: dict | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_token(token: str | None) -> dict | None:
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise ValidationError("next_token", "next_token is not a token this API returned") from None
    if not _is_page_key(key):
        raise ValidationError("next_token", "next_token is not a token this API returned")
    return key


def _is_page_key(key: object) -> bool:
    """A page key as DynamoDB hands it out: a few known string attributes in wire form."""
    if not isinstance(key, dict) or "id" not in key or not set(key) <= PAGE_KEY_ATTRIBUTES:
        return False
    return all(isinstance(value, dict) and list(value) == ["S"] and isinstance(value["S"], str)
               for value in key.values())


class JobStore:
    def __init__(self, settings: Settings):
        self.settings = settings
        configure(settings)

    def create(self, job: Job) -> Job:
        record = JobRecord(
            job.id, status=job.status.value, operation=job.operation, source=job.source, output=job.output,
            preset=job.preset, trim=job.trim, progress=0, attempt=job.attempt, executor=job.executor,
            created_at=iso(job.created_at), updated_at=iso(job.updated_at), created_key=job.id,
        )
        try:
            record.save(condition=JobRecord.id.does_not_exist())
        except PutError as error:
            if _lost_condition(error):
                raise ConflictError(f"job {job.id} already exists") from None
            raise
        return to_job(record)

    def get(self, job_id: str) -> Job:
        try:
            return to_job(JobRecord.get(job_id, consistent_read=True))
        except DoesNotExist:
            raise NotFoundError(f"job {job_id} does not exist") from None

    def _transition(self, job_id: str, actions: list, condition, action_name: str) -> Job:
        now = iso(utc_now())
        record = JobRecord(job_id)
        try:
            record.update(actions=[*actions, JobRecord.updated_at.set(now)],
                          condition=JobRecord.id.exists() & condition)
        except UpdateError as error:
            if not _lost_condition(error):
                raise
            current = self.get(job_id)
            raise ConflictError(
                f"cannot {action_name} job {job_id}: it is {current.status.value}", current=current
            ) from None
        return to_job(record)

    def claim(self, job_id: str, attempt: int, runner: str | None = None) -> Job:
        """PENDING → PROCESSING for this attempt; the worker then holds a lease it must renew."""
        actions = [
            JobRecord.status.set(JobStatus.PROCESSING.value),
            JobRecord.started_at.set(iso(utc_now())),
            JobRecord.lease_expires.set(time.time() + self.settings.lease_seconds),
        ]
        if runner:
            actions.append(JobRecord.runner.set(runner))
        return self._transition(job_id, actions,
                                (JobRecord.status == JobStatus.PENDING.value) & (JobRecord.attempt == attempt), "start")

    def heartbeat(self, job_id: str, attempt: int, progress: int) -> Job:
        """Record progress and renew the lease; a ConflictError means the job is no longer this worker's."""
        progress = max(0, min(99, int(progress)))
        lease = JobRecord.lease_expires.set(time.time() + self.settings.lease_seconds)
        not_lower = (JobRecord.progress <= progress) | JobRecord.progress.does_not_exist()
        try:
            return self._transition(job_id, [JobRecord.progress.set(progress), lease],
                                    _running(attempt) & not_lower, "update progress of")
        except ConflictError as error:
            current = error.current
            if current is None or current.status is not JobStatus.PROCESSING or current.attempt != attempt:
                raise
        # NOTE: a report older than one already recorded (a callback's slow first try, delivered after
        # its resend and later reports) renews the lease but leaves progress: it only grows in an attempt.
        return self._transition(job_id, [lease], _running(attempt), "update progress of")

    def complete(self, job_id: str, attempt: int, result: dict) -> Job:
        return self._transition(job_id, [
            JobRecord.status.set(JobStatus.COMPLETED.value), JobRecord.progress.set(100),
            JobRecord.result.set(result), JobRecord.finished_at.set(iso(utc_now())),
            JobRecord.lease_expires.remove(),
        ], _running(attempt), "complete")

    def fail(self, job_id: str, attempt: int, error: str, lease_expired_before: float | None = None) -> Job:
        condition = _running(attempt)
        if lease_expired_before is not None:
            condition = condition & (JobRecord.lease_expires < lease_expired_before)
        return self._transition(job_id, [
            JobRecord.status.set(JobStatus.FAILED.value), JobRecord.error.set(error),
            JobRecord.finished_at.set(iso(utc_now())), JobRecord.lease_expires.remove(),
        ], condition, "fail")

    def cancel(self, job_id: str) -> Job:
        return self._transition(job_id, [
            JobRecord.status.set(JobStatus.CANCELLED.value), JobRecord.finished_at.set(iso(utc_now())),
            JobRecord.lease_expires.remove(),
        ], JobRecord.status.is_in(JobStatus.PENDING.value, JobStatus.PROCESSING.value), "cancel")

    def retry(self, job_id: str) -> Job:
        """FAILED → PENDING with the next attempt number; the last error is cleared."""
        return self._transition(job_id, [
            JobRecord.status.set(JobStatus.PENDING.value), JobRecord.attempt.add(1),
            JobRecord.progress.set(0), JobRecord.error.remove(), JobRecord.result.remove(),
            JobRecord.started_at.remove(), JobRecord.finished_at.remove(),
            JobRecord.execution_arn.remove(), JobRecord.runner.remove(), JobRecord.dispatched_at.remove(),
        ], JobRecord.status == JobStatus.FAILED.value, "retry")

    def mark_dispatched(self, job_id: str, attempt: int, execution_arn: str | None = None) -> None:
        """Bookkeeping, not a transition: when (and as which execution) the job was last sent."""
        actions = [JobRecord.dispatched_at.set(time.time())]
        if execution_arn:
            actions.append(JobRecord.execution_arn.set(execution_arn))
        try:
            JobRecord(job_id).update(actions=actions, condition=JobRecord.attempt == attempt)
        except UpdateError as error:
            if not _lost_condition(error):
                raise

    def remember_nonce(self, nonce: str, keep_seconds: float) -> bool:
        """True the first time a nonce is seen; False for a replay."""
        try:
            CallbackNonce(f"callback-nonce#{nonce}", expiration=int(time.time() + keep_seconds)).save(
                condition=CallbackNonce.id.does_not_exist()
            )
        except PutError as error:
            if _lost_condition(error):
                return False
            raise
        return True

    def list(self, status: JobStatus | None, limit: int, token: str | None) -> tuple[list[Job], str | None]:
        limit = max(1, min(MAX_PAGE, limit))
        start = decode_token(token)
        if status is None:
            results = JobRecord.by_created.query(LIST_PARTITION, scan_index_forward=False, limit=limit,
                                                 page_size=limit, last_evaluated_key=start)
        else:
            results = JobRecord.by_status.query(status.value, scan_index_forward=False, limit=limit,
                                                page_size=limit, last_evaluated_key=start)
        try:
            jobs = [to_job(record) for record in results]
        except QueryError as error:
            if start is not None and getattr(error, "cause_response_code", "") == "ValidationException":
                raise ValidationError("next_token", "next_token is not a token this API returned") from None
            raise
        return jobs, encode_token(results.last_evaluated_key) if len(jobs) == limit else None

    def in_status(self, status: JobStatus, limit: int = MAX_PAGE) -> list[Job]:
        """Oldest first: what the reaper looks at."""
        return [to_job(r) for r in JobRecord.by_status.query(status.value, scan_index_forward=True, limit=limit)]


def _running(attempt: int):
    return (JobRecord.status == JobStatus.PROCESSING.value) & (JobRecord.attempt == attempt)


def _lost_condition(error: Exception) -> bool:
    return getattr(error, "cause_response_code", None) == "ConditionalCheckFailedException"
