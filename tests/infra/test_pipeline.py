"""The state machine definition: what is retried, what is caught, and the time limits."""

from __future__ import annotations

import json

import pytest

from stacks.pipeline import LAMBDA_SERVICE_ERRORS
from tests.infra.conftest import CONTEXT_OVERRIDES, flatten

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def machine(synthesized) -> dict:
    (resource,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    return resource


@pytest.fixture(scope="module")
def definition(machine) -> dict:
    # DefinitionString is an Fn::Join of JSON text and intrinsics (the function ARN, the
    # partition); flattening the intrinsics to <Id.Attr> text leaves valid JSON.
    return json.loads(flatten(machine["Properties"]["DefinitionString"]))


@pytest.fixture(scope="module")
def ffmpeg_arn(synthesized) -> str:
    return f"<{synthesized.logical_id(synthesized.stack.ffmpeg.function)}.Arn>"


def test_run_task_invokes_ffmpeg_with_the_whole_input(definition, ffmpeg_arn):
    run = definition["States"][definition["StartAt"]]
    assert definition["StartAt"] == "RunFfmpeg"
    assert run["Type"] == "Task"
    assert run["Resource"].endswith(":states:::lambda:invoke")
    assert run["Parameters"]["FunctionName"] == ffmpeg_arn
    # container/handler.py reads job_id, attempt, callback_url and callback_token at the top.
    assert run["Parameters"]["Payload.$"] == "$"


def test_run_task_retries_only_lambda_service_errors(definition):
    run = definition["States"]["RunFfmpeg"]
    assert run["Retry"], "no Retry at all"
    retried = set()
    for retry in run["Retry"]:
        assert not {"States.ALL", "States.TaskFailed", "States.Timeout"} & set(retry["ErrorEquals"])
        assert retry["BackoffRate"] > 1
        assert retry["MaxAttempts"] == CONTEXT_OVERRIDES["mpr:pipeline_retry_attempts"]
        retried.update(retry["ErrorEquals"])
    assert (
        retried
        == set(LAMBDA_SERVICE_ERRORS)
        == {
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        }
    )


def test_run_task_times_out_after_the_lambda_does(definition):
    run = definition["States"]["RunFfmpeg"]
    lambda_timeout = CONTEXT_OVERRIDES["mpr:ffmpeg_timeout_seconds"]
    assert lambda_timeout < run["TimeoutSeconds"] <= lambda_timeout + 120


def test_any_run_error_is_reported_then_fails(definition, ffmpeg_arn):
    run = definition["States"]["RunFfmpeg"]
    (catch,) = run["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    assert catch["ResultPath"] == "$.failure"  # handler.py: `"failure" in event`
    report = definition["States"][catch["Next"]]
    assert report["Type"] == "Task"
    assert report["Parameters"]["FunctionName"] == ffmpeg_arn
    assert report["Parameters"]["Payload.$"] == "$"
    assert 0 < report["TimeoutSeconds"] < run["TimeoutSeconds"]
    assert report["Retry"]
    # A report that itself fails must still end the execution as failed, not hang or succeed.
    assert "Catch" not in report
    assert definition["States"][report["Next"]]["Type"] == "Fail"
    assert definition["States"][run["Next"]]["Type"] == "Succeed"


def test_execution_timeout_leaves_room_for_every_retry_and_the_report(definition):
    run = definition["States"]["RunFfmpeg"]
    report = definition["States"]["ReportFailure"]
    run_worst = (run["Retry"][0]["MaxAttempts"] + 1) * run["TimeoutSeconds"]
    report_worst = (report["Retry"][0]["MaxAttempts"] + 1) * report["TimeoutSeconds"]
    # An execution timeout skips the Catch, so it must never cut the failure report short.
    assert definition["TimeoutSeconds"] > run_worst + report_worst


def test_state_machine_logs_all_events_and_traces(machine, synthesized):
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["StateMachineName"] == "mprtest-pipeline"
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    # Execution data carries the attempt's callback token; it stays out of CloudWatch Logs.
    assert logging["IncludeExecutionData"] is False
    (destination,) = logging["Destinations"]
    group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    group = synthesized.resources[group_id]["Properties"]
    assert group["RetentionInDays"] == CONTEXT_OVERRIDES["mpr:log_retention_days"]
    assert group["LogGroupName"].startswith("/aws/vendedlogs/states/")
