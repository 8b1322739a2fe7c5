"""The lambda executor's budgets: a source too big or too long for its scratch disk or time limit fails
up front, before FFmpeg runs, with a reason pointing to the local executor. Real ffprobe, no servers.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from mpr import processing
from mpr.errors import ConflictError
from mpr.jobs import Job, JobStatus
from mpr.settings import Settings
from tests.integration.support import MEDIA

pytestmark = pytest.mark.integration


class FolderStorage:
    """S3 stand-in over a folder: keys are file names in media/."""

    def __init__(self):
        self.uploaded: list[str] = []

    def size_of(self, location) -> int:
        return (MEDIA / Path(location.key).name).stat().st_size

    def download(self, location, path: Path) -> None:
        shutil.copyfile(MEDIA / Path(location.key).name, path)

    def upload(self, path, location, content_type) -> str:
        self.uploaded.append(location.key)
        return f"etag-{len(self.uploaded)}"

    def delete(self, location, etag=None) -> None:
        self.uploaded.remove(location.key)


class RecordingReporter:
    def __init__(self, job: Job):
        self.job = job
        self.events: list[tuple[str, object]] = []

    def start(self) -> Job:
        self.events.append(("started", None))
        return self.job

    def progress(self, percent: int, force: bool = False) -> bool:
        self.events.append(("progress", percent))
        return True

    def complete(self, result: dict) -> None:
        self.events.append(("completed", result))

    def fail(self, error: str) -> None:
        self.events.append(("failed", error))


def job_for(name: str) -> Job:
    return Job(id="J1", status=JobStatus.PROCESSING, operation="transcode", preset="mp4-480p",
               source=f"s3://mpr-media/uploads/{name}", output="s3://mpr-media/outputs/J1/out.mp4")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return dataclasses.replace(Settings.from_env({}), scratch_dir=str(tmp_path))


def run(job: Job, settings: Settings) -> tuple[RecordingReporter, FolderStorage]:
    reporter, storage = RecordingReporter(job), FolderStorage()
    processing.run(reporter, storage, settings)
    return reporter, storage


def test_source_larger_than_the_scratch_budget_fails_before_download(settings):
    limited = dataclasses.replace(settings, max_source_bytes=100_000)

    reporter, storage = run(job_for("bigbuckbunny.mp4"), limited)

    kind, error = reporter.events[-1]
    assert kind == "failed" and "local executor" in error and "GB" in error
    assert ("progress", processing.PROGRESS_PROBED) not in reporter.events
    assert storage.uploaded == []


def test_source_longer_than_the_time_budget_fails_after_probing(settings):
    limited = dataclasses.replace(settings, max_duration_seconds=3.0)

    reporter, storage = run(job_for("bigbuckbunny.mp4"), limited)

    kind, error = reporter.events[-1]
    assert kind == "failed" and "lasts 5 s" in error and "local executor" in error
    assert storage.uploaded == []


def test_within_budgets_the_job_completes_and_uploads(settings, tmp_path):
    limited = dataclasses.replace(settings, max_source_bytes=10_000_000, max_duration_seconds=60.0)

    reporter, storage = run(job_for("normal_h264_aac.mp4"), limited)

    assert reporter.events[-1][0] == "completed"
    assert storage.uploaded == ["outputs/J1/out.mp4"]
    assert list(tmp_path.iterdir()) == []  # scratch removed


def test_lost_race_at_completion_withdraws_the_output(settings):
    class CancelledAtTheEnd(RecordingReporter):
        def complete(self, result):
            raise ConflictError("cannot complete job J1: it is CANCELLED")

    storage = FolderStorage()
    processing.run(CancelledAtTheEnd(job_for("normal_h264_aac.mp4")), storage, settings)

    assert storage.uploaded == []


def test_stale_scratch_of_a_killed_job_is_cleared_but_nothing_else(settings, tmp_path):
    (tmp_path / "mpr-01DEAD-abc").mkdir()
    (tmp_path / "mpr-01DEAD-abc" / "source").write_bytes(b"x" * 10)
    (tmp_path / "not-ours").mkdir()

    assert processing.clear_stale_scratch(settings) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["not-ours"]
