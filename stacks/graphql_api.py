"""The GraphQL API: AppSync over mpr/schema.graphql, the resolver Lambda, and live job updates.

* Every Query and Mutation field but one is resolved by the GraphQL Lambda
  (``functions.graphql.handler``, the REST Lambda's code asset, environment and grants). Its
  resolvers are APPSYNC_JS code that sends the Lambda the event of a direct Lambda resolver and
  turns the Lambda's ``__error`` answers into GraphQL errors whose errorType is the domain error's
  code: a direct resolver could only report a raised error, as ``Lambda:Unhandled``.
* ``publishJobUpdate`` is resolved by a NONE data source that returns its argument: calling it
  stores nothing, it only makes AppSync fire ``onJobUpdated`` for the job's subscribers.
* The job table's stream triggers the job-stream Lambda (``functions.job_stream.handler``), which
  calls ``publishJobUpdate`` signed with its role, the only principal allowed to.

Authorization (``auth_mode``): ``api_key`` (development; the key expires after
``api_key_expiry_days``) or ``cognito`` (production: a user pool with MFA and no self sign-up;
users are created by an administrator). IAM is always an additional mode, for the stream Lambda.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from aws_cdk import Duration, Expiration
from aws_cdk import aws_appsync as appsync
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from constructs import Construct

from mpr.settings import ENV_GRAPHQL_URL
from stacks import nag
from stacks.config import MprConfig
from stacks.lambda_basics import build_lambda_basics, python_function

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "mpr" / "schema.graphql"
RESOLVER_HANDLER = "functions.graphql.handler"
STREAM_HANDLER = "functions.job_stream.handler"
QUERY_FIELDS = ("job", "jobs")
MUTATION_FIELDS = ("createJob", "cancelJob", "retryJob", "createUpload")
PUBLISH_FIELD = "publishJobUpdate"
AUTH_MODES = ("api_key", "cognito")
API_KEY_DAYS_RANGE = (1, 365)  # what AppSync accepts for an API key's lifetime
STREAM_MEMORY_MB = 256
STREAM_TIMEOUT = Duration.seconds(60)
STREAM_BATCH_SIZE = 100
# A failed batch is retried this often; the Lambda itself never fails on a lost publish.
STREAM_RETRY_ATTEMPTS = 2
# Live progress older than this is of no use to a subscriber.
STREAM_MAX_RECORD_AGE = Duration.minutes(5)

# The event of a direct Lambda resolver, and the Lambda's error answer raised as a GraphQL error.
LAMBDA_RESOLVER_CODE = """
import { util } from '@aws-appsync/utils';

export function request(ctx) {
  return {
    operation: 'Invoke',
    payload: {
      arguments: ctx.arguments,
      identity: ctx.identity,
      source: ctx.source,
      request: ctx.request,
      info: {
        fieldName: ctx.info.fieldName,
        parentTypeName: ctx.info.parentTypeName,
        variables: ctx.info.variables,
        selectionSetList: ctx.info.selectionSetList,
        selectionSetGraphQL: ctx.info.selectionSetGraphQL,
      },
      stash: ctx.stash,
    },
  };
}

export function response(ctx) {
  if (ctx.error) {
    util.error(ctx.error.message, ctx.error.type);
  }
  const failure = ctx.result && ctx.result.__error;
  if (failure) {
    util.error(failure.message, failure.type);
  }
  return ctx.result;
}
"""

PUBLISH_RESOLVER_CODE = """
export function request(ctx) {
  return { payload: ctx.arguments.job };
}

export function response(ctx) {
  return ctx.result;
}
"""


class GraphqlApi(Construct):
    """AppSync API, GraphQL Lambda, job-stream Lambda and (in cognito mode) the user pool."""

    api: appsync.GraphqlApi
    logs_role: iam.Role
    resolver_function: lambda_.Function
    resolver_role: iam.Role
    stream_function: lambda_.Function
    stream_role: iam.Role
    user_pool: cognito.UserPool | None
    user_pool_client: cognito.UserPoolClient | None

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MprConfig,
        code: lambda_.Code,
        environment: Mapping[str, str],
        grant_service: Callable[[iam.Role], None],
        jobs_table: dynamodb.ITable,
        auth_mode: str,
        api_key_expiry_days: int,
    ) -> None:
        """``code``, ``environment`` and ``grant_service`` are the REST Lambda's: its code asset,
        its environment, and what gives a role its permissions (and acknowledges their findings).
        ``jobs_table`` must have a stream with new images."""
        super().__init__(scope, construct_id)
        _check_auth(auth_mode, api_key_expiry_days)
        self._config = config
        self.user_pool, self.user_pool_client = self._build_user_pool(auth_mode)
        self.logs_role = self._build_logs_role()
        self.api = self._build_api(self._default_authorization(auth_mode, api_key_expiry_days))
        self.resolver_function, self.resolver_role = self._build_resolver(code, environment)
        grant_service(self.resolver_role)
        self._build_resolvers()
        self.stream_function, self.stream_role = self._build_stream(code, jobs_table)
        self._suppress()

    @property
    def graphql_url(self) -> str:
        return self.api.graphql_url

    # ---- the API ----

    def _build_user_pool(self, auth_mode: str) -> tuple[cognito.UserPool | None,
                                                         cognito.UserPoolClient | None]:
        if auth_mode != "cognito":
            return None, None
        pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=self._config.name("users"),
            # Users are invited by an administrator: media jobs cost money.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True,
                require_uppercase=True, require_symbols=True,
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            deletion_protection=not self._config.is_disposable,
            removal_policy=self._config.removal_policy,
        )
        client = pool.add_client(
            "WebClient",
            auth_flows=cognito.AuthFlow(user_srp=True),
            generate_secret=False,
            prevent_user_existence_errors=True,
        )
        return pool, client

    def _default_authorization(self, auth_mode: str, key_days: int) -> appsync.AuthorizationMode:
        if auth_mode == "cognito":
            return appsync.AuthorizationMode(
                authorization_type=appsync.AuthorizationType.USER_POOL,
                user_pool_config=appsync.UserPoolConfig(user_pool=self.user_pool),
            )
        return appsync.AuthorizationMode(
            authorization_type=appsync.AuthorizationType.API_KEY,
            api_key_config=appsync.ApiKeyConfig(
                description="MPR development key; production uses Cognito (graphql_auth)",
                expires=Expiration.after(Duration.days(key_days)),
            ),
        )

    def _build_logs_role(self) -> iam.Role:
        # NOTE: our own role, not CDK's default one with the AWS-managed AppSync logging policy,
        # so that AppSync may write to this API's log group only (granted in _build_api).
        return iam.Role(
            self,
            "LogsRole",
            assumed_by=iam.ServicePrincipal("appsync.amazonaws.com"),
            description="AppSync writes the MPR GraphQL API's logs with this role",
        )

    def _build_api(self, default_authorization: appsync.AuthorizationMode) -> appsync.GraphqlApi:
        api = appsync.GraphqlApi(
            self,
            "Api",
            name=self._config.name("graphql"),
            definition=appsync.Definition.from_file(str(SCHEMA_FILE)),
            authorization_config=appsync.AuthorizationConfig(
                default_authorization=default_authorization,
                additional_authorization_modes=[
                    appsync.AuthorizationMode(authorization_type=appsync.AuthorizationType.IAM)
                ],
            ),
            xray_enabled=True,
        )
        # ERROR, not ALL, and no verbose content: answers carry presigned URLs.
        # NOTE: set on the CloudFormation resource because CDK's log_config always adds its
        # LogRetention custom resource (a Lambda with an AWS-managed policy); the group AppSync logs
        # to is made here with its retention instead. AppSync only creates the group itself on its
        # first log line, after this stack has made it.
        cfn_api = api.node.default_child
        assert isinstance(cfn_api, appsync.CfnGraphQLApi)
        cfn_api.log_config = appsync.CfnGraphQLApi.LogConfigProperty(
            cloud_watch_logs_role_arn=self.logs_role.role_arn,
            field_log_level="ERROR",
            exclude_verbose_content=True,
        )
        group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=f"/aws/appsync/apis/{api.api_id}",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )
        group.grant_write(self.logs_role)
        return api

    # ---- resolvers ----

    def _build_resolver(
        self, code: lambda_.Code, environment: Mapping[str, str]
    ) -> tuple[lambda_.Function, iam.Role]:
        scope = Construct(self, "Resolver")
        basics = build_lambda_basics(scope, config=self._config, name="graphql")
        function = python_function(
            scope,
            "Function",
            description="MPR GraphQL API (Powertools AppSyncResolver)",
            handler=RESOLVER_HANDLER,
            code=code,
            memory_mb=self._config.api_memory_mb,
            timeout=Duration.seconds(self._config.api_timeout_seconds),
            role=basics.role,
            log_group=basics.log_group,
            environment=environment,
        )
        return function, basics.role

    def _build_resolvers(self) -> None:
        lambda_source = self.api.add_lambda_data_source("ResolverLambda", self.resolver_function)
        lambda_code = appsync.Code.from_inline(LAMBDA_RESOLVER_CODE)
        fields = [("Query", name) for name in QUERY_FIELDS]
        fields += [("Mutation", name) for name in MUTATION_FIELDS]
        for type_name, field_name in fields:
            lambda_source.create_resolver(
                f"{type_name}{field_name[0].upper()}{field_name[1:]}",
                type_name=type_name,
                field_name=field_name,
                runtime=appsync.FunctionRuntime.JS_1_0_0,
                code=lambda_code,
            )
        self.api.add_none_data_source("Publish").create_resolver(
            "MutationPublishJobUpdate",
            type_name="Mutation",
            field_name=PUBLISH_FIELD,
            runtime=appsync.FunctionRuntime.JS_1_0_0,
            code=appsync.Code.from_inline(PUBLISH_RESOLVER_CODE),
        )

    # ---- live updates ----

    def _build_stream(
        self, code: lambda_.Code, jobs_table: dynamodb.ITable
    ) -> tuple[lambda_.Function, iam.Role]:
        scope = Construct(self, "Stream")
        basics = build_lambda_basics(scope, config=self._config, name="job-stream")
        function = python_function(
            scope,
            "Function",
            description="MPR: publishes each job change to AppSync for onJobUpdated",
            handler=STREAM_HANDLER,
            code=code,
            memory_mb=STREAM_MEMORY_MB,
            timeout=STREAM_TIMEOUT,
            role=basics.role,
            log_group=basics.log_group,
            environment={
                ENV_GRAPHQL_URL: self.api.graphql_url,
                "POWERTOOLS_SERVICE_NAME": self._config.prefix,
            },
        )
        # Deleted jobs have nothing to tell a subscriber.
        changed = lambda_.FilterRule.or_("INSERT", "MODIFY")
        changes = lambda_.FilterCriteria.filter({"eventName": changed})
        function.add_event_source(
            event_sources.DynamoEventSource(
                jobs_table,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=STREAM_BATCH_SIZE,
                retry_attempts=STREAM_RETRY_ATTEMPTS,
                max_record_age=STREAM_MAX_RECORD_AGE,
                filters=[changes],
            )
        )
        self.api.grant_mutation(basics.role, PUBLISH_FIELD)
        return function, basics.role

    # ---- cdk-nag ----

    def _suppress(self) -> None:
        for function in (self.resolver_function, self.stream_function):
            nag.suppress(
                function,
                "AwsSolutions-L1",
                "Python 3.12 like the REST Lambda and the FFmpeg container (lambda/python:3.12): "
                "one interpreter and one set of wheels for all of mpr/.",
            )
        nag.suppress(
            self.resolver_role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments and PutTelemetryRecords (tracing=ACTIVE) support no "
            "resource-level permissions.",
        )
        nag.suppress(
            self.stream_role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (tracing=ACTIVE) and dynamodb:ListStreams "
            "(added by the DynamoDB event source) support no resource-level permissions.",
        )
        nag.suppress(
            self.api,
            f"AwsSolutions-IAM5[Resource::{nag.arn_of(self.resolver_function)}:*]",
            "AppSync's Lambda data source role may invoke the GraphQL function's versions and "
            "aliases (ARN:*); it names this one function only.",
        )
        self._suppress_logging()

    def _suppress_logging(self) -> None:
        nag.suppress(
            self.api,
            "AwsSolutions-ASC3",
            "Request-level logging is on (a log config with its own role; field errors logged). "
            "Verbose content is excluded on purpose: it would copy request headers (API keys, user "
            "tokens) and resolver payloads with presigned URLs into the logs.",
        )


def _check_auth(auth_mode: str, api_key_expiry_days: int) -> None:
    if auth_mode not in AUTH_MODES:
        allowed = ", ".join(AUTH_MODES)
        raise ValueError(f"graphql auth_mode must be one of {allowed}, not {auth_mode!r}")
    low, high = API_KEY_DAYS_RANGE
    if not low <= api_key_expiry_days <= high:
        raise ValueError(f"api_key_expiry_days must be {low}..{high}, not {api_key_expiry_days}")
