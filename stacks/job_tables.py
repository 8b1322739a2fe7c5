"""The job table and the table Powertools' idempotency utility keeps its records in."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.config import MprConfig

# Attribute and index names are the contract with mpr's pynamodb models; keep them in step.
JOB_PARTITION_KEY = "id"
BY_STATUS_INDEX = "by_status"
BY_CREATED_INDEX = "by_created"
STATUS_ATTRIBUTE = "status"
LIST_PARTITION_ATTRIBUTE = "list_pk"
CREATED_SORT_ATTRIBUTE = "created_key"
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"


class JobTables(Construct):
    """On-demand tables with point-in-time recovery.

    On-demand because job traffic is bursty and small: there is no steady load to provision for.
    """

    jobs: dynamodb.Table
    idempotency: dynamodb.Table

    def __init__(self, scope: Construct, construct_id: str, *, config: MprConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.jobs = self._build_job_table()
        self.idempotency = self._build_idempotency_table()

    def _common(self) -> dict:
        return {
            "billing_mode": dynamodb.BillingMode.PAY_PER_REQUEST,
            "point_in_time_recovery_specification": dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            "removal_policy": self._config.removal_policy,
            # A retained table should also survive a mistaken "delete table" outside CloudFormation.
            "deletion_protection": not self._config.is_disposable,
        }

    def _build_job_table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            "Jobs",
            table_name=self._config.name("jobs"),
            partition_key=_string(JOB_PARTITION_KEY),
            # GraphQL subscriptions will fan job changes out from this stream.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            **self._common(),
        )
        # Projection ALL: both indexes serve list pages that render whole jobs, and a KEYS_ONLY
        # index would turn every page into one query plus a batch of reads.
        table.add_global_secondary_index(
            index_name=BY_STATUS_INDEX,
            partition_key=_string(STATUS_ATTRIBUTE),
            sort_key=_string(CREATED_SORT_ATTRIBUTE),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        table.add_global_secondary_index(
            index_name=BY_CREATED_INDEX,
            partition_key=_string(LIST_PARTITION_ATTRIBUTE),
            sort_key=_string(CREATED_SORT_ATTRIBUTE),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        return table

    def _build_idempotency_table(self) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            "Idempotency",
            table_name=self._config.name("idempotency"),
            partition_key=_string(IDEMPOTENCY_PARTITION_KEY),
            # Powertools writes an epoch-seconds expiry here; DynamoDB deletes expired records.
            time_to_live_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
            **self._common(),
        )


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
