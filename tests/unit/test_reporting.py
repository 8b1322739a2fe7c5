"""The local reporter: progress is written about once a second, never backwards, and stops a lost job."""

import time

import pytest

from mpr.errors import ConflictError, JobCancelled
from mpr.jobs import Job, JobStatus
from mpr.processing import heartbeat
from mpr.reporting import StoreReporter


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class RecordingStore:
    """Stands in for JobStore: records each write, and can be told the job was cancelled."""

    def __init__(self):
        self.writes: list[int] = []
        self.cancelled = False

    def _job(self, status=JobStatus.PROCESSING, progress=0):
        return Job(id="J", status=status, operation="transcode", source="s3://b/k", output="s3://b/o",
                   progress=progress)

    def claim(self, job_id, attempt):
        return self._job()

    def heartbeat(self, job_id, attempt, progress):
        if self.cancelled:
            raise ConflictError("cannot update progress of job J: it is CANCELLED")
        self.writes.append(progress)
        return self._job(progress=progress)


def test_progress_writes_are_throttled_to_about_one_a_second():
    # Given a claimed job and a clock
    store, clock = RecordingStore(), FakeClock()
    reporter = StoreReporter(store, "J", 1, clock=clock)
    reporter.start()

    # When progress is reported ten times within 0.9 s, then once more after a second
    for percent in range(10, 20):
        clock.now += 0.09
        assert reporter.progress(percent)
    clock.now += 0.2
    reporter.progress(25)

    # Then only the last report was written
    assert store.writes == [25]


def test_progress_never_goes_backwards():
    store, clock = RecordingStore(), FakeClock()
    reporter = StoreReporter(store, "J", 1, clock=clock)
    reporter.start()

    reporter.progress(40, force=True)
    reporter.progress(30, force=True)

    assert store.writes == [40, 40]


def test_lost_job_makes_progress_answer_false():
    store, clock = RecordingStore(), FakeClock()
    reporter = StoreReporter(store, "J", 1, clock=clock)
    reporter.start()
    store.cancelled = True

    assert reporter.progress(50, force=True) is False


def test_every_write_is_published():
    seen = []
    store, clock = RecordingStore(), FakeClock()
    reporter = StoreReporter(store, "J", 1, on_change=seen.append, clock=clock)

    reporter.start()
    reporter.progress(10, force=True)

    assert [job.progress for job in seen] == [0, 10]


class CountingReporter:
    def __init__(self, answers=True):
        self.beats = []
        self.answers = answers

    def progress(self, percent, force=False):
        self.beats.append((percent, force))
        return self.answers


def test_heartbeat_renews_the_lease_while_a_transfer_blocks():
    reporter = CountingReporter()

    with heartbeat(reporter, 0, interval=0.05):
        time.sleep(0.3)

    assert len(reporter.beats) >= 3 and set(reporter.beats) == {(0, True)}


def test_heartbeat_that_finds_the_job_cancelled_stops_the_job_after_the_transfer():
    with pytest.raises(JobCancelled), heartbeat(CountingReporter(answers=False), 0, interval=0.05):
        time.sleep(0.2)
