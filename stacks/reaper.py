"""The reaper: an EventBridge schedule that runs the job service's ``reap`` in its own Lambda.

``reap`` fails PROCESSING jobs whose lease ran out and resends PENDING jobs whose dispatch was
lost (a failed ``StartExecution``). Locally the gateway calls it every 15 s; in AWS this is
the only caller, so without it such a job would stay PENDING for good.

The Lambda runs the REST Lambda's code asset with its environment, so the service it builds is
configured like the API's; its role is narrower than the API's and holds only what ``reap``
calls: the ``by_status`` query, the job reads and conditional updates, ``StartExecution`` for
resends, and the callback secret (each resent execution's input carries a token derived from it).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks import nag
from stacks.config import MprConfig
from stacks.job_tables import BY_STATUS_INDEX
from stacks.lambda_basics import build_lambda_basics, python_function, suppress_xray_wildcard

REAPER_HANDLER = "functions.reaper.handler"
REAPER_MEMORY_MB = 256
# NOTE: under a minute, the shortest schedule interval, so two scheduled runs never overlap.
REAPER_TIMEOUT = Duration.seconds(55)
# What mpr.store issues for reap: in_status queries by_status; fail and mark_dispatched are
# conditional UpdateItems, and a lost condition is explained by a consistent GetItem.
JOB_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
STATUS_INDEX_ACTIONS = ("dynamodb:Query",)


class Reaper(Construct):
    """The reaper Lambda, its log group and role, and the schedule that invokes it."""

    function: lambda_.Function
    log_group: logs.LogGroup
    role: iam.Role
    rule: events.Rule

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MprConfig,
        code: lambda_.Code,
        environment: Mapping[str, str],
        jobs_table: dynamodb.ITable,
        state_machine: sfn.IStateMachine,
        callback_secret: secretsmanager.ISecret,
    ) -> None:
        """``code`` and ``environment`` are the REST Lambda's, the latter with its callback URL."""
        super().__init__(scope, construct_id)
        self._config = config
        basics = build_lambda_basics(self, config=config, name="reaper")
        self.log_group = basics.log_group
        self.role = basics.role
        self.function = self._build_function(code, environment)
        self._grant(jobs_table, state_machine, callback_secret)
        self.rule = self._build_schedule()
        self._suppress()

    def _build_function(
        self, code: lambda_.Code, environment: Mapping[str, str]
    ) -> lambda_.Function:
        return python_function(
            self,
            "Function",
            description="MPR reaper: fails jobs whose lease expired, resends lost dispatches",
            handler=REAPER_HANDLER,
            code=code,
            memory_mb=REAPER_MEMORY_MB,
            timeout=REAPER_TIMEOUT,
            role=self.role,
            log_group=self.log_group,
            environment=environment,
            # The next scheduled run is the retry; Lambda's own async retries would only repeat
            # a failing run within the same minutes.
            retry_attempts=0,
        )

    def _grant(
        self,
        jobs_table: dynamodb.ITable,
        state_machine: sfn.IStateMachine,
        callback_secret: secretsmanager.ISecret,
    ) -> None:
        # NOTE: not RestApi.grant_service: that one adds the media bucket, the idempotency table
        # and StopExecution, none of which reap touches.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(JOB_TABLE_ACTIONS), resources=[jobs_table.table_arn])
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(STATUS_INDEX_ACTIONS),
                resources=[f"{jobs_table.table_arn}/index/{BY_STATUS_INDEX}"],
            )
        )
        state_machine.grant_start_execution(self.role)
        callback_secret.grant_read(self.role)

    def _build_schedule(self) -> events.Rule:
        minutes = self._config.reaper_interval_minutes
        return events.Rule(
            self,
            "Schedule",
            description=f"Runs the MPR reaper every {minutes} min",
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[targets.LambdaFunction(self.function)],
        )

    def _suppress(self) -> None:
        suppress_xray_wildcard(self.role)
        nag.suppress(
            self.function,
            "AwsSolutions-L1",
            "Python 3.12 like the REST Lambda, whose code asset this function runs, and the "
            "FFmpeg container (lambda/python:3.12): one interpreter and one set of wheels.",
        )
