"""The typed configuration: cdk.json is complete and valid, and bad values are refused."""

from __future__ import annotations

import json

import pytest

from stacks.config import ConfigError, MprConfig
from tests.infra.conftest import REPO_ROOT

pytestmark = [pytest.mark.infra, pytest.mark.timeout(60)]


def cdk_json_context() -> dict:
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def config_from(**overrides) -> MprConfig:
    context = cdk_json_context()
    context.update({f"mpr:{key}": value for key, value in overrides.items()})

    def get(key: str):
        if f"mpr:{key}" not in context:
            raise ConfigError(f"missing {key}")
        return context[f"mpr:{key}"]

    return MprConfig.from_mapping(get)


def test_cdk_json_is_a_valid_config():
    config = config_from()
    assert config.executor == "lambda"
    assert config.ffmpeg_timeout_seconds == 900
    assert config.ffmpeg_ephemeral_storage_mb == 10240
    assert config.removal_policy_name == "retain"


def test_cdk_json_runs_the_app_through_the_venv():
    assert json.loads((REPO_ROOT / "cdk.json").read_text())["app"] == ".venv/bin/python app.py"


def test_derived_limits():
    config = config_from(
        ffmpeg_ephemeral_storage_mb=1000,
        ffmpeg_source_share_percent=40,
        ffmpeg_timeout_seconds=600,
        ffmpeg_io_reserve_seconds=100,
        ffmpeg_realtime_factor=2.0,
    )
    assert config.ffmpeg_max_source_bytes == 1000 * 1024 * 1024 * 40 // 100
    assert config.ffmpeg_max_duration_seconds == 1000


def test_command_line_strings_are_accepted():
    # `cdk synth -c mpr:ffmpeg_memory_mb=4096` delivers a string.
    config = config_from(ffmpeg_memory_mb="4096", cors_allowed_origins='["https://a.example"]')
    assert config.ffmpeg_memory_mb == 4096
    assert config.cors_allowed_origins == ("https://a.example",)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ffmpeg_timeout_seconds", 901),
        ("ffmpeg_ephemeral_storage_mb", 20000),
        ("ffmpeg_memory_mb", 64),
        ("ffmpeg_memory_mb", "lots"),
        ("ffmpeg_io_reserve_seconds", 900),
        ("api_timeout_seconds", 30),
        ("log_retention_days", 10),
        ("removal_policy", "snapshot"),
        ("executor", "local"),
        ("prefix", "MPR"),
        ("cors_allowed_origins", "https://a.example"),
    ],
)
def test_bad_values_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        config_from(**{key: value})


def test_a_missing_key_is_refused():
    from aws_cdk import App

    context = cdk_json_context()
    del context["mpr:log_retention_days"]
    with pytest.raises(ConfigError, match="mpr:log_retention_days is missing"):
        MprConfig.from_node(App(context=context).node)
