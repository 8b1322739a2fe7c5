"""cdk-nag wiring: the AwsSolutions pack as a synth-time validation plugin, and its suppressions.

cdk-nag 3.x is a CDK policy-validation plugin (``Validations.of(app).add_plugins``), no longer
an Aspect. CDK runs the plugin after the templates are written and, for an in-process app,
raises ``ValidationFailed`` when the pack reports an *error*. Two gaps remain, which
``check_report`` closes by reading the report CDK writes into the cloud assembly:

* AwsSolutions marks some rules (e.g. APIG3, DDB3) as *warnings*, and CDK does not fail on those;
* when the CDK CLI runs the app in "process" mode, CDK only sets the Node process's exit code,
  which the Python app never sees.

Suppressions use ``Validations.of(construct).acknowledge`` with one exact finding id each
(cdk-nag 3.x has no prefix matching), always with a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK_NAME = "AwsSolutions"
# `-c mpr:nag_acknowledge=false` turns every acknowledgment off, to list all raw findings; the
# infra tests use it to prove that each acknowledgment still matches a real finding.
ACKNOWLEDGE_CONTEXT_KEY = "mpr:nag_acknowledge"
# The file CDK writes next to the templates (cx-api VALIDATION_REPORT_FILE).
REPORT_FILE = "validation-report.json"


class NagFindingsError(RuntimeError):
    """cdk-nag reported findings that no acknowledgment covers."""


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    construct_path: str
    description: str

    def __str__(self) -> str:
        return f"{self.rule} ({self.severity}) at {self.construct_path}: {self.description}"


def add_checks(app: IConstruct) -> None:
    """Register the AwsSolutions pack on the app; it then runs at every synth."""
    # NOTE: write_suppressions_to_cloud_formation copies each acknowledgment into the
    # resource's template Metadata, so a reviewer of the template sees the reasons too.
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )


def suppress(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on ``scope`` and everything below it."""
    if len(reason.strip()) < 20:
        # A one-word reason is no reason; make the author write down why.
        raise ValueError(f"suppression of {rule} needs a real reason, got {reason!r}")
    if str(scope.node.try_get_context(ACKNOWLEDGE_CONTEXT_KEY)).lower() == "false":
        return
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def arn_of(resource: IConstruct) -> str:
    """How cdk-nag spells ``Fn::GetAtt [X, Arn]`` in an IAM5 finding id: ``<LogicalId.Arn>``."""
    return f"<{_logical_id(resource)}.Arn>"


def ref_of(resource: IConstruct) -> str:
    """How cdk-nag spells ``Ref X`` in an IAM5 finding id: ``<LogicalId>``."""
    return f"<{_logical_id(resource)}>"


def _logical_id(resource: IConstruct) -> str:
    element = resource if isinstance(resource, CfnElement) else resource.node.default_child
    if not isinstance(element, CfnElement):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource")
    return Stack.of(element).get_logical_id(element)


def findings_in(assembly_dir: str | Path) -> list[Finding]:
    """Unacknowledged AwsSolutions findings recorded in a synthesized cloud assembly."""
    report_path = Path(assembly_dir) / REPORT_FILE
    if not report_path.exists():
        # CDK writes no report when no plugin produced any output at all.
        return []
    report = json.loads(report_path.read_text())
    findings: list[Finding] = []
    for plugin in report.get("pluginReports", []):
        if plugin.get("pluginName") != PACK_NAME:
            continue
        error = (plugin.get("metadata") or {}).get("error")
        if error:
            # The pack itself crashed: that must not read as "no findings".
            findings.append(Finding("cdk-nag-plugin-failure", "error", "", str(error)))
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                findings.append(
                    Finding(
                        rule=violation.get("ruleName", "?"),
                        severity=violation.get("severity", "?"),
                        construct_path=construct.get("constructPath", ""),
                        description=violation.get("description", ""),
                    )
                )
    return findings


def check_report(assembly_dir: str | Path) -> None:
    """Raise when the assembly has any unacknowledged AwsSolutions finding, warning or error."""
    findings = findings_in(assembly_dir)
    if findings:
        lines = "\n".join(f"  - {finding}" for finding in findings)
        raise NagFindingsError(f"{len(findings)} unsuppressed cdk-nag finding(s):\n{lines}")
