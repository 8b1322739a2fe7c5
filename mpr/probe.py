"""ffprobe into a MediaInfo, and the rules a source and an output must meet.

`probe_argv` and the parsing and checking functions are pure; `probe` runs ffprobe.
"""

from __future__ import annotations

import json
import logging
import shlex
import struct
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mpr.errors import InputError, OutputCheckError

logger = logging.getLogger(__name__)

# Demuxers a source may be read with. Playlists (hls, dash), concat lists, image sequences and
# anything else that can open further files or URLs are refused by FFmpeg itself.
ALLOWED_DEMUXERS = (
    "mov", "mp4", "m4a", "3gp", "matroska", "webm", "avi", "mpegts", "flv", "ogg", "wav", "mp3",
    "aac", "flac", "mpeg", "asf",
)
INPUT_GUARD = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(ALLOWED_DEMUXERS)]
PROBE_TIMEOUT_SECONDS = 120
STDERR_LOG_CHARS = 2000


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    pix_fmt: str
    rotation: int  # clockwise display rotation in degrees: 0, 90, 180 or 270
    frame_rate: float
    sample_aspect: Fraction

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as the picture is meant to be seen: aspect ratio and rotation applied."""
        width = max(1, round(self.width * float(self.sample_aspect)))
        if self.rotation in (90, 270):
            return self.height, width
        return width, self.height


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class MediaInfo:
    format_name: str
    duration: float
    size: int
    video: VideoInfo | None
    audio: AudioInfo | None

    def summary(self) -> dict:
        """The job `result` fields the contract names."""
        width, height = self.video.display_size if self.video else (None, None)
        return {
            "size": self.size,
            "duration": round(self.duration, 3),
            "width": width,
            "height": height,
            "video_codec": self.video.codec if self.video else None,
            "audio_codec": self.audio.codec if self.audio else None,
        }


def probe_argv(ffprobe: str, path: Path) -> list[str]:
    return [
        ffprobe, "-hide_banner", "-v", "error", *INPUT_GUARD,
        "-print_format", "json", "-show_format", "-show_streams", str(path),
    ]


def keyframe_argv(ffprobe: str, path: Path, until: float) -> list[str]:
    """Video packets from the start up to `until` seconds, with their flags, to find keyframes."""
    return [
        ffprobe, "-hide_banner", "-v", "error", *INPUT_GUARD, "-select_streams", "v:0",
        "-read_intervals", f"%{until + 0.001:.3f}", "-show_entries", "packet=pts_time,flags",
        "-print_format", "csv=p=0", str(path),
    ]


def _rotation(stream: dict) -> int:
    degrees = 0.0
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            degrees = float(side_data["rotation"])
    if not degrees and "rotate" in (stream.get("tags") or {}):
        degrees = -float(stream["tags"]["rotate"])
    # ffprobe reports the display matrix counter-clockwise; -90 means the picture is shown turned 90° clockwise.
    return round(-degrees) % 360


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value)


def _aspect(text: str | None) -> Fraction:
    try:
        num, den = (int(part) for part in (text or "1:1").split(":"))
        return Fraction(num, den) if num > 0 and den > 0 else Fraction(1)
    except ValueError:
        return Fraction(1)


def parse_probe(payload: dict) -> MediaInfo:
    streams = payload.get("streams") or []
    fmt = payload.get("format") or {}
    video_streams = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audio_streams = [s for s in streams if s.get("codec_type") == "audio"]
    video = None
    if video_streams:
        s = video_streams[0]
        video = VideoInfo(
            codec=s.get("codec_name", "unknown"),
            width=int(s.get("width") or 0),
            height=int(s.get("height") or 0),
            pix_fmt=s.get("pix_fmt", "unknown"),
            rotation=_rotation(s),
            # The average rate; 0 when the container does not know one (0/0), never the timebase guess.
            frame_rate=_rate(s.get("avg_frame_rate")),
            sample_aspect=_aspect(s.get("sample_aspect_ratio")),
        )
    audio = None
    if audio_streams:
        s = audio_streams[0]
        audio = AudioInfo(
            codec=s.get("codec_name", "unknown"),
            channels=int(s.get("channels") or 0),
            sample_rate=int(s.get("sample_rate") or 0),
        )
    durations = [float(fmt.get("duration") or 0)] + [float(s.get("duration") or 0) for s in streams]
    return MediaInfo(
        format_name=fmt.get("format_name", "unknown"),
        duration=max(durations) if not fmt.get("duration") else float(fmt["duration"]),
        size=int(fmt.get("size") or 0),
        video=video,
        audio=audio,
    )


def explain_probe_failure(stderr: str) -> str:
    """A sentence a user can act on, from what ffprobe said about a source it could not read."""
    text = stderr.lower()
    if "not on whitelist" in text:
        return (
            "source is not a supported media file (playlists such as HLS or DASH, concat lists and image "
            "sequences are refused); upload a single MP4, MOV, MKV, WebM or audio file"
        )
    if "moov atom not found" in text:
        return (
            "source is incomplete: its MP4 index (moov) is missing, which usually means the upload was cut "
            "short; upload the whole file again"
        )
    if "invalid data" in text or "end of file" in text:
        return "source could not be read as audio or video; check that the upload is a complete media file"
    return "source could not be read by ffprobe; check that the upload is a complete media file"


def run_probe(argv: list[str]) -> subprocess.CompletedProcess:
    logger.debug("ffprobe", extra={"argv": shlex.join(argv)})
    return subprocess.run(
        argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT_SECONDS, check=False
    )


def probe(ffprobe: str, path: Path) -> MediaInfo:
    completed = run_probe(probe_argv(ffprobe, path))
    stderr = completed.stderr.decode("utf-8", errors="replace")
    if completed.returncode != 0:
        logger.warning("ffprobe refused the file", extra={"exit_code": completed.returncode,
                                                          "stderr_tail": stderr[-STDERR_LOG_CHARS:]})
        if completed.returncode < 0:
            raise InputError(
                f"FFmpeg crashed reading the source (signal {-completed.returncode}); this container is not "
                "supported by this build: convert the file to MP4 and upload it again"
            )
        raise InputError(explain_probe_failure(stderr))
    try:
        info = parse_probe(json.loads(completed.stdout or b"{}"))
    except (ValueError, TypeError):
        raise InputError("source could not be read by ffprobe; check that the upload is a media file") from None
    if info.video is None and info.audio is None:
        raise InputError("source has neither a video nor an audio stream")
    return info


def keyframe_at_or_before(ffprobe: str, path: Path, moment: float) -> float:
    completed = run_probe(keyframe_argv(ffprobe, path, moment))
    if completed.returncode != 0:
        raise InputError("could not read the source's keyframes for a fast trim; use trim mode accurate")
    return parse_keyframe(completed.stdout.decode("utf-8", errors="replace"), moment)


def parse_keyframe(csv_text: str, moment: float) -> float:
    best = None
    for line in csv_text.splitlines():
        pts, _, flags = line.partition(",")
        try:
            seconds = float(pts)
        except ValueError:
            continue
        if "K" in flags and seconds <= moment + 1e-6 and (best is None or seconds > best):
            best = seconds
    if best is None:
        raise InputError("no keyframe at or before trim.start; use trim mode accurate")
    return best


def moov_before_mdat(path: Path) -> bool:
    """True when an MP4's index comes before its media data (what faststart means)."""
    with open(path, "rb") as handle:
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return False
            size, kind = struct.unpack(">I4s", header)
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size == 0:
                return False
            skip = size - 8
            if size == 1:
                skip = struct.unpack(">Q", handle.read(8))[0] - 16
            handle.seek(skip, 1)


def check_source(info: MediaInfo, wants_video: bool, wants_audio_only: bool) -> None:
    """Refuse, with a reason, a source the job cannot be done on. Found by probing, never by file name."""
    if wants_video and info.video is None:
        raise InputError("source has no video stream; use preset audio-m4a for audio-only files")
    if wants_audio_only and info.audio is None:
        raise InputError("source has no audio stream, so preset audio-m4a has nothing to encode")
    if info.video is not None and (info.video.width <= 0 or info.video.height <= 0):
        raise InputError("source video has no picture size; the file may be damaged")
    if info.duration <= 0:
        raise InputError("source has no duration; the file may be damaged or empty")


def check_trim_range(info: MediaInfo, start: float, end: float) -> float:
    """The end actually used: the asked end, or the source's end when the range runs past it."""
    if start >= info.duration:
        raise InputError(
            f"trim start {start:g} s is past the end of the {info.duration:.1f} s source"
        )
    return min(end, info.duration)


def check_output(
    info: MediaInfo, path: Path, expected_duration: float, *, needs_video: bool, needs_audio: bool,
    tolerance: float = 0.1, copied: bool = False,
) -> None:
    """Refuse to publish an output that is not what was asked for."""
    if info.size <= 0:
        raise OutputCheckError("FFmpeg produced an empty file; the source may be damaged")
    if needs_video:
        video = info.video
        if video is None:
            raise OutputCheckError("FFmpeg produced no video stream; the source may be damaged")
        allowed = ("yuv420p", "yuvj420p") if copied else ("yuv420p",)
        if video.codec != "h264" or video.pix_fmt not in allowed:
            raise OutputCheckError(f"output video is {video.codec} {video.pix_fmt}, not H.264 yuv420p")
        # A stream copy keeps the source's rotation flag: the picture is still turned exactly once.
        if video.width % 2 or video.height % 2 or (video.rotation and not copied):
            raise OutputCheckError("output picture has odd dimensions or a rotation flag")
    if needs_audio and (info.audio is None or info.audio.codec != "aac"):
        raise OutputCheckError("output has no AAC audio although the source has audio")
    if abs(info.duration - expected_duration) > tolerance:
        raise OutputCheckError(
            f"output lasts {info.duration:.2f} s instead of {expected_duration:.2f} s; the source may be "
            "damaged or truncated"
        )
    if not moov_before_mdat(path):
        raise OutputCheckError("output index is not at the start of the file (faststart failed)")
