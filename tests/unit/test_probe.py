"""Reading ffprobe's answer, and the rules sources and outputs must meet."""

import struct

import pytest

from mpr.errors import InputError, OutputCheckError
from mpr.probe import (
    check_output,
    check_source,
    check_trim_range,
    explain_probe_failure,
    moov_before_mdat,
    parse_keyframe,
    parse_probe,
)


def payload(streams, duration="4.0"):
    return {"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": duration, "size": "1000"},
            "streams": streams}


VIDEO = {"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360, "pix_fmt": "yuv420p",
         "avg_frame_rate": "25/1", "sample_aspect_ratio": "1:1"}
AUDIO = {"codec_type": "audio", "codec_name": "aac", "channels": 6, "sample_rate": "48000"}


def test_phone_rotation_is_read_from_the_display_matrix():
    rotated = {**VIDEO, "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]}

    info = parse_probe(payload([rotated, AUDIO]))

    assert info.video.rotation == 90
    assert info.video.display_size == (360, 640)


def test_cover_art_is_not_a_video_stream():
    cover = {**VIDEO, "codec_name": "mjpeg", "disposition": {"attached_pic": 1}}

    info = parse_probe(payload([AUDIO, cover]))

    assert info.video is None and info.audio.channels == 6


def test_audio_only_source_is_refused_for_a_video_preset():
    info = parse_probe(payload([AUDIO]))

    with pytest.raises(InputError, match="no video stream"):
        check_source(info, wants_video=True, wants_audio_only=False)


def test_trim_start_past_the_end_is_refused_with_both_numbers():
    info = parse_probe(payload([VIDEO], duration="10.0"))

    with pytest.raises(InputError, match=r"trim start 12 s is past the end of the 10.0 s source"):
        check_trim_range(info, 12.0, 13.0)
    assert check_trim_range(info, 5.0, 20.0) == 10.0


def test_probe_failures_become_sentences():
    assert "playlists" in explain_probe_failure("[hls @ 0x1] Format not on whitelist 'mov'")
    assert "incomplete" in explain_probe_failure("[mov @ 0x1] moov atom not found")


def test_keyframe_at_or_before_start():
    csv = "0.000000,K__\n0.040000,___\n4.000000,K__\n4.040000,___\n5.280000,___\n"

    assert parse_keyframe(csv, 5.3) == 4.0
    assert parse_keyframe(csv, 4.0) == 4.0


def box(kind: bytes, size: int = 16) -> bytes:
    return struct.pack(">I4s", size, kind) + b"\0" * (size - 8)


def test_faststart_is_moov_before_mdat(tmp_path):
    fast, slow = tmp_path / "fast.mp4", tmp_path / "slow.mp4"
    fast.write_bytes(box(b"ftyp") + box(b"moov") + box(b"mdat"))
    slow.write_bytes(box(b"ftyp") + box(b"mdat") + box(b"moov"))

    assert moov_before_mdat(fast) and not moov_before_mdat(slow)


def test_output_with_wrong_duration_is_not_published(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(box(b"ftyp") + box(b"moov") + box(b"mdat"))
    info = parse_probe(payload([VIDEO, AUDIO], duration="1.5"))

    with pytest.raises(OutputCheckError, match=r"lasts 1\.50 s instead of 4\.00 s"):
        check_output(info, path, 4.0, needs_video=True, needs_audio=True)
    check_output(info, path, 1.55, needs_video=True, needs_audio=True)
