"""The Step Functions dispatcher, against moto in-process (no network)."""

import dataclasses
import json

import boto3
import pytest
from moto import mock_aws

from mpr.dispatch import StepFunctionsDispatcher
from mpr.errors import ExecutionEndedError
from mpr.jobs import Job, JobStatus
from mpr.settings import Settings

DEFINITION = {"StartAt": "Run", "States": {"Run": {"Type": "Pass", "End": True}}}


def job(attempt=1):
    return Job(id="01JOB", status=JobStatus.PENDING, operation="transcode", source="s3://b/k",
               output="s3://b/o", attempt=attempt)


@mock_aws
def test_each_attempt_is_one_named_execution_and_a_lost_answer_is_not_a_second_one():
    # Given a state machine, and an attempt that was already started once (its answer lost)
    client = boto3.client("stepfunctions", region_name="us-east-1")
    machine = client.create_state_machine(name="mpr-pipeline", definition=json.dumps(DEFINITION),
                                          roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    settings = dataclasses.replace(Settings.from_env({}), state_machine_arn=machine)
    dispatcher = StepFunctionsDispatcher(settings, client=client, execution_input=lambda j: {"job_id": j.id})
    first = dispatcher.send(job())

    # When the same attempt is sent again, and then the next attempt
    again = dispatcher.send(job())
    retried = dispatcher.send(job(attempt=2))

    # Then the resend names the execution that exists, and the retry gets its own
    assert again == first and first.endswith(":execution:mpr-pipeline:01JOB-1")
    assert retried.endswith(":01JOB-2")
    executions = client.list_executions(stateMachineArn=machine)["executions"]
    assert sorted(e["name"] for e in executions) == ["01JOB-1", "01JOB-2"]
    assert json.loads(client.describe_execution(executionArn=first)["input"]) == {"job_id": "01JOB"}


@mock_aws
def test_resend_of_an_attempt_whose_execution_ended_says_it_cannot_run():
    # Given an attempt whose one execution has already ended (stopped) without the job starting
    client = boto3.client("stepfunctions", region_name="us-east-1")
    machine = client.create_state_machine(name="mpr-pipeline", definition=json.dumps(DEFINITION),
                                          roleArn="arn:aws:iam::123456789012:role/r")["stateMachineArn"]
    settings = dataclasses.replace(Settings.from_env({}), state_machine_arn=machine)
    dispatcher = StepFunctionsDispatcher(settings, client=client)
    client.stop_execution(executionArn=dispatcher.send(job()))

    # When the reaper resends it / Then the dispatcher says the attempt cannot run any more
    with pytest.raises(ExecutionEndedError, match="ended \\(ABORTED\\) before the job started"):
        dispatcher.send(job())
