"""The media bucket (uploads in, renders out) and the bucket that receives its access logs."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import MprConfig

UPLOADS_PREFIX = "uploads/"
OUTPUTS_PREFIX = "outputs/"
ACCESS_LOGS_PREFIX = "media-bucket/"


class MediaBucket(Construct):
    """Private, encrypted, TLS-only storage for sources and renders.

    Versioning is off on purpose: every object here is either a user's upload, which the user
    can upload again, or a render, which the pipeline can produce again. Versions would keep
    expired objects alive past the lifecycle rules below (or need a second set of noncurrent
    rules) and a retried render is meant to overwrite its previous attempt.
    """

    bucket: s3.Bucket
    access_log_bucket: s3.Bucket

    def __init__(self, scope: Construct, construct_id: str, *, config: MprConfig) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.access_log_bucket = self._build_access_log_bucket()
        self.bucket = self._build_media_bucket()

    def _build_access_log_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # NOTE: S3 server access logging writes with a bucket policy (feature flag
            # serverAccessLogsUseBucketPolicy in cdk.json), so ACLs can stay disabled.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(self._config.access_logs_expiration_days),
                )
            ],
            removal_policy=self._config.removal_policy,
            auto_delete_objects=self._config.is_disposable,
        )
        # NOTE: no access logging on this bucket itself (it would log its own log deliveries);
        # cdk-nag's S1 accepts a bucket that is a server-access-log destination as it is.
        return bucket

    def _build_media_bucket(self) -> s3.Bucket:
        return s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix=ACCESS_LOGS_PREFIX,
            lifecycle_rules=self._lifecycle_rules(),
            cors=[self._cors_rule()],
            removal_policy=self._config.removal_policy,
            auto_delete_objects=self._config.is_disposable,
        )

    def _lifecycle_rules(self) -> list[s3.LifecycleRule]:
        return [
            s3.LifecycleRule(
                id="expire-uploads",
                prefix=UPLOADS_PREFIX,
                expiration=Duration.days(self._config.uploads_expiration_days),
            ),
            s3.LifecycleRule(
                id="expire-outputs",
                prefix=OUTPUTS_PREFIX,
                expiration=Duration.days(self._config.outputs_expiration_days),
            ),
            # A browser that gives up halfway through a multipart upload leaves parts that are
            # billed but invisible in listings; one day is longer than any upload should take.
            s3.LifecycleRule(
                id="abort-incomplete-multipart-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(1),
            ),
        ]

    def _cors_rule(self) -> s3.CorsRule:
        # Browsers PUT uploads and GET renders straight to S3 with presigned URLs, cross-origin.
        return s3.CorsRule(
            allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
            allowed_origins=list(self._config.cors_allowed_origins),
            allowed_headers=["*"],
            # Multipart uploads in the browser need each part's ETag back.
            exposed_headers=["ETag"],
            max_age=3000,
        )
