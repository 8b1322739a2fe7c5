"""The reaper with the lambda executor, against moto in-process (no network): no job stays PENDING."""

import dataclasses
import json
import time

import boto3
from moto import mock_aws

from mpr import store as store_module
from mpr.dispatch import StepFunctionsDispatcher
from mpr.jobs import Job, JobStatus
from mpr.service import RESEND_PENDING_AFTER_SECONDS, JobService
from mpr.settings import Settings

DEFINITION = {"StartAt": "Run", "States": {"Run": {"Type": "Pass", "End": True}}}


class NoStorage:
    """The reaper touches no media."""


@mock_aws
def test_pending_job_whose_execution_ended_unstarted_is_failed_with_a_reason():
    # Given a lambda-executor job left PENDING after its execution was stopped before it started
    client = boto3.client("stepfunctions", region_name="us-east-1")
    machine = client.create_state_machine(name="mpr-pipeline", definition=json.dumps(DEFINITION),
                                          roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    settings = dataclasses.replace(Settings.from_env({}), executor="lambda", state_machine_arn=machine,
                                   callback_secret="k", dynamodb_endpoint=None)
    store_module.create_tables(settings)
    store = store_module.JobStore(settings)
    service = JobService(settings, store=store, storage=NoStorage(),
                         dispatcher=StepFunctionsDispatcher(settings, client=client))
    job = store.create(Job(id="01JOB", status=JobStatus.PENDING, operation="transcode", preset="mp4-480p",
                           source="s3://mpr-media/uploads/a.mp4", output="s3://mpr-media/outputs/01JOB/a.mp4",
                           executor="lambda"))
    client.stop_execution(executionArn=service.dispatcher.send(job))

    # When the reaper runs after the resend delay
    service.reap(now=time.time() + RESEND_PENDING_AFTER_SECONDS + 1)

    # Then the job is FAILED, saying why and what to do, instead of PENDING for good
    reaped = store.get("01JOB")
    assert reaped.status is JobStatus.FAILED
    assert "ended (ABORTED) before the job started; retry the job" in reaped.error


class FlakyDispatcher:
    """An executor whose queue is down until told otherwise."""

    def __init__(self):
        self.up = False
        self.sent: list[tuple[str, int]] = []

    def send(self, job):
        from mpr.errors import DispatchError

        if not self.up:
            raise DispatchError("the job queue is unavailable")
        self.sent.append((job.id, job.attempt))
        return None

    def stop(self, job):
        return None


@mock_aws
def test_job_created_while_the_queue_was_down_is_sent_as_soon_as_it_is_back():
    # Given a job accepted while the queue was down
    settings = dataclasses.replace(Settings.from_env({}), dynamodb_endpoint=None)
    store_module.create_tables(settings)
    store = store_module.JobStore(settings)
    dispatcher = FlakyDispatcher()
    service = JobService(settings, store=store, storage=NoStorage(), dispatcher=dispatcher)
    job = store.create(Job(id="01DOWN", status=JobStatus.PENDING, operation="transcode", preset="mp4-480p",
                           source="s3://mpr-media/uploads/a.mp4", output="s3://mpr-media/outputs/01DOWN/a.mp4"))
    assert service._dispatch(job) is False

    # When the reaper runs while the queue is still down, and again once it is back
    first = service.reap(now=time.time() + 15)
    dispatcher.up = True
    second = service.reap(now=time.time() + 30)
    third = service.reap(now=time.time() + 45)

    # Then the job is sent on the first round after the queue is back, once, not ten minutes later
    assert (first["resent"], second["resent"], third["resent"]) == (0, 1, 0)
    assert dispatcher.sent == [("01DOWN", 1)]
