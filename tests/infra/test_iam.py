"""What each role may do: the API starts exactly our state machine, FFmpeg writes only renders."""

from __future__ import annotations

import pytest

from tests.infra.conftest import flatten

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]

S3_WRITE_PREFIXES = ("s3:Put", "s3:Delete", "s3:Abort", "s3:Restore", "s3:Replicate")


def statements_of(synthesized, role) -> list[dict]:
    """Every Allow statement of the inline policies attached to ``role``."""
    role_id = synthesized.logical_id(role)
    found = []
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    role_props = synthesized.resources[role_id]["Properties"]
    for inline in role_props.get("Policies", []):
        found.extend(inline["PolicyDocument"]["Statement"])
    assert found, f"no policy found for {role_id}"
    return found


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def actions(statement: dict) -> list[str]:
    return as_list(statement["Action"])


def resources(statement: dict) -> list[str]:
    return [flatten(resource) for resource in as_list(statement["Resource"])]


def test_no_role_uses_a_managed_policy_except_api_gateways_logging_role(synthesized):
    api_logging_role = synthesized.logical_id(
        synthesized.stack.rest_api.api.node.find_child("CloudWatchRole")
    )
    for key, role in synthesized.of_type("AWS::IAM::Role").items():
        if key == api_logging_role:
            continue
        assert "ManagedPolicyArns" not in role["Properties"], key


def test_api_can_start_exactly_our_state_machine(synthesized):
    stack = synthesized.stack
    sm = synthesized.logical_id(stack.pipeline.state_machine)
    statements = statements_of(synthesized, stack.rest_api.role)
    start = [s for s in statements if "states:StartExecution" in actions(s)]
    assert len(start) == 1
    assert resources(start[0]) == [f"<{sm}>"]
    stop = [s for s in statements if "states:StopExecution" in actions(s)]
    assert len(stop) == 1
    assert resources(stop[0]) == [
        "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:mprtest-pipeline:*"
    ]
    every_states_action = {a for s in statements for a in actions(s) if a.startswith("states:")}
    assert every_states_action == {"states:StartExecution", "states:StopExecution"}


def test_api_can_use_tables_bucket_and_secret(synthesized):
    stack = synthesized.stack
    statements = statements_of(synthesized, stack.rest_api.role)
    by_resource: dict[str, set[str]] = {}
    for statement in statements:
        for resource in resources(statement):
            by_resource.setdefault(resource, set()).update(actions(statement))
    jobs = f"<{synthesized.logical_id(stack.tables.jobs)}.Arn>"
    idem = f"<{synthesized.logical_id(stack.tables.idempotency)}.Arn>"
    bucket = f"<{synthesized.logical_id(stack.media.bucket)}.Arn>"
    secret = f"<{synthesized.logical_id(stack.callback_secret.secret)}>"
    for table in (jobs, idem):
        assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= by_resource[table]
    assert "dynamodb:Query" in by_resource[f"{jobs}/index/*"]
    assert {"s3:PutObject", "s3:GetObject*"} <= by_resource[f"{bucket}/*"]
    assert "secretsmanager:GetSecretValue" in by_resource[secret]


def test_ffmpeg_role_has_no_dynamodb_and_no_secret(synthesized):
    statements = statements_of(synthesized, synthesized.stack.ffmpeg.role)
    every_action = [a for s in statements for a in actions(s)]
    assert every_action, "the FFmpeg role has no permissions at all"
    assert not [a for a in every_action if a.lower().startswith(("dynamodb:", "secretsmanager:"))]
    assert "*" not in every_action


def test_ffmpeg_role_writes_only_under_outputs(synthesized):
    stack = synthesized.stack
    bucket = f"<{synthesized.logical_id(stack.media.bucket)}.Arn>"
    statements = statements_of(synthesized, stack.ffmpeg.role)
    writes = [s for s in statements if any(a.startswith(S3_WRITE_PREFIXES) for a in actions(s))]
    assert writes, "the FFmpeg role cannot write its renders"
    for statement in writes:
        # A statement that mixes writes with reads would widen the writes to the read resources.
        assert all(a.startswith(S3_WRITE_PREFIXES) for a in actions(statement)), statement
        assert resources(statement) == [f"{bucket}/outputs/*"], statement
    reads = [s for s in statements if "s3:GetObject*" in actions(s)]
    assert reads and f"{bucket}/*" in resources(reads[0])


def test_state_machine_may_invoke_only_the_ffmpeg_function(synthesized):
    stack = synthesized.stack
    function = synthesized.logical_id(stack.ffmpeg.function)
    statements = statements_of(synthesized, stack.pipeline.state_machine.role)
    invoke = [s for s in statements if "lambda:InvokeFunction" in actions(s)]
    assert len(invoke) == 1
    assert set(resources(invoke[0])) <= {f"<{function}.Arn>", f"<{function}.Arn>:*"}
