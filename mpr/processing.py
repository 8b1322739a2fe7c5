"""One job's work, start to finish. The Celery task and the FFmpeg Lambda both call `run`.

Where state changes go is the reporter's business: the job table directly (local executor) or the
signed callback (lambda executor). Everything else is the same code on both.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mpr.errors import (
    ConflictError,
    InputError,
    JobCancelled,
    JobFailure,
    MprError,
    OutputCheckError,
    UnauthorizedError,
)
from mpr.ffmpeg import Cut, encode_argv, run_ffmpeg, stream_copy_argv
from mpr.jobs import Job
from mpr.presets import PRESETS, TRIM_DEFAULT_PRESET, Preset
from mpr.probe import (
    MediaInfo,
    check_output,
    check_source,
    check_trim_range,
    keyframe_at_or_before,
    probe,
)
from mpr.settings import Settings
from mpr.specs import parse_s3_uri
from mpr.storage import MediaStorage

logger = logging.getLogger(__name__)

# Share of the progress bar each phase fills; FFmpeg's own progress fills the rest.
PROGRESS_PROBED = 3
PROGRESS_ENCODED = 95
PROGRESS_VERIFIED = 97
# A stream copy can only stop on a whole packet, after B-frame reordering.
FAST_TRIM_END_SLACK_FRAMES = 3
# What a fast trim may copy: 8-bit 4:2:0, which every browser plays.
PLAYABLE_PIXEL_FORMATS = ("yuv420p", "yuvj420p")


SCRATCH_PREFIX = "mpr-"
HEARTBEAT_SECONDS = 10.0  # well inside the lease, which the reaper enforces


class Reporter(Protocol):
    def start(self) -> Job: ...

    def progress(self, percent: int, force: bool = False) -> bool: ...

    def complete(self, result: dict) -> None: ...

    def fail(self, error: str) -> None: ...


@dataclass
class Plan:
    argv: list[str]
    expected_seconds: float
    needs_video: bool
    tolerance: float
    trim_result: dict
    copied: bool = False


def run(reporter: Reporter, storage: MediaStorage, settings: Settings) -> Job | None:
    """Claim the job, do it, and report the outcome. Returns the claimed job, or None when skipped."""
    try:
        job = reporter.start()
    except (ConflictError, UnauthorizedError) as error:
        logger.info("job not claimable, skipped", extra={"reason": error.message})
        return None
    logger.info("job started", extra={"job_id": job.id, "attempt": job.attempt})
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{job.id}-", dir=settings.scratch_dir))
    try:
        _process(job, scratch, reporter, storage, settings)
    except JobCancelled:
        logger.info("job stopped: no longer ours", extra={"job_id": job.id})
    except JobFailure as error:
        logger.info("job failed", extra={"job_id": job.id, "error": error.message,
                                         "stderr_tail": getattr(error, "stderr_tail", "")})
        _report_failure(reporter, error.message)
    except Exception as error:  # a bug or an outage: the job must still end FAILED, never stuck
        logger.exception("job crashed", extra={"job_id": job.id})
        _report_failure(reporter, f"internal error while processing ({type(error).__name__}); retry the job")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return job


def clear_stale_scratch(settings: Settings) -> int:
    """Remove job folders left by a process that was killed mid-job; call only while no job runs here."""
    folder = Path(settings.scratch_dir or tempfile.gettempdir())
    stale = [entry for entry in folder.glob(f"{SCRATCH_PREFIX}*") if entry.is_dir()]
    for entry in stale:
        shutil.rmtree(entry, ignore_errors=True)
    if stale:
        logger.info("stale scratch removed", extra={"folders": len(stale)})
    return len(stale)


def _report_failure(reporter: Reporter, message: str) -> None:
    try:
        reporter.fail(message)
    except MprError as error:
        logger.info("failure not recorded: job moved on", extra={"reason": error.message})


def _process(job: Job, scratch: Path, reporter: Reporter, storage: MediaStorage, settings: Settings) -> None:
    source = parse_s3_uri(job.source, "source")
    size = storage.size_of(source)
    if size == 0:
        raise InputError("source is empty (0 bytes); upload the file again")
    if settings.max_source_bytes and size > settings.max_source_bytes:
        raise InputError(
            f"source is {size / 1e9:.1f} GB, more than the {settings.max_source_bytes / 1e9:.1f} GB this "
            "executor's scratch disk holds; run the job on the local executor"
        )
    source_path = scratch / "source"
    with heartbeat(reporter, 0):
        storage.download(source, source_path)

    info = probe(settings.ffprobe, source_path)
    if settings.max_duration_seconds and info.duration > settings.max_duration_seconds:
        raise InputError(
            f"source lasts {info.duration:.0f} s, longer than this executor can encode in its time limit "
            f"({settings.max_duration_seconds:.0f} s of media); run the job on the local executor"
        )
    reporter.progress(PROGRESS_PROBED)

    output_path = scratch / f"output.{Path(job.output).suffix.lstrip('.') or 'mp4'}"
    plan = _plan(job, info, source_path, output_path, settings)
    span = PROGRESS_ENCODED - PROGRESS_PROBED
    run_ffmpeg(plan.argv, plan.expected_seconds,
               lambda fraction: reporter.progress(PROGRESS_PROBED + int(fraction * span)))

    try:
        produced = probe(settings.ffprobe, output_path)
        check_output(produced, output_path, plan.expected_seconds, needs_video=plan.needs_video,
                     needs_audio=info.audio is not None, tolerance=plan.tolerance, copied=plan.copied)
    except (InputError, OutputCheckError) as error:
        if job.operation != "trim":
            raise
        start, end = plan.trim_result["requested_start"], plan.trim_result["requested_end"]
        raise OutputCheckError(
            f"the trim range {start:g}-{end:g} s gave no usable output ({error.message}); the source may "
            "have no frames in that range: check trim.start and trim.end"
        ) from None
    result = {**produced.summary(), **plan.trim_result}
    if "actual_start" in result and "actual_end" not in result:
        # A stream copy ends on a whole packet: its real end is where its real start plus its length say.
        result["actual_end"] = round(result["actual_start"] + produced.duration, 3)
    _publish(job, output_path, result, reporter, storage)


def _plan(job: Job, info: MediaInfo, source: Path, output: Path, settings: Settings) -> Plan:
    if job.operation == "transcode":
        preset = PRESETS[job.preset]
        _check_preset(info, preset)
        argv = encode_argv(settings.ffmpeg, source, output, preset, info)
        return Plan(argv, info.duration, preset.has_video, _transcode_tolerance(info.duration), {})

    start, asked_end = float(job.trim["start"]), float(job.trim["end"])
    end = check_trim_range(info, start, asked_end)
    trimmed = {"requested_start": start, "requested_end": asked_end}
    if job.trim.get("mode") == "fast":
        return _fast_trim_plan(info, source, output, settings, start, end, trimmed)
    preset = PRESETS[job.preset] if job.preset else TRIM_DEFAULT_PRESET
    _check_preset(info, preset)
    argv = encode_argv(settings.ffmpeg, source, output, preset, info, Cut(start, end - start))
    return Plan(argv, end - start, preset.has_video, 0.1,
                {**trimmed, "actual_start": start, "actual_end": round(end, 3)})


def _fast_trim_plan(info, source, output, settings, start, end, trimmed) -> Plan:
    if info.video is not None and info.video.codec != "h264":
        raise InputError(
            f"a fast trim copies the video as it is, and this source's video is {info.video.codec}, not "
            "H.264; use trim mode accurate"
        )
    if info.video is not None and info.video.pix_fmt not in PLAYABLE_PIXEL_FORMATS:
        raise InputError(
            f"a fast trim copies the video as it is, and this source's video is {info.video.pix_fmt} "
            "(not 8-bit 4:2:0), which browsers cannot play; use trim mode accurate"
        )
    if info.audio is not None and info.audio.codec != "aac":
        raise InputError(
            f"a fast trim copies the audio as it is, and this source's audio is {info.audio.codec}, not "
            "AAC; use trim mode accurate"
        )
    keyframe = keyframe_at_or_before(settings.ffprobe, source, start) if info.video else start
    cut = Cut(keyframe, end - keyframe)
    frame = 1.0 / info.video.frame_rate if info.video and info.video.frame_rate else 0.04
    argv = stream_copy_argv(settings.ffmpeg, source, output, info, cut)
    return Plan(argv, cut.duration, info.video is not None, 0.1 + FAST_TRIM_END_SLACK_FRAMES * frame,
                {**trimmed, "actual_start": round(keyframe, 3)}, copied=True)


@contextlib.contextmanager
def heartbeat(reporter: Reporter, percent: int, interval: float = HEARTBEAT_SECONDS):
    """Keep renewing the job's lease while a long transfer blocks this thread.

    A transfer cannot be stopped halfway; a cancel seen meanwhile is acted on when it returns.
    """
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            if not reporter.progress(percent, force=True):
                lost.set()
                return

    thread = threading.Thread(target=beat, name="mpr-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if lost.is_set():
        raise JobCancelled("the job was cancelled during a transfer")


def _check_preset(info: MediaInfo, preset: Preset) -> None:
    check_source(info, wants_video=preset.has_video, wants_audio_only=not preset.has_video)


def _transcode_tolerance(duration: float) -> float:
    # Audio frames (about 21 ms for AAC) and the last video frame round a whole file's length.
    return max(0.1, duration * 0.002)


def _publish(job: Job, output_path: Path, result: dict, reporter: Reporter, storage: MediaStorage) -> None:
    """Upload only a checked output, only while the job is still ours; withdraw it if we lose the race."""
    if not reporter.progress(PROGRESS_VERIFIED, force=True):
        raise JobCancelled("job cancelled before upload")
    destination = parse_s3_uri(job.output, "output")
    content_type = "audio/mp4" if destination.key.lower().endswith(".m4a") else "video/mp4"
    started = time.monotonic()
    with heartbeat(reporter, PROGRESS_VERIFIED):
        etag = storage.upload(output_path, destination, content_type)
    logger.info("output uploaded", extra={"job_id": job.id, "bytes": result.get("size"),
                                          "seconds": round(time.monotonic() - started, 3)})
    try:
        reporter.complete(result)
    except ConflictError as error:
        current = error.current
        if current is None or current.attempt == job.attempt:
            storage.delete(destination, etag=etag)
        logger.info("output withdrawn: job moved on", extra={"job_id": job.id, "reason": error.message})
        raise JobCancelled(error.message) from None
    logger.info("job completed", extra={"job_id": job.id, "attempt": job.attempt})
