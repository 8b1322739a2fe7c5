"""The synthesized state machine, executed by moto's Step Functions interpreter, in this process.

moto runs the definition as written: the Retry, the Catch, the TimeoutSeconds, the ResultSelector and
the ResultPath. Its Lambda without Docker does not run container/handler.py: it answers each invoke
with the payload it was given, or with a result queued in advance, and always as a success, except
that a result over 6 MB comes back as the function error `Function.ResponseSizeTooLarge`. That is
the one function error moto can give. What moto cannot do, a botocore `before-call` hook on the
Lambda Invoke call does: answer a Lambda service error, or hang past the task's timeout.

The execution history records each payload moto passed to the Lambda (TaskScheduled parameters).
The last tests hand the report task's payload to the real handler in failure mode, which posts the
signed callback to a real JobService on 127.0.0.1, so that the job's end is checked, not assumed.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from moto import mock_aws

from container.handler import failure_message, handler
from local.lambda_invoke import InvocationContext
from mpr import store
from mpr.errors import MprError
from mpr.jobs import Job, JobStatus
from mpr.service import JobService
from mpr.settings import Settings
from stacks.pipeline import FAIL_STATE, REPORT_STATE, RUN_STATE

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
EXECUTION_INPUT = {
    "job_id": "01JD6Q8W3E5R7T9Y1U3I5O7P9A",
    "attempt": 1,
    "callback_url": "http://127.0.0.1:9",
    "callback_token": "0f" * 32,
}
# Lambda's response limit is 6 MB; moto answers a bigger queued result as a function error.
OVERSIZED_RESULT = json.dumps({"padding": "x" * 6_100_000})
EXECUTION_SECONDS = 30.0
HUNG_INVOKE_SECONDS = 20.0


# ---- the definition, as CloudFormation would resolve it


def resolve(value, tokens: dict[str, str]) -> str:
    """A CloudFormation string value with its intrinsics replaced; an unknown one is an error."""
    if isinstance(value, str):
        return value
    ((intrinsic, inner),) = value.items()
    if intrinsic == "Fn::Join":
        delimiter, parts = inner
        return delimiter.join(resolve(part, tokens) for part in parts)
    if intrinsic == "Ref":
        return tokens[inner]
    if intrinsic == "Fn::GetAtt":
        return tokens[".".join(inner)]
    raise AssertionError(f"DefinitionString uses {intrinsic}, which this test does not resolve")


@pytest.fixture(scope="module")
def definition_source(synthesized) -> dict:
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    return machine["Properties"]["DefinitionString"]


@pytest.fixture(scope="module")
def ffmpeg_logical_id(synthesized) -> str:
    return synthesized.logical_id(synthesized.stack.ffmpeg.function)


# ---- moto's Lambda, and what a test can make it answer


def _service_error(code: str) -> tuple[AWSResponse, dict]:
    parsed = {"Error": {"Code": code, "Message": f"{code} raised by the test"},
              "ResponseMetadata": {"HTTPStatusCode": 500, "RequestId": "test-request"}}
    return AWSResponse("https://lambda.invalid", 500, {}, None), parsed


def _empty_success() -> tuple[AWSResponse, dict]:
    parsed = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(b"{}"), 2),
              "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "test-request"}}
    return AWSResponse("https://lambda.invalid", 200, {}, None), parsed


class MotoLambda:
    """moto's Lambda without Docker, plus a few answers it cannot give on its own."""

    HOOK_ID = "mpr-test-lambda-invoke"

    def __init__(self):
        self._plans: deque[str] = deque()
        self.released = threading.Event()

    def queue_result(self, payload: str) -> None:
        # NOTE: what moto's documented POST /moto-api/static/lambda-simple/response calls, called
        # directly, so that no HTTP request is made to moto's fake hostname.
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.set_lambda_simple_result(result=payload, account_id=ACCOUNT, region=REGION)

    def queue_function_error(self) -> None:
        self.queue_result(OVERSIZED_RESULT)

    def refuse_next_invoke(self) -> None:
        """The next Invoke call fails as Lambda's own service would (Lambda.ServiceException)."""
        self._plans.append("refuse")

    def hang_next_invoke(self) -> None:
        """The next Invoke call does not return until the test ends (or HUNG_INVOKE_SECONDS)."""
        self._plans.append("hang")

    def _before_invoke(self, **_):
        plan = self._plans.popleft() if self._plans else None
        if plan == "refuse":
            return _service_error("ServiceException")
        if plan == "hang":
            self.released.wait(HUNG_INVOKE_SECONDS)
            return _empty_success()  # moto's backend is never reached after the wait
        return None

    def install(self) -> None:
        session = boto3.DEFAULT_SESSION
        assert session is not None, "create a boto3 client before installing the hook"
        session.events.register("before-call.lambda.Invoke", self._before_invoke, unique_id=self.HOOK_ID)

    def uninstall(self) -> None:
        self.released.set()
        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.unregister("before-call.lambda.Invoke", unique_id=self.HOOK_ID)


# ---- one execution and what its history says


@dataclass
class Execution:
    status: str
    error: str | None
    output: dict | None
    events: list[dict]

    def payloads(self, state: str) -> list[dict]:
        """Each payload moto passed to the Lambda from `state`, in order (one per try)."""
        return [json.loads(event["taskScheduledEventDetails"]["parameters"])["Payload"]
                for name, event in self._by_state() if name == state and event["type"] == "TaskScheduled"]

    def scheduled_timeouts(self, state: str) -> list[int]:
        return [event["taskScheduledEventDetails"]["timeoutInSeconds"]
                for name, event in self._by_state() if name == state and event["type"] == "TaskScheduled"]

    def failures(self, state: str) -> list[str]:
        kinds = ("TaskFailed", "TaskTimedOut")
        return [event["type"] for name, event in self._by_state() if name == state and event["type"] in kinds]

    def entered(self) -> list[str]:
        return [event["stateEnteredEventDetails"]["name"] for event in self.events
                if event["type"].endswith("StateEntered")]

    def _by_state(self) -> Iterator[tuple[str, dict]]:
        current = ""
        for event in self.events:
            if event["type"].endswith("StateEntered"):
                current = event["stateEnteredEventDetails"]["name"]
            yield current, event


class MotoPipeline:
    """The synthesized state machine created in moto, with the FFmpeg function's ARN filled in."""

    def __init__(self, definition_source: dict, ffmpeg_logical_id: str):
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        iam = boto3.client("iam", region_name=REGION)
        self.role = iam.create_role(RoleName="mpr-pipeline-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.function_arn = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="mpr-ffmpeg-test", Runtime="python3.12", Role=self.role, Handler="handler.handler",
            Code={"ZipFile": _zip_with_handler()},
        )["FunctionArn"]
        tokens = {"AWS::Partition": "aws", f"{ffmpeg_logical_id}.Arn": self.function_arn}
        self.definition = json.loads(resolve(definition_source, tokens))
        self._machines = 0

    def create(self, edit: Callable[[dict], None] | None = None) -> str:
        definition = json.loads(json.dumps(self.definition))
        if edit:
            edit(definition)
        self._machines += 1
        return self.sfn.create_state_machine(
            name=f"mpr-pipeline-{self._machines}", definition=json.dumps(definition), roleArn=self.role,
        )["stateMachineArn"]

    def run(self, execution_input: dict, machine_arn: str | None = None) -> Execution:
        # Named as StepFunctionsDispatcher names it; moto would name it "None" otherwise.
        name = f"{execution_input['job_id']}-{execution_input['attempt']}"
        arn = self.sfn.start_execution(stateMachineArn=machine_arn or self.create(), name=name,
                                       input=json.dumps(execution_input))["executionArn"]
        deadline = time.monotonic() + EXECUTION_SECONDS
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"execution still RUNNING after {EXECUTION_SECONDS} s"
            time.sleep(0.05)
        events = self.sfn.get_execution_history(executionArn=arn)["events"]
        output = json.loads(described["output"]) if described.get("output") else None
        return Execution(described["status"], described.get("error"), output, events)

    def stop_running(self) -> None:
        """Stop what is still running, so that no execution thread calls Lambda after the mock ends."""
        for machine in self.sfn.list_state_machines()["stateMachines"]:
            running = self.sfn.list_executions(stateMachineArn=machine["stateMachineArn"],
                                               statusFilter="RUNNING")["executions"]
            for execution in running:
                self.sfn.stop_execution(executionArn=execution["executionArn"])


def run_timeout_of_one_second(definition: dict) -> None:
    """The one edit a test makes: moto enforces TimeoutSeconds on a real clock."""
    definition["States"][RUN_STATE]["TimeoutSeconds"] = 1


def _zip_with_handler() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


@pytest.fixture
def moto_lambda() -> Iterator[MotoLambda]:
    yield MotoLambda()


@pytest.fixture
def pipeline(definition_source, ffmpeg_logical_id, moto_lambda) -> Iterator[MotoPipeline]:
    with mock_aws(config=MOTO_CONFIG):
        made = MotoPipeline(definition_source, ffmpeg_logical_id)
        moto_lambda.install()
        try:
            yield made
        finally:
            made.stop_running()
            moto_lambda.uninstall()


# ---- the state machine's paths


def test_success_invokes_the_run_task_once_with_the_input_unchanged(pipeline, definition_source):
    # Given moto's Lambda, which answers with the payload it was given
    # When an execution runs with the API's execution input
    execution = pipeline.run(EXECUTION_INPUT)

    # Then the run task got the input as it was, and its answer went under $.result.payload
    assert execution.status == "SUCCEEDED"
    assert execution.payloads(RUN_STATE) == [EXECUTION_INPUT]
    assert execution.output == {**EXECUTION_INPUT, "result": {"payload": EXECUTION_INPUT}}
    assert REPORT_STATE not in execution.entered()
    assert execution.scheduled_timeouts(RUN_STATE) == [pipeline.definition["States"][RUN_STATE]["TimeoutSeconds"]]


def test_a_function_error_is_reported_with_the_input_and_fails_the_execution(pipeline, moto_lambda):
    # Given a run Lambda that ends in a function error (the one moto gives: an oversized result)
    moto_lambda.queue_function_error()

    # When an execution runs
    execution = pipeline.run(EXECUTION_INPUT)

    # Then the error is not retried, the report task gets the input with the error added, and it fails
    assert execution.payloads(RUN_STATE) == [EXECUTION_INPUT]
    (reported,) = execution.payloads(REPORT_STATE)
    assert reported == {**EXECUTION_INPUT, "failure": reported["failure"]}
    assert reported["failure"]["Error"] == "Function.ResponseSizeTooLarge"
    assert json.loads(reported["failure"]["Cause"])["errorType"] == "Function.ResponseSizeTooLarge"
    assert execution.entered()[-1] == FAIL_STATE
    assert (execution.status, execution.error) == ("FAILED", "MprJobFailed")


def test_a_run_past_the_task_timeout_is_reported_as_a_timeout(pipeline, moto_lambda):
    # Given the run task's TimeoutSeconds cut to 1 s (moto waits it out on a real clock) and a
    # Lambda that hangs
    machine = pipeline.create(run_timeout_of_one_second)
    moto_lambda.hang_next_invoke()

    # When an execution runs
    execution = pipeline.run(EXECUTION_INPUT, machine)

    # Then States.Timeout is caught by States.ALL, reported, not retried, and the execution fails
    assert execution.failures(RUN_STATE) == ["TaskTimedOut"]
    assert execution.payloads(REPORT_STATE) == [
        {**EXECUTION_INPUT, "failure": {"Error": "States.Timeout", "Cause": ""}}
    ]
    assert (execution.status, execution.error) == ("FAILED", "MprJobFailed")


def test_a_lambda_service_error_is_retried_and_the_run_then_succeeds(pipeline, moto_lambda):
    # Given Lambda's Invoke API failing once with a service error
    moto_lambda.refuse_next_invoke()

    # When an execution runs
    execution = pipeline.run(EXECUTION_INPUT)

    # Then the run task is tried again with the same input and succeeds; nothing is reported
    assert execution.failures(RUN_STATE) == ["TaskFailed"]
    assert execution.payloads(RUN_STATE) == [EXECUTION_INPUT, EXECUTION_INPUT]
    assert execution.status == "SUCCEEDED"
    assert REPORT_STATE not in execution.entered()


def test_a_failed_report_is_tried_again(pipeline, moto_lambda):
    # Given a run that fails and a report whose first try fails too (the API answered 5xx, say)
    moto_lambda.queue_function_error()
    moto_lambda.queue_function_error()

    # When an execution runs
    execution = pipeline.run(EXECUTION_INPUT)

    # Then the report is tried again with the same payload, and the execution fails as usual
    first, second = execution.payloads(REPORT_STATE)
    assert first == second and "failure" in first
    assert (execution.status, execution.error) == ("FAILED", "MprJobFailed")


# ---- from the report task's payload to the job's end, through the real handler and callback


class CallbackServer:
    """A real JobService behind the callback route, on 127.0.0.1, as the API Lambda would be."""

    def __init__(self):
        self.service = None  # set once the URL, which the service's settings need, is known
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                owner._handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        job_id = request.path.removeprefix("/api/jobs/").removesuffix("/callback")
        try:
            status, answer = 200, self.service.callback(job_id, dict(request.headers), body).to_api()
        except MprError as error:
            status, answer = error.http_status, {"error": {"code": error.code, "message": error.message}}
        data = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def __enter__(self) -> CallbackServer:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback_service(pipeline, monkeypatch):
    """A JobService on moto's DynamoDB (same mock as the pipeline), reachable at its callback URL."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    settings = Settings(region=REGION, executor="lambda", job_table="mpr-pipeline-test-jobs",
                        idempotency_table="mpr-pipeline-test-idempotency",
                        callback_secret="pipeline-test-master-key")
    store.create_tables(settings)
    with CallbackServer() as server:
        server.service = JobService(replace(settings, callback_url=server.url))
        yield server.service


def _function_error(pipeline: MotoPipeline, moto_lambda: MotoLambda) -> str:
    moto_lambda.queue_function_error()
    return pipeline.create()


def _task_timeout(pipeline: MotoPipeline, moto_lambda: MotoLambda) -> str:
    moto_lambda.hang_next_invoke()
    return pipeline.create(run_timeout_of_one_second)


CRASHES = {"function error": _function_error, "task timeout": _task_timeout}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_a_crashed_run_never_leaves_the_job_processing(pipeline, moto_lambda, callback_service, crash):
    # Given a PROCESSING job whose execution input the API built, and a run Lambda that crashes
    job = Job(id="01JD6Q8W3E5R7T9Y1U3I5O7P9Z", status=JobStatus.PENDING, operation="transcode",
              source="s3://mpr-media/uploads/clip.mp4", output="s3://mpr-media/outputs/clip.mp4",
              preset="mp4-480p", executor="lambda")
    callback_service.store.create(job)
    callback_service.store.claim(job.id, 1)
    machine = CRASHES[crash](pipeline, moto_lambda)
    execution = pipeline.run(callback_service.execution_input(job), machine)
    (report_payload,) = execution.payloads(REPORT_STATE)

    # When the FFmpeg Lambda's handler gets exactly what moto passed to the report task
    answer = handler(report_payload, InvocationContext(timeout=120))

    # Then the job is FAILED with a sentence built from what the Catch caught
    assert answer == {"job_id": job.id, "reported": "failed"}
    failed = callback_service.store.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error == failure_message(report_payload["failure"])
    assert failed.error.startswith("the FFmpeg Lambda ") and "\n" not in failed.error
    assert ("timed out" in failed.error) == (crash == "task timeout")
