"""The REST API: API Gateway proxying ``/api`` and ``/api/{proxy+}`` to the API Lambda.

Packaging without Docker: CDK's Python bundling runs pip inside a container, which this
project cannot rely on (no Docker engine in CI, and synth must not need one). Instead
``make lambda-package`` runs ``pip install --target <api_package_dir>`` for Lambda's platform
(manylinux x86_64, CPython 3.12, wheels only) and copies ``mpr/`` and ``functions/`` next to the
dependencies. When that directory exists it is the Lambda's code asset. When it does not (a
plain ``python app.py`` or a test run), the asset is the repository's ``mpr/`` and ``functions/``
alone, and synth records a warning: such a Lambda would lack Powertools, pydantic, pynamodb and
python-ulid at run time, so ``cdk deploy`` must follow ``make lambda-package``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Annotations, ArnFormat, Aws, Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks import nag
from stacks.config import MprConfig
from stacks.lambda_basics import build_lambda_basics, python_function, suppress_xray_wildcard

API_HANDLER = "functions.api.handler"
API_ROOT_PATH = "api"
# Git-style patterns (IgnoreMode.GIT): ignore everything at the top, then re-admit the
# runtime code. Anything new at the repo root stays out of the zip unless named here.
SOURCE_ASSET_PATTERNS = [
    "/*",
    "!/mpr/",
    "!/functions/",
    "!/requirements.txt",
    "__pycache__/",
    "*.pyc",
]
PACKAGE_MISSING_WARNING = "mpr:ApiPackageMissing"


@dataclass(frozen=True)
class ServiceResources:
    """What the job service (mpr.service) uses, whichever Lambda hosts it."""

    jobs_table: dynamodb.ITable
    idempotency_table: dynamodb.ITable
    bucket: s3.IBucket
    state_machine: sfn.IStateMachine
    callback_secret: secretsmanager.ISecret


class RestApi(Construct):
    """API Gateway REST API + the Python API Lambda behind it.

    ``code``, ``environment`` and ``grant_service`` are public so that another Lambda hosting
    the same job service (the GraphQL resolver) gets the same asset, settings and permissions.
    """

    function: lambda_.Function
    code: lambda_.Code
    environment: dict[str, str]
    log_group: logs.LogGroup
    role: iam.Role
    api: apigw.RestApi
    access_log_group: logs.LogGroup
    packaged: bool

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MprConfig,
        repo_root: Path,
        resources: ServiceResources,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._resources = resources
        basics = build_lambda_basics(self, config=config, name="api")
        self.log_group = basics.log_group
        self.role = basics.role
        self.code = self._code(repo_root)
        self.environment = self._environment()
        self.function = self._build_function()
        self.grant_service(self.role)
        self.access_log_group = self._build_access_log_group()
        self.api = self._build_api()
        # Only now is there a RestApi id to build the URL from (see callback_base_url).
        self.environment["MPR_CALLBACK_URL"] = self.callback_base_url
        self.function.add_environment("MPR_CALLBACK_URL", self.callback_base_url)
        self._suppress()

    # ---- the Lambda ----

    def _code(self, repo_root: Path) -> lambda_.Code:
        package_dir = repo_root / self._config.api_package_dir
        self.packaged = (package_dir / "functions").is_dir() and (package_dir / "mpr").is_dir()
        if self.packaged:
            return lambda_.Code.from_asset(str(package_dir))
        Annotations.of(self).add_warning_v2(
            PACKAGE_MISSING_WARNING,
            f"{self._config.api_package_dir} is missing, so the API Lambda ships mpr/ and "
            "functions/ without their dependencies. Run `make lambda-package` before deploying.",
        )
        return lambda_.Code.from_asset(
            str(repo_root), exclude=SOURCE_ASSET_PATTERNS, ignore_mode=IgnoreMode.GIT
        )

    def _environment(self) -> dict[str, str]:
        resources = self._resources
        return {
            "MPR_EXECUTOR": self._config.executor,
            "MPR_JOB_TABLE": resources.jobs_table.table_name,
            "MPR_IDEMPOTENCY_TABLE": resources.idempotency_table.table_name,
            "MPR_MEDIA_BUCKET": resources.bucket.bucket_name,
            "MPR_STATE_MACHINE_ARN": resources.state_machine.state_machine_arn,
            "MPR_CALLBACK_SECRET_ARN": resources.callback_secret.secret_arn,
            "POWERTOOLS_SERVICE_NAME": self._config.prefix,
        }

    def _build_function(self) -> lambda_.Function:
        config = self._config
        return python_function(
            self,
            "Function",
            description="MPR REST API (Powertools APIGatewayRestResolver)",
            handler=API_HANDLER,
            code=self.code,
            memory_mb=config.api_memory_mb,
            timeout=Duration.seconds(config.api_timeout_seconds),
            role=self.role,
            log_group=self.log_group,
            environment=self.environment,
        )

    def grant_service(self, role: iam.Role) -> None:
        """Give ``role`` what the job service needs, and acknowledge the findings that causes."""
        resources = self._resources
        resources.jobs_table.grant_read_write_data(role)
        resources.idempotency_table.grant_read_write_data(role)
        # A presigned URL carries the signer's permissions: the API signs PUTs of uploads and
        # GETs of renders, and deletes a job's objects with the job.
        resources.bucket.grant_read_write(role)
        resources.state_machine.grant_start_execution(role)
        # Cancelling a job stops its execution. Built by hand instead of grant_execution, whose
        # ARN splits the state machine's ARN at deploy time; the name is known at synth.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["states:StopExecution"], resources=[self._executions_arn()]
            )
        )
        resources.callback_secret.grant_read(role)
        self._suppress_service_grants(role)

    def _executions_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self._config.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    # ---- API Gateway ----

    def _build_access_log_group(self) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/{self._config.prefix}/apigateway/access",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )

    def _build_api(self) -> apigw.RestApi:
        config = self._config
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=config.name("api"),
            description="MPR media jobs",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution logging (below) needs the account-level CloudWatch role API Gateway
            # writes with; it is retained on delete because it is shared by every API in the
            # account and region.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.api_stage_name,
                tracing_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                # ERROR, not INFO, and no data trace: request bodies carry presigned-upload
                # parameters and callback signatures that do not belong in logs.
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=config.api_throttle_rate_limit,
                throttling_burst_limit=config.api_throttle_burst_limit,
            ),
        )
        integration = apigw.LambdaIntegration(
            self.function,
            proxy=True,
            # One Lambda permission for the whole API instead of two per method.
            scope_permission_to_method=False,
        )
        # Parameter validation only: bodies are validated by the Lambda's pydantic models,
        # which know the schema; a second copy here would drift from them.
        validator = api.add_request_validator(
            "ParameterValidator", validate_request_parameters=True, validate_request_body=False
        )
        root = api.root.add_resource(API_ROOT_PATH)
        root.add_method("ANY", integration, request_validator=validator)
        root.add_resource("{proxy+}").add_method(
            "ANY",
            integration,
            request_validator=validator,
            request_parameters={"method.request.path.proxy": True},
        )
        return api

    @property
    def callback_base_url(self) -> str:
        """The stage's base URL, which the API writes into each execution's input.

        Built from the RestApi's id and the stage name, not from ``api.url``: that one refers
        to the deployment stage, which depends on the methods, which depend on this Lambda, so
        putting it in the Lambda's environment would be a cycle. The RestApi resource itself
        depends on nothing here.
        """
        return (
            f"https://{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
            f"/{self._config.api_stage_name}"
        )

    # ---- cdk-nag ----

    def _suppress_service_grants(self, role: iam.Role) -> None:
        resources = self._resources
        nag.suppress(
            role,
            f"AwsSolutions-IAM5[Resource::{nag.arn_of(resources.jobs_table)}/index/*]",
            "grant_read_write_data covers the job table's indexes; the job list pages query its "
            "by_status and by_created GSIs.",
        )
        for action in (
            "s3:GetBucket*",
            "s3:GetObject*",
            "s3:List*",
            "s3:DeleteObject*",
            "s3:Abort*",
        ):
            nag.suppress(
                role,
                f"AwsSolutions-IAM5[Action::{action}]",
                f"{action} comes from CDK's read/write grant on the media bucket only; presigned "
                "URLs need the signer to hold the permission for any job's key.",
            )
        nag.suppress(
            role,
            f"AwsSolutions-IAM5[Resource::{nag.arn_of(resources.bucket)}/*]",
            "Presigned uploads and downloads cover any job's key in the media bucket, which "
            "holds only job media.",
        )
        nag.suppress(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
            f"<AWS::AccountId>:execution:{self._config.state_machine_name}:*]",
            "states:StopExecution on the executions of the MPR pipeline only; the execution "
            "name is per job.",
        )

    def _suppress(self) -> None:
        suppress_xray_wildcard(self.role)
        nag.suppress(
            self.function,
            "AwsSolutions-L1",
            "Python 3.12 matches the FFmpeg container's base image (lambda/python:3.12), so both "
            "Lambdas run mpr/ on one interpreter with one set of wheels.",
        )
        self._suppress_api()

    def _suppress_api(self) -> None:
        api = self.api
        nag.suppress(
            api,
            "AwsSolutions-APIG2",
            "Request parameters are validated by API Gateway; bodies are validated by the "
            "Lambda's pydantic models. Body validation here would need each model copied to the "
            "proxy method as JSON Schema, and the copy would drift from the code.",
        )
        nag.suppress(
            api,
            "AwsSolutions-APIG3",
            "No WAF web ACL yet: the API is throttled per stage (see cdk.json) and every route "
            "is served by one Lambda; add a WAF before the API is advertised publicly.",
        )
        for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            nag.suppress(
                api,
                rule,
                "MPR has no user accounts yet; the job callback route authenticates with an "
                "HMAC signature checked by the Lambda. An authorizer is required before "
                "untrusted users get the URL.",
            )
        nag.suppress(
            api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level API Gateway logging role must carry this AWS-managed policy; it "
            "lets API Gateway, not our code, write execution logs.",
        )
