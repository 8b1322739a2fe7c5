"""The executors behind MPR_EXECUTOR: hand a job to Celery, or start a Step Functions execution."""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Protocol

from mpr.errors import DispatchError, ExecutionEndedError
from mpr.jobs import Job
from mpr.settings import Settings

logger = logging.getLogger(__name__)

TASK_NAME = "mpr.process_job"
QUEUE = "transcode"


class Dispatcher(Protocol):
    def send(self, job: Job) -> str | None:
        """Start the job's current attempt; returns an execution id when the executor has one."""

    def stop(self, job: Job) -> None:
        """Stop a running attempt, as far as the executor can from outside."""


class CeleryDispatcher:
    """The local executor: one message on the transcode queue carrying the job id and attempt."""

    def __init__(self, settings: Settings, app=None):
        self._settings = settings
        self._given_app = app

    @cached_property
    def _app(self):
        if self._given_app is not None:
            return self._given_app
        from celery import Celery

        return Celery("mpr", broker=self._settings.broker_url, set_as_current=False)

    def send(self, job: Job) -> str | None:
        try:
            # One quick retry only: a broker that is down must not hold the API request; the reaper
            # resends jobs that could not be handed over as soon as the broker answers again.
            self._app.send_task(TASK_NAME, args=[job.id, job.attempt], queue=QUEUE,
                                task_id=f"{job.id}-{job.attempt}", retry=True,
                                retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.1})
        except Exception as error:  # kombu raises many types for a broker that is down
            logger.warning("dispatch failed", extra={"job_id": job.id, "error": str(error)})
            raise DispatchError("the job queue is unavailable; the job stays PENDING and is resent") from None
        return None

    def stop(self, job: Job) -> None:
        # NOTE: no revoke(terminate=True): it kills the worker child, not FFmpeg, and can hit a child
        # that has moved on to another job. The worker sees the CANCELLED state at its next progress
        # write (about once a second) and stops FFmpeg itself.
        return None


class StepFunctionsDispatcher:
    """The lambda executor: one Step Functions execution per attempt."""

    def __init__(self, settings: Settings, client=None, execution_input=None):
        self._settings = settings
        self._client = client
        self._execution_input = execution_input

    @cached_property
    def client(self):
        if self._client is not None:
            return self._client
        import boto3

        return boto3.client("stepfunctions", region_name=self._settings.region,
                            endpoint_url=self._settings.sfn_endpoint)

    def send(self, job: Job) -> str | None:
        if not self._settings.state_machine_arn:
            raise DispatchError("MPR_STATE_MACHINE_ARN is not set; the lambda executor cannot start jobs")
        payload = self._execution_input(job) if self._execution_input else {"job_id": job.id}
        name = f"{job.id}-{job.attempt}"
        try:
            response = self.client.start_execution(
                stateMachineArn=self._settings.state_machine_arn, name=name, input=json.dumps(payload),
            )
        except self.client.exceptions.ExecutionAlreadyExists:
            # NOTE: an earlier send of this attempt did start (its answer was lost); one execution per
            # attempt is the point of naming them, so that one is the job's, if it is still running.
            arn = execution_arn(self._settings.state_machine_arn, name)
            status = self.client.describe_execution(executionArn=arn)["status"]
            if status != "RUNNING":
                raise ExecutionEndedError(
                    f"the pipeline run of attempt {job.attempt} ended ({status}) before the job started; "
                    "retry the job"
                ) from None
            return arn
        except Exception as error:
            logger.warning("dispatch failed", extra={"job_id": job.id, "error": str(error)})
            raise DispatchError("the pipeline is unavailable; the job stays PENDING and is resent") from None
        return response["executionArn"]

    def stop(self, job: Job) -> None:
        if not job.execution_arn:
            return
        try:
            self.client.stop_execution(executionArn=job.execution_arn, cause="cancelled by the user")
        except Exception as error:
            logger.warning("stop execution failed", extra={"job_id": job.id, "error": str(error)})


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives an execution `name` of a state machine."""
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
