"""The GraphQL construct synthesized on a small stack: schema, auth modes, resolvers, live updates, cdk-nag.

tests/infra/conftest.py quiets jsii and CDK telemetry (JSII_SILENCE_WARNING_*, CDK_DISABLE_CLI_TELEMETRY)
before aws_cdk is first imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from local import appsync as local_appsync

pytestmark = [pytest.mark.infra, pytest.mark.timeout(600)]

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {"MPR_EXECUTOR": "lambda", "MPR_MEDIA_BUCKET": "test-media"}


@dataclass
class Synthesized:
    template: object  # aws_cdk.assertions.Template
    findings: list
    construct: object  # stacks.graphql_api.GraphqlApi
    stack: object


def synthesize(tmp_path: Path, auth_mode: str, acknowledge: bool = True) -> Synthesized:
    """A stack holding a job table with a stream and the construct, synthesized with cdk-nag.

    With ``acknowledge=False`` every suppression is switched off, to see the raw findings."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk.assertions import Template

    from stacks import nag
    from stacks.config import MprConfig
    from stacks.graphql_api import GraphqlApi

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context[nag.ACKNOWLEDGE_CONTEXT_KEY] = str(acknowledge).lower()
    app = App(context=context, outdir=str(tmp_path))
    stack = Stack(app, "GraphqlTest")
    table = dynamodb.Table(
        stack, "Jobs", partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
        stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES, billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True),
    )
    construct = GraphqlApi(
        stack, "Graphql", config=MprConfig.from_node(app.node), code=lambda_.Code.from_inline("handler = None"),
        environment={**ENVIRONMENT, "MPR_JOB_TABLE": table.table_name},
        grant_service=lambda role: table.grant_read_write_data(role), jobs_table=table,
        auth_mode=auth_mode, api_key_expiry_days=30,
    )
    nag.add_checks(app)
    try:
        app.synth()
    except RuntimeError:
        if acknowledge:
            raise
        return Synthesized(None, nag.findings_in(tmp_path), construct, stack)
    return Synthesized(Template.from_stack(stack), nag.findings_in(tmp_path), construct, stack)


@pytest.fixture(scope="module")
def api_key_stack(tmp_path_factory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("graphql-api-key"), "api_key")


@pytest.fixture(scope="module")
def cognito_stack(tmp_path_factory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("graphql-cognito"), "cognito")


def only(template, resource_type: str, **filters) -> dict:
    found = template.find_resources(resource_type, filters or None)
    assert len(found) == 1, f"{len(found)} {resource_type} resources: {list(found)}"
    return next(iter(found.values()))["Properties"]


def logical_id(synthesized: Synthesized, construct) -> str:
    return synthesized.stack.get_logical_id(construct.node.default_child)


def test_api_definition_is_the_schema_file_as_it_is(api_key_stack):
    schema = only(api_key_stack.template, "AWS::AppSync::GraphQLSchema")

    assert schema["Definition"] == local_appsync.SCHEMA_FILE.read_text()


def test_api_key_is_the_default_mode_and_iam_the_additional_one(api_key_stack):
    api = only(api_key_stack.template, "AWS::AppSync::GraphQLApi")
    key = only(api_key_stack.template, "AWS::AppSync::ApiKey")

    assert api["AuthenticationType"] == "API_KEY"
    assert api["AdditionalAuthenticationProviders"] == [{"AuthenticationType": "AWS_IAM"}]
    assert isinstance(key["Expires"], int)


def test_every_query_and_mutation_but_publish_has_a_lambda_resolver(api_key_stack):
    template = api_key_stack.template
    lambda_source = only(template, "AWS::AppSync::DataSource", Properties={"Type": "AWS_LAMBDA"})
    schema = local_appsync.schema()
    expected = {(root.name, field) for root in (schema.query_type, schema.mutation_type) for field in root.fields}
    expected.discard(("Mutation", "publishJobUpdate"))

    resolvers = template.find_resources("AWS::AppSync::Resolver",
                                        {"Properties": {"DataSourceName": lambda_source["Name"]}}).values()

    assert {(r["Properties"]["TypeName"], r["Properties"]["FieldName"]) for r in resolvers} == expected
    assert {r["Properties"]["Runtime"]["Name"] for r in resolvers} == {"APPSYNC_JS"}


def test_publish_job_update_is_resolved_by_a_none_data_source(api_key_stack):
    template = api_key_stack.template
    none_source = only(template, "AWS::AppSync::DataSource", Properties={"Type": "NONE"})

    resolver = only(template, "AWS::AppSync::Resolver", Properties={"FieldName": "publishJobUpdate"})

    assert resolver["TypeName"] == "Mutation"
    assert resolver["DataSourceName"] == none_source["Name"]


def test_only_the_stream_role_may_call_appsync_and_only_publish_job_update(api_key_stack):
    template = api_key_stack.template
    stream_role = logical_id(api_key_stack, api_key_stack.construct.stream_role)
    api = logical_id(api_key_stack, api_key_stack.construct.api)
    grants = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action.startswith("appsync:") for action in actions):
                grants.append((policy["Properties"]["Roles"], actions, statement["Resource"]))

    (roles, actions, resource) = grants[0]
    assert len(grants) == 1
    assert roles == [{"Ref": stream_role}] and actions == ["appsync:GraphQL"]
    parts = resource["Fn::Join"][1]
    assert {"Fn::GetAtt": [api, "ApiId"]} in parts
    assert parts[-1] == "/types/Mutation/fields/publishJobUpdate"


def test_stream_function_reads_the_job_table_stream_for_inserts_and_modifies(api_key_stack):
    mapping = only(api_key_stack.template, "AWS::Lambda::EventSourceMapping")

    assert mapping["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn"
    assert json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"]) == {"eventName": ["INSERT", "MODIFY"]}
    stream = only(api_key_stack.template, "AWS::Lambda::Function",
                  Properties={"Handler": "functions.job_stream.handler"})
    assert "MPR_GRAPHQL_URL" in stream["Environment"]["Variables"]


def test_resolver_function_runs_the_graphql_handler_with_the_rest_environment(api_key_stack):
    function = only(api_key_stack.template, "AWS::Lambda::Function",
                    Properties={"Handler": "functions.graphql.handler"})

    assert ENVIRONMENT.items() <= function["Environment"]["Variables"].items()
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_api_logs_errors_with_retention_and_traces(api_key_stack):
    template = api_key_stack.template
    api = only(template, "AWS::AppSync::GraphQLApi")
    groups = template.find_resources("AWS::Logs::LogGroup")
    appsync_groups = [g["Properties"] for g in groups.values() if "/aws/appsync/apis/" in json.dumps(g)]
    assert len(appsync_groups) == 1
    group = appsync_groups[0]
    config = api_key_stack.construct._config

    assert api["LogConfig"]["FieldLogLevel"] == "ERROR"
    assert api["LogConfig"]["ExcludeVerboseContent"] is True
    assert api["XrayEnabled"] is True
    assert group["RetentionInDays"] == config.log_retention_days
    assert template.find_resources("Custom::LogRetention") == {}


def test_cognito_mode_makes_the_user_pool_the_default_and_keeps_iam(cognito_stack):
    template = cognito_stack.template
    api = only(template, "AWS::AppSync::GraphQLApi")
    pool = only(template, "AWS::Cognito::UserPool")

    assert api["AuthenticationType"] == "AMAZON_COGNITO_USER_POOLS"
    assert api["AdditionalAuthenticationProviders"] == [{"AuthenticationType": "AWS_IAM"}]
    assert template.find_resources("AWS::AppSync::ApiKey") == {}
    assert pool["MfaConfiguration"] == "ON"
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True


@pytest.mark.parametrize("fixture", ["api_key_stack", "cognito_stack"])
def test_cdk_nag_finds_nothing_unsuppressed(fixture, request):
    assert request.getfixturevalue(fixture).findings == []


@pytest.mark.parametrize("auth_mode", ["api_key", "cognito"])
def test_every_acknowledgment_matches_a_raw_finding_with_a_real_reason(auth_mode, tmp_path):
    from aws_cdk import Validations

    raw = synthesize(tmp_path, auth_mode, acknowledge=False).findings
    acknowledged = synthesize(tmp_path / "acknowledged", auth_mode).construct.node.root

    acks = [(construct.node.path, rule, reason) for construct in acknowledged.node.find_all()
            for entry in construct.node.metadata if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
            for rule, reason in entry.data.items()]
    stale = [(path, rule) for path, rule, _ in acks
             if not any(rule.endswith(finding.rule) and f"{finding.construct_path}/".startswith(f"{path}/")
                        for finding in raw)]

    assert acks and stale == []
    assert all(len(reason) >= 40 for _, _, reason in acks)


def test_unknown_auth_mode_is_refused():
    from stacks.graphql_api import _check_auth

    with pytest.raises(ValueError, match="auth_mode"):
        _check_auth("oidc", 30)
