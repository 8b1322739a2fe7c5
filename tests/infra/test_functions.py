"""The Lambdas, their log groups, the REST API, and what their code assets contain."""

from __future__ import annotations

import pytest

from tests.infra.conftest import CONTEXT_OVERRIDES

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]


def function_props(synthesized, function) -> dict:
    return synthesized.resources[synthesized.logical_id(function)]["Properties"]


def test_ffmpeg_function_is_an_image_sized_from_context(synthesized):
    props = function_props(synthesized, synthesized.stack.ffmpeg.function)
    assert props["PackageType"] == "Image"
    assert "Runtime" not in props and "Handler" not in props
    assert props["Architectures"] == ["x86_64"]
    assert props["MemorySize"] == CONTEXT_OVERRIDES["mpr:ffmpeg_memory_mb"]
    assert props["EphemeralStorage"] == {
        "Size": CONTEXT_OVERRIDES["mpr:ffmpeg_ephemeral_storage_mb"]
    }
    assert props["Timeout"] == CONTEXT_OVERRIDES["mpr:ffmpeg_timeout_seconds"]
    assert props["TracingConfig"] == {"Mode": "Active"}


def test_ffmpeg_limits_are_derived_from_disk_and_timeout(synthesized):
    env = function_props(synthesized, synthesized.stack.ffmpeg.function)["Environment"]["Variables"]
    ephemeral_bytes = CONTEXT_OVERRIDES["mpr:ffmpeg_ephemeral_storage_mb"] * 1024 * 1024
    max_source = int(env["MPR_MAX_SOURCE_BYTES"])
    # The source must leave room on /tmp for the render; and the limit must not be trivial.
    assert ephemeral_bytes // 4 <= max_source <= ephemeral_bytes // 2
    max_duration = int(env["MPR_MAX_DURATION_SECONDS"])
    assert 0 < max_duration < CONTEXT_OVERRIDES["mpr:ffmpeg_timeout_seconds"]
    assert env["MPR_MEDIA_BUCKET"] == {
        "Ref": synthesized.logical_id(synthesized.stack.media.bucket)
    }
    assert env["POWERTOOLS_SERVICE_NAME"] == "mprtest"
    # Signs with the per-attempt token from the execution input, never with the master key.
    assert "MPR_CALLBACK_SECRET_ARN" not in env
    assert not any("TABLE" in name for name in env)


def test_api_function_environment(synthesized):
    stack = synthesized.stack
    props = function_props(synthesized, stack.rest_api.function)
    assert props["Runtime"] == "python3.12"
    assert props["Handler"] == "functions.api.handler"
    assert props["Timeout"] <= 29  # API Gateway's integration timeout
    env = props["Environment"]["Variables"]
    assert env["MPR_EXECUTOR"] == "lambda"
    assert env["POWERTOOLS_SERVICE_NAME"] == "mprtest"
    assert env["MPR_JOB_TABLE"] == {"Ref": synthesized.logical_id(stack.tables.jobs)}
    assert env["MPR_IDEMPOTENCY_TABLE"] == {"Ref": synthesized.logical_id(stack.tables.idempotency)}
    assert env["MPR_MEDIA_BUCKET"] == {"Ref": synthesized.logical_id(stack.media.bucket)}
    sm = synthesized.logical_id(stack.pipeline.state_machine)
    assert env["MPR_STATE_MACHINE_ARN"] == {"Ref": sm}
    secret = synthesized.logical_id(stack.callback_secret.secret)
    assert env["MPR_CALLBACK_SECRET_ARN"] == {"Ref": secret}
    # The callback base URL names the RestApi by id (no Deployment/Stage ref: that is a cycle).
    url = env["MPR_CALLBACK_URL"]["Fn::Join"][1]
    assert {"Ref": synthesized.logical_id(stack.rest_api.api)} in url
    assert url[-1].endswith(f"/{synthesized.config.api_stage_name}")


def test_every_function_logs_to_its_own_group_with_retention(synthesized):
    groups = synthesized.of_type("AWS::Logs::LogGroup")
    # REST, GraphQL, stream, reaper and FFmpeg Lambdas, API access logs, state machine, AppSync.
    assert len(groups) == 8
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == CONTEXT_OVERRIDES["mpr:log_retention_days"]
        name = group["Properties"]["LogGroupName"]
        assert "Fn::Join" in name or name.startswith(("/mprtest/", "/aws/vendedlogs/")), name
    used = []
    for key, function in synthesized.of_type("AWS::Lambda::Function").items():
        ref = function["Properties"]["LoggingConfig"]["LogGroup"]
        assert ref["Ref"] in groups, key
        used.append(ref["Ref"])
    # The five Lambdas above; CDK adds no helper function (log retention, bucket notifications).
    assert len(set(used)) == len(used) == 5


def test_rest_api_proxies_api_paths_with_logging_tracing_and_throttling(synthesized):
    resources = synthesized.of_type("AWS::ApiGateway::Resource")
    assert sorted(r["Properties"]["PathPart"] for r in resources.values()) == ["api", "{proxy+}"]
    methods = synthesized.of_type("AWS::ApiGateway::Method")
    function = synthesized.logical_id(synthesized.stack.rest_api.function)
    assert len(methods) == 2
    for method in methods.values():
        props = method["Properties"]
        assert props["HttpMethod"] == "ANY"
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert function in str(props["Integration"]["Uri"])
        assert "RequestValidatorId" in props
    (stage,) = synthesized.of_type("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["TracingEnabled"] is True
    assert "DestinationArn" in props["AccessLogSetting"]
    (settings,) = props["MethodSettings"]
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["DataTraceEnabled"] is False
    assert settings["ThrottlingRateLimit"] == synthesized.config.api_throttle_rate_limit
    assert settings["ThrottlingBurstLimit"] == synthesized.config.api_throttle_burst_limit


def _entries(directory) -> set[str]:
    return {path.name for path in directory.iterdir()}


def test_api_asset_holds_only_runtime_code_without_a_package(synthesized):
    props = function_props(synthesized, synthesized.stack.rest_api.function)
    asset = synthesized.asset_dir(props["Code"]["S3Key"].removesuffix(".zip"))
    entries = _entries(asset)
    if synthesized.stack.rest_api.packaged:
        pytest.skip("a lambda package exists; its content is tested in test_packaging")
    assert "mpr" in entries
    assert entries <= {"mpr", "functions", "requirements.txt"}
    assert not list(asset.rglob("__pycache__"))


def test_image_asset_holds_only_what_the_dockerfile_copies(synthesized):
    props = function_props(synthesized, synthesized.stack.ffmpeg.function)
    image_uri = props["Code"]["ImageUri"]["Fn::Sub"]
    asset = synthesized.asset_dir(image_uri.rsplit(":", 1)[1])
    assert (asset / "container" / "Dockerfile").is_file()
    assert _entries(asset) <= {".dockerignore", "container", "mpr", "requirements.txt"}
    assert _entries(asset / "container") <= {"Dockerfile", "handler.py"}
    assert (asset / "mpr" / "__init__.py").is_file()
