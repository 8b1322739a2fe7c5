"""cdk-nag gates synth: an unsuppressed finding fails it, and every suppression is still needed."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3

from stacks import nag
from stacks.mpr_stack import build_app
from tests.infra.conftest import CONTEXT_OVERRIDES

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]


def tiny_app(tmp_path, build, context: dict | None = None) -> App:
    app = App(outdir=str(tmp_path), context=context)
    build(Stack(app, "Tiny"))
    nag.add_checks(app)
    return app


def test_an_error_finding_fails_synth(tmp_path):
    # A default bucket: no access logs (S1) and no SSL-only policy (S10), both errors.
    app = tiny_app(tmp_path, lambda stack: s3.Bucket(stack, "Plain"))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {finding.rule for finding in nag.findings_in(tmp_path)}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules
    with pytest.raises(nag.NagFindingsError, match="AwsSolutions-S10"):
        nag.check_report(tmp_path)


def test_a_warning_fails_our_gate_even_where_cdk_does_not_raise(tmp_path):
    # A table without point-in-time recovery is AwsSolutions-DDB3, which the pack rates a warning.
    # In "process" mode (how the CDK CLI may run an app) CDK only sets the Node process's exit
    # code, which a Python app never sees; check_report is what fails app.py then.
    def build(stack: Stack) -> None:
        dynamodb.Table(
            stack,
            "NoRecovery",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            removal_policy=RemovalPolicy.DESTROY,
        )

    app = tiny_app(tmp_path, build, {"@aws-cdk/core:appMode": "process"})
    app.synth()  # does not raise
    findings = nag.findings_in(tmp_path)
    assert [(f.rule, f.severity) for f in findings] == [("AwsSolutions-DDB3", "warning")]
    with pytest.raises(nag.NagFindingsError, match="AwsSolutions-DDB3"):
        nag.check_report(tmp_path)


def test_an_acknowledged_finding_passes(tmp_path):
    def build(stack: Stack) -> None:
        bucket = s3.Bucket(stack, "Acked", enforce_ssl=True)
        nag.suppress(bucket, "AwsSolutions-S1", "A test bucket that exists only in this test.")

    app = tiny_app(tmp_path, build)
    app.synth()
    assert nag.findings_in(tmp_path) == []


def test_a_suppression_needs_a_reason():
    app = App()
    with pytest.raises(ValueError, match="real reason"):
        nag.suppress(Stack(app, "S"), "AwsSolutions-S1", "because")


def acknowledgments(app: App) -> dict[tuple[str, str], str]:
    """(construct path, rule id) -> reason, for every acknowledgment in the construct tree."""
    found = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                continue
            for key, reason in entry.data.items():
                rule = key.split("::", 1)[1] if key.lower().startswith("annotation::") else key
                found[(construct.node.path, rule)] = reason
    return found


@pytest.fixture(scope="module")
def raw_findings(tmp_path_factory) -> list[nag.Finding]:
    """The findings of the same app with every acknowledgment switched off."""
    outdir = tmp_path_factory.mktemp("nag-raw")
    app, _ = build_app(
        context={**CONTEXT_OVERRIDES, nag.ACKNOWLEDGE_CONTEXT_KEY: "false"}, outdir=str(outdir)
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    return nag.findings_in(outdir)


def test_every_acknowledgment_still_matches_a_finding(synthesized, raw_findings):
    acks = acknowledgments(synthesized.app)
    assert acks, "the app acknowledges nothing: the nag gate would have caught real findings"
    stale = [
        (path, rule)
        for path, rule in acks
        if not any(
            finding.rule == rule and f"{finding.construct_path}/".startswith(f"{path}/")
            for finding in raw_findings
        )
    ]
    assert stale == [], "acknowledgments that no longer match any finding"


def test_every_finding_is_acknowledged_with_a_specific_reason(synthesized, raw_findings):
    acks = acknowledgments(synthesized.app)
    for finding in raw_findings:
        covering = [
            reason
            for (path, rule), reason in acks.items()
            if rule == finding.rule and f"{finding.construct_path}/".startswith(f"{path}/")
        ]
        assert covering, f"unacknowledged: {finding}"
        assert all(len(reason) >= 40 for reason in covering), finding
    # Stack-wide acknowledgments would hide future findings anywhere in the stack.
    assert not [path for path, _ in acks if path.count("/") < 1]


def test_the_dev_variant_passes_too(tmp_path):
    # removal_policy=destroy adds CDK's auto-delete-objects custom resource; it must pass as well.
    app, stack = build_app(
        context={**CONTEXT_OVERRIDES, "mpr:removal_policy": "destroy"}, outdir=str(tmp_path)
    )
    app.synth()
    nag.check_report(tmp_path)
    template = json.loads((tmp_path / f"{stack.artifact_id}.template.json").read_text())
    resources = template["Resources"].values()
    assert any(r["Type"] == "Custom::S3AutoDeleteObjects" for r in resources)
    for resource in resources:
        if resource["Type"] == "AWS::DynamoDB::Table":
            assert resource["DeletionPolicy"] == "Delete"
            assert resource["Properties"]["DeletionProtectionEnabled"] is False
