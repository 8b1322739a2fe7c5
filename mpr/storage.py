"""S3: streaming transfers to and from the scratch disk, and presigned URLs. The only module that talks S3.

Works against AWS S3 and any S3-compatible server (SeaweedFS, MinIO) given an endpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mpr.errors import SourceMissingError, StorageError
from mpr.settings import Settings
from mpr.specs import S3Location

logger = logging.getLogger(__name__)

# Parts of 16 MiB, 4 at a time: large files go up and down as multipart transfers, streamed to disk,
# never held whole in memory.
TRANSFER = TransferConfig(multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024,
                          max_concurrency=4)
_MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


def s3_client(settings: Settings, endpoint: str | None = None):
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if (endpoint or settings.s3_endpoint) else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
    )
    return boto3.client("s3", region_name=settings.region, endpoint_url=endpoint or settings.s3_endpoint,
                        config=config)


class MediaStorage:
    def __init__(self, settings: Settings, client=None, presign_client=None):
        self.settings = settings
        self.bucket = settings.media_bucket
        self._client = client or s3_client(settings)
        public = settings.s3_public_endpoint
        self._presign_client = presign_client or (s3_client(settings, public) if public else self._client)

    def size_of(self, location: S3Location) -> int:
        try:
            return int(self._client.head_object(Bucket=location.bucket, Key=location.key)["ContentLength"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                raise SourceMissingError(f"source {location.uri} does not exist; upload it first") from None
            raise StorageError(f"could not read source {location.uri} ({_code(error)})") from None

    def download(self, location: S3Location, path: Path) -> None:
        try:
            self._client.download_file(location.bucket, location.key, str(path), Config=TRANSFER)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"could not download source {location.uri} ({_code(error)})") from None

    def upload(self, path: Path, location: S3Location, content_type: str) -> str:
        """Upload a file (multipart when large); returns the stored object's ETag."""
        try:
            self._client.upload_file(str(path), location.bucket, location.key, Config=TRANSFER,
                                     ExtraArgs={"ContentType": content_type})
            return self._client.head_object(Bucket=location.bucket, Key=location.key)["ETag"]
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"could not upload output {location.uri} ({_code(error)})") from None

    def delete(self, location: S3Location, etag: str | None = None) -> None:
        """Delete an object; with `etag`, only if it is still that version (not another job's since)."""
        if etag is not None:
            try:
                if self._client.head_object(Bucket=location.bucket, Key=location.key)["ETag"] != etag:
                    return
            except ClientError:
                return
        self._client.delete_object(Bucket=location.bucket, Key=location.key)

    def exists(self, location: S3Location) -> bool:
        try:
            self._client.head_object(Bucket=location.bucket, Key=location.key)
        except ClientError:
            return False
        return True

    def presign_get(self, location: S3Location) -> str:
        return self._presign_client.generate_presigned_url(
            "get_object", Params={"Bucket": location.bucket, "Key": location.key},
            ExpiresIn=self.settings.presign_expires,
        )

    def presign_put(self, location: S3Location) -> str:
        return self._presign_client.generate_presigned_url(
            "put_object", Params={"Bucket": location.bucket, "Key": location.key},
            ExpiresIn=self.settings.presign_expires,
        )


def _code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "error")
    return type(error).__name__


def ensure_bucket(settings: Settings, client=None) -> None:
    """Create the media bucket when it is missing (the local stack; in AWS the CDK app owns it)."""
    client = client or s3_client(settings)
    try:
        client.head_bucket(Bucket=settings.media_bucket)
    except ClientError:
        client.create_bucket(Bucket=settings.media_bucket)
        logger.info("bucket created", extra={"bucket": settings.media_bucket})
