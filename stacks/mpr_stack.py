"""One stack composing MPR's constructs, and the function that builds the whole CDK app.

One stack rather than several: every resource here has the same lifecycle (deployed and
destroyed together), and splitting them would turn each cross-construct reference (table
names, the state machine ARN, the bucket) into a CloudFormation export that blocks updates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, CfnOutput, Environment, Stack
from constructs import Construct

from stacks import nag
from stacks.callback_secret import CallbackSecret
from stacks.config import MprConfig
from stacks.ffmpeg_function import FfmpegFunction
from stacks.graphql_api import GraphqlApi
from stacks.job_tables import JobTables
from stacks.media_bucket import MediaBucket
from stacks.pipeline import Pipeline
from stacks.reaper import Reaper
from stacks.rest_api import RestApi, ServiceResources

REPO_ROOT = Path(__file__).resolve().parent.parent


class MprStack(Stack):
    """Bucket, tables, secret, FFmpeg Lambda, pipeline, APIs and reaper of one MPR deployment."""

    media: MediaBucket
    tables: JobTables
    callback_secret: CallbackSecret
    ffmpeg: FfmpegFunction
    pipeline: Pipeline
    rest_api: RestApi
    reaper: Reaper
    graphql_api: GraphqlApi

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MprConfig,
        repo_root: Path = REPO_ROOT,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=config.stack_name,
            description="MPR media jobs: REST API, job tables, media bucket, FFmpeg pipeline",
            env=env,
            tags=config.tags,
        )
        self.config = config
        self.media = MediaBucket(self, "Media", config=config)
        self.tables = JobTables(self, "Tables", config=config)
        self.callback_secret = CallbackSecret(self, "CallbackSecret", config=config)
        self.ffmpeg = self._build_ffmpeg(repo_root)
        self.pipeline = Pipeline(self, "Pipeline", config=config, function=self.ffmpeg.function)
        self.rest_api = self._build_rest_api(repo_root)
        # After the REST API: the reaper and GraphQL Lambdas share its code and final environment.
        self.reaper = self._build_reaper()
        self.graphql_api = self._build_graphql_api()
        self._build_outputs()

    def _build_ffmpeg(self, repo_root: Path) -> FfmpegFunction:
        return FfmpegFunction(
            self,
            "Ffmpeg",
            config=self.config,
            repo_root=repo_root,
            bucket=self.media.bucket,
        )

    def _build_rest_api(self, repo_root: Path) -> RestApi:
        return RestApi(
            self,
            "Rest",
            config=self.config,
            repo_root=repo_root,
            resources=ServiceResources(
                jobs_table=self.tables.jobs,
                idempotency_table=self.tables.idempotency,
                bucket=self.media.bucket,
                state_machine=self.pipeline.state_machine,
                callback_secret=self.callback_secret.secret,
            ),
        )

    def _build_reaper(self) -> Reaper:
        return Reaper(
            self,
            "Reaper",
            config=self.config,
            code=self.rest_api.code,
            environment=self.rest_api.environment,
            jobs_table=self.tables.jobs,
            state_machine=self.pipeline.state_machine,
            callback_secret=self.callback_secret.secret,
        )

    def _build_graphql_api(self) -> GraphqlApi:
        return GraphqlApi(
            self,
            "Graphql",
            config=self.config,
            code=self.rest_api.code,
            environment=self.rest_api.environment,
            grant_service=self.rest_api.grant_service,
            jobs_table=self.tables.jobs,
            auth_mode=self.config.graphql_auth,
            api_key_expiry_days=self.config.graphql_api_key_days,
        )

    def _build_outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.rest_api.api.url_for_path("/api"))
        CfnOutput(self, "MediaBucketName", value=self.media.bucket.bucket_name)
        CfnOutput(self, "JobTableName", value=self.tables.jobs.table_name)
        CfnOutput(self, "StateMachineArn", value=self.pipeline.state_machine.state_machine_arn)
        CfnOutput(self, "CallbackSecretArn", value=self.callback_secret.secret.secret_arn)
        CfnOutput(self, "GraphqlUrl", value=self.graphql_api.graphql_url)
        CfnOutput(self, "GraphqlApiId", value=self.graphql_api.api.api_id)
        if self.graphql_api.user_pool_client is not None:
            CfnOutput(self, "UserPoolId", value=self.graphql_api.user_pool.user_pool_id)
            CfnOutput(self, "UserPoolClientId", value=self.graphql_api.user_pool_client.user_pool_client_id)


def build_app(
    context: Mapping[str, Any] | None = None, outdir: str | None = None, repo_root: Path = REPO_ROOT
) -> tuple[App, MprStack]:
    """The CDK app with cdk-nag registered; ``context`` overrides cdk.json (tests use it)."""
    app_context = dict(_cdk_json_context(repo_root))
    app_context.update(context or {})
    if outdir is None and "CDK_OUTDIR" not in os.environ:
        # Outside the CLI, App would synth into a temporary directory; keep the CLI's default.
        outdir = str(repo_root / "cdk.out")
    app = App(context=app_context, outdir=outdir)
    config = MprConfig.from_node(app.node)
    stack = MprStack(app, "Mpr", config=config, repo_root=repo_root, env=_environment())
    nag.add_checks(app)
    return app, stack


def _cdk_json_context(repo_root: Path) -> Mapping[str, Any]:
    # NOTE: the CDK CLI passes cdk.json's context to the app itself; a bare `python app.py`
    # (or a test) gets none, so read it here. Values the CLI passed still win: App applies
    # CDK_CONTEXT_JSON after the context given to its constructor.
    cdk_json = repo_root / "cdk.json"
    return json.loads(cdk_json.read_text()).get("context", {}) if cdk_json.exists() else {}


def _environment() -> Environment | None:
    # The CLI sets these from the caller's credentials; without them (plain synth, CI) the
    # stack is environment-agnostic, which every construct here supports.
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION")
    if account and region:
        return Environment(account=account, region=region)
    return None
