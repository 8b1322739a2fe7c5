"""Typed configuration of the cloud stack, read once from CDK context.

Every tunable of the stack lives in ``cdk.json`` under a ``mpr:`` key and is read here and
nowhere else, so a construct never carries a literal that an operator may want to change.
Keys are flat (``mpr:ffmpeg_memory_mb``) rather than one nested object so that a single value
can be overridden on the command line: ``cdk synth -c mpr:ffmpeg_memory_mb=4096``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Node

CONTEXT_PREFIX = "mpr:"

# CloudWatch Logs accepts only these retention periods; anything else is a typo in cdk.json.
_RETENTION_BY_DAYS: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}

_REMOVAL_POLICIES = {"retain": RemovalPolicy.RETAIN, "destroy": RemovalPolicy.DESTROY}

# Lambda's documented limits; checked here so a bad context value fails at synth, not at deploy.
LAMBDA_MAX_TIMEOUT_SECONDS = 900
LAMBDA_MEMORY_RANGE_MB = (128, 10240)
LAMBDA_EPHEMERAL_RANGE_MB = (512, 10240)
# EventBridge's rate() counts whole minutes. Beyond an hour, a job whose dispatch was lost would
# wait far longer for its resend than mpr.service's 10-minute RESEND_PENDING_AFTER_SECONDS.
REAPER_INTERVAL_RANGE_MINUTES = (1, 60)
# NOTE: API Gateway REST integrations give up after 29 s by default, so a longer API Lambda
# timeout would only keep running work whose answer nobody receives.
API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS = 29


class ConfigError(ValueError):
    """A context value in cdk.json (or given with -c) is missing or out of range."""


@dataclass(frozen=True)
class MprConfig:
    """What the stack is built from; see cdk.json for each key's default."""

    prefix: str
    stack_name: str
    executor: str
    api_stage_name: str
    api_memory_mb: int
    api_timeout_seconds: int
    api_throttle_rate_limit: int
    api_throttle_burst_limit: int
    api_package_dir: str
    ffmpeg_memory_mb: int
    ffmpeg_ephemeral_storage_mb: int
    ffmpeg_timeout_seconds: int
    ffmpeg_source_share_percent: int
    ffmpeg_io_reserve_seconds: int
    ffmpeg_realtime_factor: float
    pipeline_retry_attempts: int
    log_retention_days: int
    uploads_expiration_days: int
    outputs_expiration_days: int
    access_logs_expiration_days: int
    cors_allowed_origins: tuple[str, ...]
    removal_policy_name: str
    graphql_auth: str
    graphql_api_key_days: int
    reaper_interval_minutes: int
    tags: dict[str, str] = field(default_factory=dict)

    # ---- derived values: one place computes them so constructs and tests agree ----

    @property
    def removal_policy(self) -> RemovalPolicy:
        return _REMOVAL_POLICIES[self.removal_policy_name]

    @property
    def is_disposable(self) -> bool:
        """True for a dev stack whose data may be deleted with it."""
        return self.removal_policy_name == "destroy"

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION_BY_DAYS[self.log_retention_days]

    @property
    def ffmpeg_max_source_bytes(self) -> int:
        """Largest source the FFmpeg Lambda accepts, so the source and its output both fit /tmp.

        The source and the rendered output share the ephemeral disk; a transcode's output can
        be as large as its source, and the muxer needs headroom, so the source gets only a share.
        """
        return (
            self.ffmpeg_ephemeral_storage_mb * 1024 * 1024 * self.ffmpeg_source_share_percent // 100
        )

    @property
    def ffmpeg_max_duration_seconds(self) -> int:
        """Longest media the FFmpeg Lambda accepts, so one run finishes inside its timeout.

        Download, probe and upload take ``ffmpeg_io_reserve_seconds``; the rest of the timeout
        is encoding time, at ``ffmpeg_realtime_factor`` media seconds per wall-clock second.
        """
        encode_seconds = self.ffmpeg_timeout_seconds - self.ffmpeg_io_reserve_seconds
        return int(encode_seconds * self.ffmpeg_realtime_factor)

    @property
    def state_machine_name(self) -> str:
        # Known at synth so the API's StopExecution grant can name the executions exactly.
        return self.name("pipeline")

    def name(self, suffix: str) -> str:
        """A physical name for a resource, so two prefixes can share one account."""
        return f"{self.prefix}-{suffix}"

    # ---- reading ----

    @classmethod
    def from_node(cls, node: Node) -> MprConfig:
        """Read every ``mpr:`` key from the construct tree's context (cdk.json and -c flags)."""

        def get(key: str) -> Any:
            value = node.try_get_context(CONTEXT_PREFIX + key)
            if value is None:
                raise ConfigError(f"context key {CONTEXT_PREFIX}{key} is missing (see cdk.json)")
            return value

        return cls.from_mapping(get)

    @classmethod
    def from_mapping(cls, get: Callable[[str], Any]) -> MprConfig:
        """Build from ``get(key)``, which returns the raw value of ``mpr:<key>`` or raises."""

        def integer(key: str) -> int:
            return _as_int(key, get(key))

        config = cls(
            prefix=str(get("prefix")),
            stack_name=str(get("stack_name")),
            executor=str(get("executor")),
            api_stage_name=str(get("api_stage_name")),
            api_memory_mb=integer("api_memory_mb"),
            api_timeout_seconds=integer("api_timeout_seconds"),
            api_throttle_rate_limit=integer("api_throttle_rate_limit"),
            api_throttle_burst_limit=integer("api_throttle_burst_limit"),
            api_package_dir=str(get("api_package_dir")),
            ffmpeg_memory_mb=integer("ffmpeg_memory_mb"),
            ffmpeg_ephemeral_storage_mb=integer("ffmpeg_ephemeral_storage_mb"),
            ffmpeg_timeout_seconds=integer("ffmpeg_timeout_seconds"),
            ffmpeg_source_share_percent=integer("ffmpeg_source_share_percent"),
            ffmpeg_io_reserve_seconds=integer("ffmpeg_io_reserve_seconds"),
            ffmpeg_realtime_factor=_as_float(
                "ffmpeg_realtime_factor", get("ffmpeg_realtime_factor")
            ),
            pipeline_retry_attempts=integer("pipeline_retry_attempts"),
            log_retention_days=integer("log_retention_days"),
            uploads_expiration_days=integer("uploads_expiration_days"),
            outputs_expiration_days=integer("outputs_expiration_days"),
            access_logs_expiration_days=integer("access_logs_expiration_days"),
            cors_allowed_origins=tuple(
                str(origin)
                for origin in _as_json("cors_allowed_origins", get("cors_allowed_origins"), list)
            ),
            removal_policy_name=str(get("removal_policy")).strip().lower(),
            graphql_auth=str(get("graphql_auth")).strip().lower(),
            graphql_api_key_days=integer("graphql_api_key_days"),
            reaper_interval_minutes=integer("reaper_interval_minutes"),
            tags={
                str(key): str(value) for key, value in _as_json("tags", get("tags"), dict).items()
            },
        )
        config.validate()
        return config

    def validate(self) -> None:
        problems: list[str] = []

        def check(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        check(
            bool(self.prefix) and self.prefix.replace("-", "").isalnum(),
            "prefix must be alphanumeric/dashes",
        )
        check(self.prefix == self.prefix.lower(), "prefix must be lower case (S3 and log names)")
        check(
            self.executor == "lambda",
            "executor must be 'lambda' in AWS (the local one needs Celery)",
        )
        check(
            _within(self.api_memory_mb, LAMBDA_MEMORY_RANGE_MB),
            "api_memory_mb out of Lambda's range",
        )
        check(
            1 <= self.api_timeout_seconds <= API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS,
            f"api_timeout_seconds must be 1..{API_GATEWAY_INTEGRATION_TIMEOUT_SECONDS}",
        )
        check(self.api_throttle_rate_limit > 0, "api_throttle_rate_limit must be positive")
        check(self.graphql_auth in ("api_key", "cognito"), "graphql_auth must be api_key or cognito")
        check(1 <= self.graphql_api_key_days <= 365, "graphql_api_key_days must be 1..365")
        check(self.api_throttle_burst_limit > 0, "api_throttle_burst_limit must be positive")
        check(
            _within(self.reaper_interval_minutes, REAPER_INTERVAL_RANGE_MINUTES),
            f"reaper_interval_minutes must be {REAPER_INTERVAL_RANGE_MINUTES[0]}.."
            f"{REAPER_INTERVAL_RANGE_MINUTES[1]}",
        )
        check(
            _within(self.ffmpeg_memory_mb, LAMBDA_MEMORY_RANGE_MB),
            "ffmpeg_memory_mb out of Lambda's range",
        )
        check(
            _within(self.ffmpeg_ephemeral_storage_mb, LAMBDA_EPHEMERAL_RANGE_MB),
            "ffmpeg_ephemeral_storage_mb out of Lambda's range",
        )
        check(
            1 <= self.ffmpeg_timeout_seconds <= LAMBDA_MAX_TIMEOUT_SECONDS,
            f"ffmpeg_timeout_seconds must be 1..{LAMBDA_MAX_TIMEOUT_SECONDS}",
        )
        check(
            1 <= self.ffmpeg_source_share_percent <= 90, "ffmpeg_source_share_percent must be 1..90"
        )
        check(
            0 <= self.ffmpeg_io_reserve_seconds < self.ffmpeg_timeout_seconds,
            "ffmpeg_io_reserve_seconds must be below ffmpeg_timeout_seconds",
        )
        check(self.ffmpeg_realtime_factor > 0, "ffmpeg_realtime_factor must be positive")
        check(0 <= self.pipeline_retry_attempts <= 5, "pipeline_retry_attempts must be 0..5")
        check(
            self.log_retention_days in _RETENTION_BY_DAYS,
            f"log_retention_days must be one of {sorted(_RETENTION_BY_DAYS)}",
        )
        for key in (
            "uploads_expiration_days",
            "outputs_expiration_days",
            "access_logs_expiration_days",
        ):
            check(getattr(self, key) >= 1, f"{key} must be at least 1")
        check(bool(self.cors_allowed_origins), "cors_allowed_origins must list at least one origin")
        check(
            self.removal_policy_name in _REMOVAL_POLICIES,
            f"removal_policy must be one of {sorted(_REMOVAL_POLICIES)}",
        )
        if problems:
            raise ConfigError("invalid mpr context: " + "; ".join(problems))


def _within(value: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _as_int(key: str, value: Any) -> int:
    # NOTE: values given with -c arrive as strings, values from cdk.json as numbers.
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a whole number, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key} must be a whole number, not {value!r}") from exc


def _as_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key} must be a number, not {value!r}") from exc


def _as_json(key: str, value: Any, kind: type) -> Any:
    # NOTE: -c can only pass strings, so a list or object given there arrives as JSON text.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key} must be a JSON {kind.__name__}, not {value!r}") from exc
    if not isinstance(value, kind):
        raise ConfigError(f"{key} must be a {kind.__name__}, not {value!r}")
    return value
