"""FFmpeg: argv built as data from the parsed spec and the probed source, and the runner with progress.

The argv builders are pure. Only `run_ffmpeg` starts a process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mpr.errors import FfmpegError, JobCancelled
from mpr.presets import Preset, fit_within
from mpr.probe import INPUT_GUARD, MediaInfo

logger = logging.getLogger(__name__)

COMMON = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-nostats", "-progress", "pipe:1"]
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p"]
MAX_OUTPUT_FPS = 60.0
NONSENSE_FPS = 240.0
STDERR_TAIL_BYTES = 4000
KILL_GRACE_SECONDS = 0.5


@dataclass(frozen=True)
class Cut:
    """A time range of the source, in seconds, as FFmpeg will be told."""

    start: float
    duration: float


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _video_options(preset: Preset, info: MediaInfo) -> list[str]:
    assert info.video is not None and preset.box is not None
    width, height = fit_within(*info.video.display_size, preset.box)
    # NOTE: FFmpeg applies the source's rotation itself (autorotate) before this chain and writes no
    # rotation flag on the output, so the picture is turned exactly once.
    options = [*X264, "-crf", str(preset.video_crf), "-vf", f"scale={width}:{height}:flags=bicubic,setsar=1"]
    if preset.video_maxrate_kbps:
        rate = preset.video_maxrate_kbps
        options += ["-maxrate", f"{rate}k", "-bufsize", f"{rate * 2}k"]
    rate = info.video.frame_rate
    if rate <= 0 or rate > NONSENSE_FPS:
        # No believable average rate (variable-rate phone video, or a crafted file): keep each frame's
        # own time. A constant rate would fill every gap with copies: hours of frames from a few.
        options += ["-fps_mode", "vfr"]
    elif rate > MAX_OUTPUT_FPS:
        options += ["-fps_mode", "cfr", "-r", str(int(MAX_OUTPUT_FPS))]
    return options


def _audio_options(preset: Preset, info: MediaInfo) -> list[str]:
    assert info.audio is not None
    options = ["-c:a", "aac", "-b:a", f"{preset.audio_bitrate_kbps}k", "-ac", "2"]
    if info.audio.sample_rate > 48000 or info.audio.sample_rate <= 0:
        options += ["-ar", "48000"]
    return options


def _input(source: Path, cut: Cut | None) -> list[str]:
    seek = ["-ss", _seconds(cut.start)] if cut and cut.start > 0 else []
    return [*seek, *INPUT_GUARD, "-i", str(source)]


def _mp4_output(output: Path, cut: Cut | None) -> list[str]:
    limit = ["-t", _seconds(cut.duration)] if cut else []
    return [*limit, "-map_metadata", "-1", "-map_chapters", "-1", "-movflags", "+faststart", "-f", "mp4",
            str(output)]


def encode_argv(ffmpeg: str, source: Path, output: Path, preset: Preset, info: MediaInfo,
                cut: Cut | None = None) -> list[str]:
    """Re-encode to `preset`: a transcode, or an accurate trim when `cut` is given."""
    argv = [ffmpeg, *COMMON, *_input(source, cut)]
    if preset.has_video:
        argv += ["-map", "0:v:0", *_video_options(preset, info)]
    else:
        argv += ["-vn"]
    if info.audio is not None:
        argv += ["-map", "0:a:0", *_audio_options(preset, info)]
    argv += ["-sn", "-dn"]
    return argv + _mp4_output(output, cut)


def stream_copy_argv(ffmpeg: str, source: Path, output: Path, info: MediaInfo, cut: Cut) -> list[str]:
    """A fast trim: packets copied from the keyframe `cut.start`, no re-encode."""
    argv = [ffmpeg, *COMMON, *_input(source, cut)]
    if info.video is not None:
        argv += ["-map", "0:v:0"]
    if info.audio is not None:
        argv += ["-map", "0:a:0"]
    argv += ["-c", "copy", "-sn", "-dn"]
    return argv + _mp4_output(output, cut)


def parse_progress_line(line: str) -> float | None:
    """Seconds of output written, from one line of FFmpeg's -progress output."""
    key, _, value = line.strip().partition("=")
    if key in ("out_time_us", "out_time_ms"):  # both are microseconds in FFmpeg's output
        try:
            return max(0.0, int(value) / 1_000_000)
        except ValueError:
            return None
    return None


def _die_with_parent() -> None:
    # NOTE: if the worker process is killed (Celery revoke with terminate, OOM, SIGKILL), the kernel
    # kills FFmpeg too, so no encoder is left running without a job.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _ProgressReader(threading.Thread):
    def __init__(self, stream):
        super().__init__(daemon=True)
        self._stream = stream
        self.seconds = 0.0

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            seconds = parse_progress_line(raw.decode("utf-8", errors="replace"))
            if seconds is not None:
                self.seconds = max(self.seconds, seconds)


def _tail(handle) -> str:
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(max(0, size - STDERR_TAIL_BYTES))
    return handle.read().decode("utf-8", errors="replace").strip()


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_ffmpeg(argv: list[str], expected_seconds: float, report: Callable[[float], bool],
               interval: float = 1.0) -> None:
    """Run FFmpeg, calling `report(fraction done)` about every `interval` seconds.

    When `report` returns False the job is no longer ours: FFmpeg is stopped and JobCancelled raised.
    """
    logger.debug("ffmpeg", extra={"argv": shlex.join(argv)})
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            preexec_fn=_die_with_parent,
        )
        reader = _ProgressReader(process.stdout)
        reader.start()
        try:
            _watch(process, reader, expected_seconds, report, interval)
        finally:
            if process.poll() is None:
                _stop(process)
            reader.join(timeout=2)
        if process.returncode != 0:
            tail = _tail(stderr)
            last = tail.splitlines()[-1] if tail else f"exit status {process.returncode}"
            raise FfmpegError(f"FFmpeg could not process the source: {last}", stderr_tail=tail)


def _watch(process, reader, expected_seconds, report, interval) -> None:
    next_report = time.monotonic() + interval
    while process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, next_report - time.monotonic()))
        if process.returncode is not None:
            return
        fraction = min(1.0, reader.seconds / expected_seconds) if expected_seconds > 0 else 0.0
        if not report(fraction):
            _stop(process)
            raise JobCancelled("the job was cancelled while FFmpeg ran")
        next_report = time.monotonic() + interval
