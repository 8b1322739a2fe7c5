"""The reaper: a schedule from context, the REST Lambda's code and settings, and a narrow role."""

from __future__ import annotations

import importlib

import pytest

from stacks.config import ConfigError
from tests.infra.test_config import config_from
from tests.infra.test_iam import actions, resources, statements_of

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]


def function_props(synthesized, function) -> dict:
    return synthesized.resources[synthesized.logical_id(function)]["Properties"]


def test_schedule_runs_the_reaper_every_five_minutes_by_default(synthesized):
    # Given the session's app, which leaves mpr:reaper_interval_minutes at cdk.json's value
    reaper = synthesized.stack.reaper

    # When the rule is read from the template
    rule = synthesized.resources[synthesized.logical_id(reaper.rule)]["Properties"]

    # Then it fires every 5 minutes and invokes the reaper function, and only it
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synthesized.logical_id(reaper.function), "Arn"]}


def test_schedule_interval_comes_from_context(tmp_path):
    from aws_cdk import App, Stack
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_secretsmanager as secretsmanager
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template

    from stacks.reaper import Reaper

    # Given a reaper built from a config whose interval is one minute
    stack = Stack(App(outdir=str(tmp_path)), "ReaperOnly")
    Reaper(
        stack,
        "Reaper",
        config=config_from(reaper_interval_minutes="1"),
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        environment={"MPR_EXECUTOR": "lambda"},
        jobs_table=dynamodb.Table.from_table_name(stack, "Jobs", "mpr-jobs"),
        state_machine=sfn.StateMachine.from_state_machine_name(stack, "Pipeline", "mpr-pipeline"),
        callback_secret=secretsmanager.Secret.from_secret_name_v2(stack, "Secret", "mpr-callback"),
    )

    # When it is synthesized, then the rule fires every minute
    Template.from_stack(stack).has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(1 minute)"}
    )


@pytest.mark.parametrize("minutes", [0, 61, "often"])
def test_interval_outside_one_to_sixty_minutes_is_refused(minutes):
    with pytest.raises(ConfigError, match="reaper_interval_minutes"):
        config_from(reaper_interval_minutes=minutes)


def test_reaper_can_start_exactly_our_state_machine_and_has_no_s3(synthesized):
    stack = synthesized.stack
    sm = synthesized.logical_id(stack.pipeline.state_machine)

    statements = statements_of(synthesized, stack.reaper.role)

    start = [s for s in statements if "states:StartExecution" in actions(s)]
    assert len(start) == 1
    assert resources(start[0]) == [f"<{sm}>"]
    every_action = {a for s in statements for a in actions(s)}
    # No StopExecution: reap never cancels; and no S3: it neither signs URLs nor touches media.
    assert {a for a in every_action if a.startswith("states:")} == {"states:StartExecution"}
    assert not [a for a in every_action if a.lower().startswith("s3:")]


def test_reaper_reads_and_updates_only_the_job_table_and_reads_the_secret(synthesized):
    stack = synthesized.stack
    jobs = f"<{synthesized.logical_id(stack.tables.jobs)}.Arn>"
    secret = f"<{synthesized.logical_id(stack.callback_secret.secret)}>"

    by_resource: dict[str, set[str]] = {}
    for statement in statements_of(synthesized, stack.reaper.role):
        for resource in resources(statement):
            by_resource.setdefault(resource, set()).update(actions(statement))

    dynamodb = {r: a for r, a in by_resource.items() if any(x.startswith("dynamodb:") for x in a)}
    # in_status queries by_status; fail and mark_dispatched update; a lost condition reads the job.
    assert dynamodb == {
        jobs: {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        f"{jobs}/index/by_status": {"dynamodb:Query"},
    }
    # execution_input derives each resent execution's callback token from the secret.
    assert "secretsmanager:GetSecretValue" in by_resource[secret]


def test_reaper_runs_the_reaper_handler_from_the_api_code(synthesized):
    stack = synthesized.stack
    props = function_props(synthesized, stack.reaper.function)
    api_props = function_props(synthesized, stack.rest_api.function)

    assert props["Handler"] == "functions.reaper.handler"
    assert props["Runtime"] == api_props["Runtime"]
    assert props["Code"] == api_props["Code"]
    # The handler string names real code.
    module, name = props["Handler"].rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))


def test_reaper_environment_equals_the_api_environment(synthesized):
    stack = synthesized.stack
    env = function_props(synthesized, stack.reaper.function)["Environment"]["Variables"]
    api_env = function_props(synthesized, stack.rest_api.function)["Environment"]["Variables"]

    assert env == api_env
    # Including the callback URL, set on the API after its RestApi exists.
    assert "MPR_CALLBACK_URL" in env


def test_reaper_is_not_retried_within_one_run(synthesized):
    # The next scheduled run is the retry; Lambda's async retries would only add load.
    configs = synthesized.of_type("AWS::Lambda::EventInvokeConfig")
    function = synthesized.logical_id(synthesized.stack.reaper.function)
    (config,) = [
        props
        for props in (c["Properties"] for c in configs.values())
        if props["FunctionName"] == {"Ref": function}
    ]
    assert config["MaximumRetryAttempts"] == 0
