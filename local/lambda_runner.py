"""The laptop's stand-in for the Step Functions → FFmpeg Lambda hop, for MPR_EXECUTOR=lambda.

The API starts executions on moto's Step Functions exactly as it would in AWS. This process watches
for new RUNNING executions and, for each, runs the container's handler as a separate process on the
execution input, as the state machine's run task would hand it. A handler that crashes or outlives
its time limit is followed, like the state machine's Catch, by the handler run again with `failure`
added, which reports the job FAILED through the callback.

Run: python -m local.lambda_runner
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

import boto3

from mpr.logs import service_logger
from mpr.settings import Settings, get_settings

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# Lambda's own limit; the run task of the state machine allows this plus a grace period.
LAMBDA_TIMEOUT_SECONDS = 900


def invoke(event: dict, timeout: float) -> tuple[bool, dict]:
    """Run container.handler on `event` in a fresh process; (succeeded, the caught error if not)."""
    argv = [sys.executable, "-m", "local.lambda_invoke", str(timeout)]
    try:
        completed = subprocess.run(argv, input=json.dumps(event).encode(), timeout=timeout,
                                   capture_output=False, check=False)
    except subprocess.TimeoutExpired:
        return False, {"Error": "States.Timeout", "Cause": f"the task ran past {timeout:.0f} s"}
    if completed.returncode != 0:
        return False, {"Error": "Lambda.Unknown", "Cause": f"the handler exited with {completed.returncode}"}
    return True, {}


def run_execution(event: dict, timeout: float) -> None:
    succeeded, failure = invoke(event, timeout)
    if not succeeded:
        logger.info("execution caught", extra={"job_id": event.get("job_id"), **failure})
        invoke({**event, "failure": failure}, timeout=120)


# The shape of the deployed state machine (stacks/pipeline.py); moto records executions of it and
# this runner plays its run and catch states.
LOCAL_DEFINITION = {
    "StartAt": "RunFfmpeg",
    "States": {
        "RunFfmpeg": {"Type": "Pass", "Next": "JobDone"},
        "JobDone": {"Type": "Succeed"},
    },
}


def ensure_state_machine(settings: Settings, arn: str, client=None) -> None:
    client = client or boto3.client("stepfunctions", region_name=settings.region,
                                    endpoint_url=settings.sfn_endpoint)
    names = [machine["name"] for machine in client.list_state_machines()["stateMachines"]]
    name = arn.rsplit(":", 1)[-1]
    if name not in names:
        client.create_state_machine(name=name, definition=json.dumps(LOCAL_DEFINITION),
                                    roleArn="arn:aws:iam::123456789012:role/mpr-local-pipeline")


class Runner:
    def __init__(self, settings: Settings, client=None, timeout: float = LAMBDA_TIMEOUT_SECONDS):
        self.settings = settings
        self.timeout = timeout
        self.client = client or boto3.client("stepfunctions", region_name=settings.region,
                                             endpoint_url=settings.sfn_endpoint)
        self.seen: set[str] = set()

    def poll_once(self) -> list[threading.Thread]:
        started = []
        pages = self.client.get_paginator("list_executions").paginate(
            stateMachineArn=self.settings.state_machine_arn, statusFilter="RUNNING")
        for page in pages:
            for execution in page["executions"]:
                arn = execution["executionArn"]
                if arn in self.seen:
                    continue
                self.seen.add(arn)
                event = json.loads(self.client.describe_execution(executionArn=arn)["input"])
                thread = threading.Thread(target=run_execution, args=(event, self.timeout), daemon=True)
                thread.start()
                started.append(thread)
        return started

    def forever(self) -> None:
        while True:
            try:
                self.poll_once()
            except Exception:  # moto restarting, say: keep watching
                logger.warning("poll failed", exc_info=True)
            time.sleep(POLL_SECONDS)


def main() -> int:
    service_logger()
    settings = get_settings()
    if not settings.state_machine_arn:
        print("MPR_STATE_MACHINE_ARN is not set", file=sys.stderr)
        return 2
    print(f"watching executions of {settings.state_machine_arn}", flush=True)
    Runner(settings).forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
