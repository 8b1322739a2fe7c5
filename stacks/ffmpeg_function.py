"""The container-image Lambda that runs FFmpeg on one job and reports back by signed callback."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, IgnoreMode, Size
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag
from stacks.config import MprConfig
from stacks.lambda_basics import build_lambda_basics, suppress_xray_wildcard
from stacks.media_bucket import OUTPUTS_PREFIX

DOCKERFILE = "container/Dockerfile"
# The build context is the repo root (the image needs mpr/ and requirements.txt as well as
# container/). The root .dockerignore whitelists what the image copies; this list repeats the
# big directories so a broken .dockerignore can never stage a virtualenv into cdk.out.
IMAGE_EXCLUDES = [".git", ".venv", "cdk.out", ".build", "media", "node_modules", ".mpr-*"]


class FfmpegFunction(Construct):
    """``DockerImageFunction`` sized from context; synth only stages the build context.

    Sizing defaults (cdk.json) and why:

    * memory 3008 MB: Lambda allots CPU in proportion to memory (one vCPU per 1769 MB, six at
      10240 MB) and FFmpeg is CPU-bound; 3008 MB gives libx264 close to two cores. Raise it in
      cdk.json for faster renders at a proportional price.
    * ephemeral storage 10240 MB (Lambda's maximum): the source is downloaded to /tmp and the
      render is written there before upload, so /tmp bounds the largest job.
    * timeout 900 s (Lambda's maximum): a render that cannot finish in 15 minutes cannot finish
      on Lambda at all. MPR_MAX_SOURCE_BYTES and MPR_MAX_DURATION_SECONDS (derived from these in
      MprConfig) let the function refuse such a job with a reason right after probing it,
      instead of running into the timeout.
    """

    function: lambda_.DockerImageFunction
    log_group: logs.LogGroup
    role: iam.Role

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: MprConfig,
        repo_root: Path,
        bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        basics = build_lambda_basics(self, config=config, name="ffmpeg")
        self.log_group = basics.log_group
        self.role = basics.role
        self.function = self._build_function(repo_root, bucket)
        self._grant(bucket)
        self._suppress(bucket)

    def _build_function(self, repo_root: Path, bucket: s3.IBucket) -> lambda_.DockerImageFunction:
        config = self._config
        code = lambda_.DockerImageCode.from_image_asset(
            directory=str(repo_root),
            file=DOCKERFILE,
            exclude=IMAGE_EXCLUDES,
            ignore_mode=IgnoreMode.DOCKER,
            # NOTE: the ffmpeg/ffprobe binaries in the image are x86_64 static builds, so the
            # image is built for amd64 even on an arm64 laptop, and the function runs on x86_64.
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        return lambda_.DockerImageFunction(
            self,
            "Function",
            description="MPR: runs FFmpeg for one job and posts a signed callback",
            code=code,
            architecture=lambda_.Architecture.X86_64,
            memory_size=config.ffmpeg_memory_mb,
            ephemeral_storage_size=Size.mebibytes(config.ffmpeg_ephemeral_storage_mb),
            timeout=Duration.seconds(config.ffmpeg_timeout_seconds),
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "MPR_EXECUTOR": config.executor,
                "MPR_MEDIA_BUCKET": bucket.bucket_name,
                "MPR_MAX_SOURCE_BYTES": str(config.ffmpeg_max_source_bytes),
                "MPR_MAX_DURATION_SECONDS": str(config.ffmpeg_max_duration_seconds),
                "POWERTOOLS_SERVICE_NAME": config.prefix,
            },
        )

    def _grant(self, bucket: s3.IBucket) -> None:
        # Read anywhere (a source may be an upload or an earlier render), write only renders.
        # No DynamoDB grant: the job record is the API's; this function reports by callback.
        # No grant on the callback secret either: the API derives a token for one attempt of
        # one job (mpr.callback.attempt_token) and passes it in the execution input, so this
        # function never holds the master key that could sign a report for any job.
        bucket.grant_read(self.role)
        bucket.grant_put(self.role, f"{OUTPUTS_PREFIX}*")

    def _suppress(self, bucket: s3.IBucket) -> None:
        suppress_xray_wildcard(self.role)
        for action in ("s3:GetBucket*", "s3:GetObject*", "s3:List*"):
            nag.suppress(
                self.role,
                f"AwsSolutions-IAM5[Action::{action}]",
                f"{action} is CDK's read grant on the media bucket only (bucket.grant_read); "
                "the source key is chosen per job, so reads cannot be narrowed further.",
            )
        bucket_arn = nag.arn_of(bucket)
        nag.suppress(
            self.role,
            f"AwsSolutions-IAM5[Resource::{bucket_arn}/*]",
            "Reads cover every key of the media bucket because a job's source may be an upload "
            "or an earlier render; the bucket holds nothing but job media.",
        )
        nag.suppress(
            self.role,
            f"AwsSolutions-IAM5[Resource::{bucket_arn}/{OUTPUTS_PREFIX}*]",
            "Writes are limited to the outputs/ prefix; the object key under it is per job.",
        )
        nag.suppress(
            self.role,
            "AwsSolutions-IAM5[Action::s3:Abort*]",
            "s3:Abort* (AbortMultipartUpload) is part of bucket.grant_put on outputs/* only, so "
            "a failed multipart upload of a large render can be cleaned up.",
        )
