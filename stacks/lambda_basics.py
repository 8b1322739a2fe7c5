"""What every MPR Lambda gets: its own log group with retention, and a role that may write to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import nag
from stacks.config import MprConfig


@dataclass(frozen=True)
class LambdaBasics:
    log_group: logs.LogGroup
    role: iam.Role


def build_lambda_basics(scope: Construct, *, config: MprConfig, name: str) -> LambdaBasics:
    """A log group and an execution role for the Lambda called ``name``.

    The role is built here rather than by ``lambda_.Function`` because the default one carries
    the AWSLambdaBasicExecutionRole managed policy, which may create any log group and write to
    any log stream in the account; this role may only write to its own log group.
    """
    log_group = logs.LogGroup(
        scope,
        "LogGroup",
        log_group_name=f"/{config.prefix}/lambda/{name}",
        retention=config.log_retention,
        removal_policy=config.removal_policy,
    )
    role = iam.Role(
        scope,
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"Execution role of the MPR {name} Lambda",
    )
    log_group.grant_write(role)
    return LambdaBasics(log_group=log_group, role=role)


def python_function(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    handler: str,
    code: lambda_.Code,
    memory_mb: int,
    timeout: Duration,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    environment: Mapping[str, str],
    **options: Any,
) -> lambda_.Function:
    """A Lambda running the service's Python package (REST, GraphQL, job stream, reaper).

    NOTE: Python 3.12 on purpose, not the newest runtime: the FFmpeg image is built on
    public.ecr.aws/lambda/python:3.12 and all of them share mpr/ and the same pins; x86_64 because
    `make lambda-package` fetches manylinux x86_64 wheels (pydantic-core).
    """
    return lambda_.Function(
        scope,
        construct_id,
        description=description,
        runtime=lambda_.Runtime.PYTHON_3_12,
        architecture=lambda_.Architecture.X86_64,
        handler=handler,
        code=code,
        memory_size=memory_mb,
        timeout=timeout,
        role=role,
        log_group=log_group,
        tracing=lambda_.Tracing.ACTIVE,
        environment=dict(environment),
        **options,
    )


def suppress_xray_wildcard(role: iam.Role) -> None:
    """Tracing=ACTIVE gives the role xray:PutTraceSegments/PutTelemetryRecords on ``*``."""
    nag.suppress(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray PutTraceSegments and PutTelemetryRecords do not support resource-level "
        "permissions; CDK adds them for tracing=ACTIVE and they can only name Resource '*'.",
    )
