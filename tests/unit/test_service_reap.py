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
