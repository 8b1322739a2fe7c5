#!/usr/bin/env python3
"""CDK entry point: ``python app.py`` (or ``cdk synth``) writes the cloud assembly to cdk.out/.

Synth needs neither Docker nor AWS credentials: the FFmpeg image is only staged, not built, and
the stack is environment-agnostic unless the CDK CLI supplies an account and region.
Synth fails (exit 1) when cdk-nag's AwsSolutions pack reports any unsuppressed finding.
"""

from __future__ import annotations

import os
import sys

from aws_cdk import cx_api

from stacks import nag
from stacks.config import ConfigError
from stacks.mpr_stack import build_app


def main() -> int:
    try:
        app, _stack = build_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        assembly = app.synth()
    except RuntimeError as exc:
        # CDK raises ValidationFailed (through jsii, as RuntimeError) after printing the report
        # when cdk-nag reports an error-level finding.
        print(f"error: synth failed: {exc}", file=sys.stderr)
        return 1
    try:
        # Warnings-level findings do not stop CDK; they stop us.
        nag.check_report(assembly.directory)
    except nag.NagFindingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # The CDK CLI prints construct warnings itself; a bare `python app.py` would hide them.
    if not os.environ.get("CDK_OUTDIR"):
        for stack in assembly.stacks:
            for message in stack.messages:
                if message.level == cx_api.SynthesisMessageLevel.WARNING:
                    print(f"warning: {message.id}: {message.entry.data}", file=sys.stderr)
    print(f"synthesized to {assembly.directory}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
