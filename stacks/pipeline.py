"""The Step Functions state machine that runs one attempt of one job on the FFmpeg Lambda.

Execution input, written by the API Lambda (``JobService.execution_input``)::

    {
      "job_id": "01JD6Q8W3E5R7T9Y1U3I5O7P9A",
      "attempt": 1,
      "callback_url": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
      "callback_token": "<HMAC(master key, job id, attempt), hex>"
    }

``callback_url`` is the API's base URL (the FFmpeg Lambda appends ``/api/jobs/{id}/callback``).
It travels in the input, not in the FFmpeg Lambda's environment, because the API Lambda needs
this state machine's ARN: an API URL in the FFmpeg Lambda's environment would make the state
machine depend on the API and the API on the state machine, a cycle CloudFormation cannot
create. The API Lambda gets its own URL as MPR_CALLBACK_URL (see ``RestApi``).

The FFmpeg Lambda (``container/handler.py``) receives:

* in the run task, the execution input unchanged: it renders the job and posts progress and
  the outcome to the callback; it raises on a crash;
* in the report task, the execution input plus ``"failure": {"Error": ..., "Cause": ...}``
  (what the Catch caught): it only posts a FAILED callback with a reason built from them, so
  that a crashed, out-of-memory or timed-out run never leaves the job PROCESSING.

Both tasks hand over ``$`` whole, never field by field: a JSONPath that misses a field raises
States.Runtime, which no Catch catches, and the job would stay PROCESSING.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks import nag
from stacks.config import MprConfig

# The errors Lambda's Invoke API itself raises, as opposed to errors the function raised.
# Only these are retried: a job that crashed or timed out would do the same again.
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
RUN_STATE = "RunFfmpeg"
REPORT_STATE = "ReportFailure"
FAIL_STATE = "JobFailed"
SUCCEED_STATE = "JobDone"
# The run task waits this much longer than the Lambda timeout, so that the Lambda's own
# timeout error (with its log reference) is what the Catch sees, not a bare States.Timeout.
RUN_TASK_GRACE = Duration.seconds(60)
# One FAILED callback, which mpr.reporting itself retries for up to about a minute against a
# slow or failing API, plus a cold start of the image.
REPORT_TASK_TIMEOUT = Duration.seconds(120)
REPORT_RETRY_ATTEMPTS = 3
RETRY_INTERVAL = Duration.seconds(2)
RETRY_BACKOFF_RATE = 2.0
RETRY_MAX_DELAY = Duration.seconds(60)
# Headroom on top of the worst-case path, so that the state machine never times out while its
# Catch path is still running (an execution timeout skips the Catch).
EXECUTION_MARGIN = Duration.minutes(5)


class Pipeline(Construct):
    """Run task -> (on any error) report-failure task -> Fail."""

    state_machine: sfn.StateMachine
    log_group: logs.LogGroup
    run_task: tasks.LambdaInvoke
    report_task: tasks.LambdaInvoke
    execution_timeout: Duration

    def __init__(
        self, scope: Construct, construct_id: str, *, config: MprConfig, function: lambda_.IFunction
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._function = function
        self.log_group = self._build_log_group()
        self.run_task = self._build_run_task()
        self.report_task = self._build_report_task()
        self.execution_timeout = self._execution_timeout()
        self.state_machine = self._build_state_machine()
        self._suppress()

    def _build_log_group(self) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            "LogGroup",
            # NOTE: Step Functions log delivery adds a resource policy per log group unless the
            # name starts with /aws/vendedlogs/, and that account-wide policy has a size limit.
            log_group_name=f"/aws/vendedlogs/states/{self._config.state_machine_name}",
            retention=self._config.log_retention,
            removal_policy=self._config.removal_policy,
        )

    def _run_task_timeout(self) -> Duration:
        return Duration.seconds(self._config.ffmpeg_timeout_seconds + RUN_TASK_GRACE.to_seconds())

    def _build_run_task(self) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            RUN_STATE,
            lambda_function=self._function,
            payload=sfn.TaskInput.from_json_path_at(sfn.JsonPath.entire_payload),
            # Our own Retry below replaces CDK's default one, which would also retry
            # Lambda.ClientExecutionTimeoutException and is less obvious to a reader.
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(self._run_task_timeout()),
            result_selector={"payload": sfn.JsonPath.object_at("$.Payload")},
            result_path="$.result",
        )
        task.add_retry(
            errors=list(LAMBDA_SERVICE_ERRORS),
            interval=RETRY_INTERVAL,
            max_attempts=self._config.pipeline_retry_attempts,
            backoff_rate=RETRY_BACKOFF_RATE,
            max_delay=RETRY_MAX_DELAY,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task

    def _build_report_task(self) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            REPORT_STATE,
            lambda_function=self._function,
            # The Catch put the error under $.failure, next to the execution input.
            payload=sfn.TaskInput.from_json_path_at(sfn.JsonPath.entire_payload),
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(REPORT_TASK_TIMEOUT),
            result_path=sfn.JsonPath.DISCARD,
        )
        # Posting a FAILED callback is idempotent (the API answers a repeated report for the same
        # attempt with the job unchanged), so unlike the run it may be retried on any task
        # error, e.g. the API answering 5xx.
        task.add_retry(
            errors=[sfn.Errors.TASKS_FAILED, sfn.Errors.TIMEOUT],
            interval=RETRY_INTERVAL,
            max_attempts=REPORT_RETRY_ATTEMPTS,
            backoff_rate=RETRY_BACKOFF_RATE,
            max_delay=RETRY_MAX_DELAY,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task

    def _execution_timeout(self) -> Duration:
        """Worst case of every retry of both tasks timing out, plus margin."""
        run = (self._config.pipeline_retry_attempts + 1) * (
            self._run_task_timeout().to_seconds() + RETRY_MAX_DELAY.to_seconds()
        )
        report = (REPORT_RETRY_ATTEMPTS + 1) * (
            REPORT_TASK_TIMEOUT.to_seconds() + RETRY_MAX_DELAY.to_seconds()
        )
        return Duration.seconds(run + report + EXECUTION_MARGIN.to_seconds())

    def _build_definition(self) -> sfn.IChainable:
        failed = sfn.Fail(
            self,
            FAIL_STATE,
            error="MprJobFailed",
            cause="The FFmpeg task failed; its error and cause were posted to the job's callback.",
        )
        self.run_task.add_catch(
            self.report_task.next(failed),
            errors=[sfn.Errors.ALL],
            result_path="$.failure",
        )
        return self.run_task.next(sfn.Succeed(self, SUCCEED_STATE))

    def _build_state_machine(self) -> sfn.StateMachine:
        return sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self._config.state_machine_name,
            # STANDARD: a render runs up to 15 minutes, past an EXPRESS workflow's 5-minute cap.
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(self._build_definition()),
            timeout=self.execution_timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # Off: the input carries the attempt's callback token, which would otherwise be
                # copied into CloudWatch Logs. Execution history still shows it to principals
                # allowed states:GetExecutionHistory.
                include_execution_data=False,
            ),
            removal_policy=self._config.removal_policy,
        )

    def _suppress(self) -> None:
        role = self.state_machine.role
        nag.suppress(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing (xray:PutTraceSegments etc.) and CloudWatch Logs delivery "
            "(logs:CreateLogDelivery etc.) do not support resource-level permissions.",
        )
        nag.suppress(
            role,
            f"AwsSolutions-IAM5[Resource::{nag.arn_of(self._function)}:*]",
            "lambda:InvokeFunction on the FFmpeg function's versions and aliases (ARN:*), "
            "added by LambdaInvoke; it names this one function only.",
        )
