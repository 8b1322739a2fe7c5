"""`python app.py` as an operator runs it: no Docker, no AWS credentials, exit code as the gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]


def run_app(
    tmp_path: Path, context: dict | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    """Run app.py in a clean environment whose only `docker` records that it was called."""
    outdir = tmp_path / "cdk.out"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "docker-was-called"
    docker = fake_bin / "docker"
    docker.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    docker.chmod(0o755)
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "PATH")
    env = {key: value for key, value in os.environ.items() if key in keep}
    env.update(
        PATH=f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        CDK_OUTDIR=str(outdir),
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="18,20",
    )
    if context:
        # How the CDK CLI hands `-c key=value` to the app.
        env["CDK_CONTEXT_JSON"] = json.dumps(context)
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert not marker.exists(), "synth called docker"
    return result, outdir


def test_synth_writes_the_template_without_docker_or_credentials(tmp_path):
    result, outdir = run_app(tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((outdir / "Mpr.template.json").read_text())
    assert len(template["Resources"]) > 20
    # Environment-agnostic: no account or region was resolved at synth.
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest["artifacts"]["Mpr"]["environment"] == "aws://unknown-account/unknown-region"


def test_synth_exits_non_zero_on_an_unsuppressed_finding(tmp_path):
    result, outdir = run_app(tmp_path, {"mpr:nag_acknowledge": "false"})
    assert result.returncode == 1
    assert "AwsSolutions-" in result.stderr
    assert (outdir / "validation-report.json").exists()


def test_a_bad_context_value_is_refused_before_synth(tmp_path):
    result, _ = run_app(tmp_path, {"mpr:ffmpeg_timeout_seconds": 1200})
    assert result.returncode == 2
    assert "ffmpeg_timeout_seconds" in result.stderr
