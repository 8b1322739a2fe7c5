"""Shared fixtures of the infra tests: the CDK app synthesized once per session.

Synth costs several seconds of jsii round trips, so every template test reads the same
assembly. The app is built with context values that differ from cdk.json's defaults, so a test
that finds such a value in the template proves the value came from context, not a literal.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# NOTE: jsii starts its Node process on the first import of aws_cdk and hands it this
# environment; the banners would otherwise fill every failing test's output.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Distinct from cdk.json on purpose (see the module docstring).
CONTEXT_OVERRIDES: dict[str, Any] = {
    "mpr:prefix": "mprtest",
    "mpr:ffmpeg_memory_mb": 4096,
    "mpr:ffmpeg_ephemeral_storage_mb": 8192,
    "mpr:ffmpeg_timeout_seconds": 600,
    "mpr:log_retention_days": 14,
    "mpr:uploads_expiration_days": 3,
    "mpr:outputs_expiration_days": 21,
    "mpr:pipeline_retry_attempts": 3,
}


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too so that `pytest tests/infra` works without the project's ini.
    config.addinivalue_line("markers", "infra: synthesizes the CDK app")


@dataclass
class Synthesized:
    app: Any
    stack: Any
    config: Any
    outdir: Path
    template: dict

    @property
    def resources(self) -> dict[str, dict]:
        return self.template["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict]:
        return {key: value for key, value in self.resources.items() if value["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        from aws_cdk import CfnElement, Stack

        element = construct if isinstance(construct, CfnElement) else construct.node.default_child
        return Stack.of(element).get_logical_id(element)

    def asset_dir(self, asset_hash: str) -> Path:
        return self.outdir / f"asset.{asset_hash}"


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from stacks import nag
    from stacks.mpr_stack import build_app

    outdir = tmp_path_factory.mktemp("cdk-out")
    app, stack = build_app(context=CONTEXT_OVERRIDES, outdir=str(outdir))
    assembly = app.synth()
    # The same gate app.py applies: the session's template must be free of findings.
    nag.check_report(assembly.directory)
    template = json.loads((outdir / f"{stack.artifact_id}.template.json").read_text())
    return Synthesized(app=app, stack=stack, config=stack.config, outdir=outdir, template=template)


@pytest.fixture(scope="session")
def template(synthesized: Synthesized):
    from aws_cdk.assertions import Template

    return Template.from_json(synthesized.template)


def flatten(value: Any) -> str:
    """A CloudFormation value as one string, intrinsics as ``<Id>``/``<Id.Attr>`` (as cdk-nag)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Ref":
            return f"<{inner}>"
        if key == "Fn::GetAtt":
            return f"<{inner[0]}.{inner[1]}>"
        if key == "Fn::Join":
            delimiter, parts = inner
            return delimiter.join(flatten(part) for part in parts)
        if key == "Fn::Sub":
            text = inner if isinstance(inner, str) else inner[0]
            return text.replace("${", "<").replace("}", ">")
    return json.dumps(value, sort_keys=True)
