"""One contract, two executors: the same jobs through the Celery worker and through the lambda path.

The session's stack runs the local executor (MPR_EXECUTOR unset). This module starts a second stack with
MPR_EXECUTOR=lambda (Step Functions on moto, the FFmpeg Lambda's handler run by local.lambda_runner,
every report through the signed callback) on its own ports and state directory, and stops it at the
end of the module. Each scenario runs once per executor; the behaviour tests hold each executor to
docs/api.md, and the equivalence tests hold the two to each other: same states, same error texts,
outputs of the same picture size, codecs and length (within 0.1 s), results with the same keys.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from ulid import ULID

from local.stack import STATE_MACHINE_ARN, Stack, free_ports
from mpr.settings import LocalStackSettings, Settings
from tests.integration.support import MEDIA, Api, ffmpeg_pids_for, ffprobe, stream

pytestmark = pytest.mark.integration

EXECUTORS = ("local", "lambda")
BAD_INPUTS = ("zero_bytes.mp4", "truncated_half_moov_missing.mp4")
TRANSCODE = {"operation": "transcode", "preset": "mp4-480p"}
TRIM = {"operation": "trim", "trim": {"start": 1.0, "end": 3.5, "mode": "accurate"}}
DURATION_TOLERANCE = 0.1
JOB_TIMEOUT = 180.0


# ---- the stacks


def _stack_for(executor: str, like: LocalStackSettings, state_dir: Path) -> Stack:
    """A stack like the session's, running `executor`, on fresh ports and in its own directory."""
    redis, s3, moto, gateway = free_ports(4, avoid={like.redis_port, like.s3_port, like.moto_port,
                                                    like.gateway_port})
    config = dataclasses.replace(like, executor=executor, state_dir=str(state_dir), redis_port=redis,
                                 s3_port=s3, moto_port=moto, gateway_port=gateway, external_s3_endpoint=None)
    return Stack(config)


@pytest.fixture(scope="module")
def stacks(local_stack, stack_config, tmp_path_factory) -> Iterator[dict[str, Stack]]:
    """A running stack per executor: the session's for its own executor, one started here for the other."""
    running = {local_stack.config.executor: local_stack}
    started = []
    try:
        for executor in EXECUTORS:
            if executor not in running:
                stack = _stack_for(executor, stack_config, tmp_path_factory.mktemp(f"mpr-{executor}-stack"))
                started.append(stack)
                stack.start()
                running[executor] = stack
        yield running
    finally:
        for stack in started:
            stack.stop()


@pytest.fixture(scope="module")
def apis(stacks) -> dict[str, Api]:
    found = {}
    for executor, stack in stacks.items():
        env = stack.env()
        settings = Settings.from_env(env)
        assert settings.executor == executor
        found[executor] = Api(env["MPR_CALLBACK_URL"], settings)
    return found


def test_both_stacks_take_the_key_pair_this_process_uses(stacks, apis):
    # The test process has one set of AWS variables (conftest's _client_environment); it reaches both
    # stacks' S3 servers only if both were started with the same pair.
    keys = {executor: (stack.env()["AWS_ACCESS_KEY_ID"], stack.env()["AWS_SECRET_ACCESS_KEY"])
            for executor, stack in stacks.items()}

    assert keys["local"] == keys["lambda"]
    for api in apis.values():
        api.s3.head_bucket(Bucket=api.settings.media_bucket)
    assert apis["local"].settings.s3_endpoint != apis["lambda"].settings.s3_endpoint


# ---- what one scenario gives, run once per executor and kept for the equivalence tests


@dataclass
class Outcome:
    job: dict
    media: dict | None = None  # what ffprobe says of the downloaded output

    @property
    def status(self) -> str:
        return self.job["status"]


def probe_output(api: Api, job: dict, folder: Path) -> dict:
    info = ffprobe(api.settings, api.download(job, folder))
    video, audio = stream(info, "video"), stream(info, "audio")
    return {
        "width": video["width"], "height": video["height"], "video_codec": video["codec_name"],
        "pix_fmt": video["pix_fmt"], "audio_codec": audio["codec_name"] if audio else None,
        "audio_channels": audio["channels"] if audio else None, "duration": float(info["format"]["duration"]),
    }


class Scenarios:
    """Each scenario runs at most once per executor, whichever test asks first."""

    def __init__(self, apis: dict[str, Api], folder: Path):
        self.apis = apis
        self.folder = folder
        self._done: dict[tuple, object] = {}

    def _once(self, key: tuple, run: Callable[[], object]):
        if key not in self._done:
            self._done[key] = run()
        return self._done[key]

    def completed(self, executor: str, name: str, request: dict) -> Outcome:
        def run() -> Outcome:
            api = self.apis[executor]
            job = api.run({"source": api.upload("bigbuckbunny.mp4"), **request}, timeout=JOB_TIMEOUT)
            media = probe_output(api, job, self.folder) if job["status"] == "COMPLETED" else None
            return Outcome(job, media)

        return self._once((executor, name), run)

    def bad_input(self, executor: str, filename: str) -> Outcome:
        def run() -> Outcome:
            api = self.apis[executor]
            return Outcome(api.run({"source": api.upload(filename), **TRANSCODE}, timeout=JOB_TIMEOUT))

        return self._once((executor, filename), run)

    def retry(self, executor: str) -> list[dict]:
        """The job as the user sees it: failed on an empty upload, retried, done once the file is there."""
        def run() -> list[dict]:
            api = self.apis[executor]
            source = api.upload("zero_bytes.mp4")
            failed = api.run({"source": source, **TRANSCODE}, timeout=JOB_TIMEOUT)
            bucket, _, key = source.removeprefix("s3://").partition("/")
            api.s3.upload_file(str(MEDIA / "normal_h264_aac.mp4"), bucket, key)
            retried = api.http.post(f"/api/jobs/{failed['id']}/retry")
            assert retried.status_code == 200, retried.text
            return [failed, retried.json(), api.wait(failed["id"], timeout=JOB_TIMEOUT)]

        return self._once((executor, "retry"), run)


@pytest.fixture(scope="module")
def scenarios(apis, tmp_path_factory) -> Scenarios:
    return Scenarios(apis, tmp_path_factory.mktemp("contract-outputs"))


@pytest.fixture(scope="module")
def long_media(apis, tmp_path_factory) -> Path:
    """60 s of 1280x720 test picture with sound: long enough to cancel mid-encode."""
    path = tmp_path_factory.mktemp("contract-long") / "long.mp4"
    ffmpeg = next(iter(apis.values())).settings.ffmpeg
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=60",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=60", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path


def assert_equivalent(local: Outcome, remote: Outcome) -> None:
    assert local.status == remote.status
    assert (local.job["error"], local.job["progress"], local.job["attempt"]) == (
        remote.job["error"], remote.job["progress"], remote.job["attempt"])
    assert set(local.job["result"] or {}) == set(remote.job["result"] or {})
    same = {key: value for key, value in local.media.items() if key != "duration"}
    assert same == {key: value for key, value in remote.media.items() if key != "duration"}
    assert abs(local.media["duration"] - remote.media["duration"]) <= DURATION_TOLERANCE


# ---- transcode and trim


@pytest.mark.parametrize("executor", EXECUTORS)
def test_real_clip_transcodes_to_480p(scenarios, executor):
    # Given Big Buck Bunny (1280x720, 5.1 sound) / When transcoded to mp4-480p on this executor
    outcome = scenarios.completed(executor, "transcode", TRANSCODE)

    # Then the job completes with an 854x480 H.264 + stereo AAC file of the source's length
    assert outcome.status == "COMPLETED", outcome.job
    assert (outcome.job["progress"], outcome.job["executor"], outcome.job["error"]) == (100, executor, None)
    assert outcome.media["width"] == 854 and outcome.media["height"] == 480
    assert (outcome.media["video_codec"], outcome.media["audio_codec"], outcome.media["audio_channels"]) == (
        "h264", "aac", 2)
    assert abs(outcome.media["duration"] - 5.31) <= DURATION_TOLERANCE
    assert outcome.job["result"]["width"] == 854


@pytest.mark.parametrize("executor", EXECUTORS)
def test_accurate_trim_lasts_what_was_asked(scenarios, executor):
    outcome = scenarios.completed(executor, "trim", TRIM)

    assert outcome.status == "COMPLETED", outcome.job
    assert abs(outcome.media["duration"] - 2.5) <= DURATION_TOLERANCE
    assert (outcome.media["width"], outcome.media["height"]) == (1280, 720)
    assert outcome.job["result"]["actual_start"] == 1.0


@pytest.mark.parametrize("name", ["transcode", "trim"])
def test_both_executors_give_equivalent_outputs(scenarios, name):
    request = TRANSCODE if name == "transcode" else TRIM

    local, remote = (scenarios.completed(executor, name, request) for executor in EXECUTORS)

    assert_equivalent(local, remote)


# ---- bad input


@pytest.mark.parametrize("filename", BAD_INPUTS)
@pytest.mark.parametrize("executor", EXECUTORS)
def test_bad_input_fails_with_a_reason_and_no_output(scenarios, apis, executor, filename):
    outcome = scenarios.bad_input(executor, filename)

    assert outcome.status == "FAILED"
    assert outcome.job["error"] and "Traceback" not in outcome.job["error"]
    assert outcome.job["output_url"] is None
    assert not apis[executor].object_exists(outcome.job["output"])


@pytest.mark.parametrize("filename", BAD_INPUTS)
def test_both_executors_fail_bad_input_with_the_same_error(scenarios, filename):
    local, remote = (scenarios.bad_input(executor, filename) for executor in EXECUTORS)

    assert (local.status, local.job["error"], local.job["progress"]) == (
        remote.status, remote.job["error"], remote.job["progress"])


# ---- retry


@pytest.mark.parametrize("executor", EXECUTORS)
def test_retry_runs_attempt_2_to_completion_once_the_source_is_there(scenarios, executor):
    # Given a job that failed on an empty upload / When the file is replaced and the job retried
    failed, retried, done = scenarios.retry(executor)

    # Then it went FAILED → PENDING (attempt 2, error cleared) → COMPLETED as attempt 2
    assert (failed["status"], failed["attempt"]) == ("FAILED", 1) and "empty" in failed["error"]
    assert (retried["status"], retried["attempt"], retried["error"]) == ("PENDING", 2, None)
    assert (done["status"], done["attempt"], done["error"]) == ("COMPLETED", 2, None)
    assert done["result"]["width"] == 640


def test_both_executors_walk_a_retry_through_the_same_states(scenarios):
    local, remote = (scenarios.retry(executor) for executor in EXECUTORS)

    def seen(steps: list[dict]) -> list[tuple]:
        return [(step["status"], step["attempt"], step["error"], step["progress"]) for step in steps]

    assert seen(local) == seen(remote)
    assert set(local[-1]["result"]) == set(remote[-1]["result"])


# ---- cancel


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cancel_while_processing_stops_ffmpeg_within_two_seconds(apis, long_media, executor):
    # Given a long transcode whose FFmpeg is running on this executor
    api = apis[executor]
    key = f"uploads/{ULID()}/long.mp4"
    api.s3.upload_file(str(long_media), api.settings.media_bucket, key)
    job = api.submit({"source": f"s3://{api.settings.media_bucket}/{key}", "operation": "transcode",
                      "preset": "mp4-1080p"})
    deadline = time.monotonic() + 60
    while not ffmpeg_pids_for(job["id"]):
        assert time.monotonic() < deadline, api.job(job["id"])
        time.sleep(0.1)

    # When it is cancelled
    cancelled_at = time.monotonic()
    response = api.http.post(f"/api/jobs/{job['id']}/cancel")

    # Then FFmpeg is gone within 2 s, and the job stays CANCELLED with nothing published
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    while ffmpeg_pids_for(job["id"]):
        assert time.monotonic() - cancelled_at < 2.0, "FFmpeg still running 2 s after cancel"
        time.sleep(0.05)
    time.sleep(1.5)
    final = api.job(job["id"])
    assert (final["status"], final["output_url"]) == ("CANCELLED", None)
    assert not api.object_exists(final["output"])


def test_cancel_on_the_lambda_executor_stops_the_execution(apis, stacks):
    # Given a job the lambda executor has started an execution for
    api = apis["lambda"]
    job = api.submit({"source": api.upload("bigbuckbunny.mp4"), **TRANSCODE})
    sfn = boto3.client("stepfunctions", region_name=api.settings.region, endpoint_url=api.settings.sfn_endpoint)
    arn = f"{STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:{job['id']}-1"

    # When the user cancels it
    assert api.http.post(f"/api/jobs/{job['id']}/cancel").status_code == 200

    # Then the execution is stopped (StopExecution), not left running
    assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
