"""What each preset means, and the picture-size arithmetic. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    container: str  # file extension of the output
    # The box the picture must fit in, as (long side, short side); None for audio-only presets.
    box: tuple[int, int] | None
    video_crf: int = 23
    video_maxrate_kbps: int = 0
    audio_bitrate_kbps: int = 128

    @property
    def has_video(self) -> bool:
        return self.box is not None


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("mp4-1080p", "mp4", (1920, 1080), video_crf=22, video_maxrate_kbps=8000, audio_bitrate_kbps=160),
        Preset("mp4-720p", "mp4", (1280, 720), video_crf=23, video_maxrate_kbps=5000),
        Preset("mp4-480p", "mp4", (854, 480), video_crf=24, video_maxrate_kbps=2500),
        Preset("audio-m4a", "m4a", None, audio_bitrate_kbps=128),
    )
}

# Accurate trims with no preset keep the source's size, up to this box.
TRIM_DEFAULT_PRESET = Preset("trim-source", "mp4", (1920, 1080), video_crf=20, audio_bitrate_kbps=160)


def _even(value: float, limit: int) -> int:
    """The even number nearest `value`, but never above `limit` (the box or the source itself)."""
    nearest = round(value / 2.0) * 2
    if nearest > limit:
        nearest = limit - limit % 2
    return max(2, nearest)


def fit_within(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """Even output dimensions that keep the aspect, fit the box in the picture's orientation, never upscale."""
    long_side, short_side = box
    max_w, max_h = (long_side, short_side) if width >= height else (short_side, long_side)
    scale = min(1.0, max_w / width, max_h / height)
    return _even(width * scale, min(width, max_w)), _even(height * scale, min(height, max_h))
