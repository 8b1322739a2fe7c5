"""Picture-size arithmetic: even, aspect kept, orientation respected, never upscaled."""

import pytest

from mpr.presets import PRESETS, fit_within


@pytest.mark.parametrize(
    "size,box,expected",
    [
        ((1280, 720), (854, 480), (854, 480)),
        ((1920, 1080), (1280, 720), (1280, 720)),
        ((641, 361), (854, 480), (640, 360)),  # odd source, smaller than the box: evened, not upscaled
        ((360, 640), (854, 480), (360, 640)),  # portrait stays portrait
        ((1080, 1920), (854, 480), (480, 854)),  # a portrait picture fits the box turned upright
        ((320, 240), (1920, 1080), (320, 240)),
        ((3, 3), (854, 480), (2, 2)),
    ],
)
def test_fit_within(size, box, expected):
    assert fit_within(*size, box) == expected


@pytest.mark.parametrize("width,height", [(641, 361), (1279, 719), (1920, 817), (999, 1777)])
def test_fit_keeps_aspect_within_one_percent(width, height):
    out_w, out_h = fit_within(width, height, PRESETS["mp4-480p"].box)

    assert out_w % 2 == 0 and out_h % 2 == 0
    assert abs((out_w / out_h) / (width / height) - 1) < 0.01


def test_contract_presets_exist():
    assert {"mp4-1080p", "mp4-720p", "mp4-480p", "audio-m4a"} <= set(PRESETS)
    assert not PRESETS["audio-m4a"].has_video
