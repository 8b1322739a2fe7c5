"""With `make lambda-package` output present, the API Lambda ships it (code + dependencies)."""

from __future__ import annotations

import json
import shutil

import pytest

from stacks.mpr_stack import build_app
from stacks.rest_api import PACKAGE_MISSING_WARNING
from tests.infra.conftest import CONTEXT_OVERRIDES, REPO_ROOT

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]


def make_repo(root) -> None:
    """The files synth reads from a checkout, plus a fake package directory."""
    for name in ("cdk.json", ".dockerignore", "requirements.txt", "container/Dockerfile"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, root / name)
    for name in ("mpr/__init__.py", "functions/__init__.py", "container/handler.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    package = (
        root / json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["mpr:api_package_dir"]
    )
    for name in ("mpr/__init__.py", "functions/api.py", "pynamodb/__init__.py"):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("")


def test_the_package_directory_becomes_the_api_code(tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo)
    outdir = tmp_path / "out"
    app, stack = build_app(context=CONTEXT_OVERRIDES, outdir=str(outdir), repo_root=repo)
    assembly = app.synth()
    assert stack.rest_api.packaged
    template = json.loads((outdir / f"{stack.artifact_id}.template.json").read_text())
    function = template["Resources"][
        stack.get_logical_id(stack.rest_api.function.node.default_child)
    ]
    asset = outdir / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    assert (asset / "pynamodb" / "__init__.py").is_file()
    assert (asset / "functions" / "api.py").is_file()
    warnings = [m.entry.data for m in assembly.get_stack_artifact(stack.artifact_id).messages]
    assert not [w for w in warnings if PACKAGE_MISSING_WARNING in str(w)]


def test_without_a_package_synth_warns(synthesized):
    if synthesized.stack.rest_api.packaged:
        pytest.skip("this checkout has a lambda package")
    artifact = synthesized.app.synth().get_stack_artifact(synthesized.stack.artifact_id)
    assert [m for m in artifact.messages if PACKAGE_MISSING_WARNING in str(m.entry.data)]
