"""Real jobs through the REST API, a real Celery worker, Redis, the S3 server, moto and FFmpeg.

Every file of media/ behaves as media/README.md says.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.support import (
    MEDIA,
    Api,
    ffprobe,
    gray_frame,
    mean_abs_diff,
    stream,
    top_level_boxes,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(local_stack, stack_settings) -> Api:
    return Api(local_stack.env()["MPR_CALLBACK_URL"], stack_settings)


def transcode(api: Api, name: str, preset: str = "mp4-480p", key_name: str | None = None) -> dict:
    return api.run({"source": api.upload(name, key_name), "operation": "transcode", "preset": preset})


def assert_playable_h264(api: Api, job: dict, tmp_path, width: int, height: int, duration: float,
                         audio: bool = True) -> dict:
    assert job["status"] == "COMPLETED", job
    path = api.download(job, tmp_path)
    info = ffprobe(api.settings, path)
    video = stream(info, "video")
    assert (video["codec_name"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert (video["width"], video["height"]) == (width, height)
    assert not any("rotation" in s for s in video.get("side_data_list", []))
    assert abs(float(info["format"]["duration"]) - duration) <= 0.1
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    if audio:
        sound = stream(info, "audio")
        assert (sound["codec_name"], sound["channels"]) == ("aac", 2)
    else:
        assert stream(info, "audio") is None
    assert job["result"]["width"] == width and job["result"]["height"] == height
    assert job["result"]["size"] == path.stat().st_size
    return info


def test_real_clip_transcodes_to_480p(api, tmp_path):
    # Given the 1280x720 5.1 Big Buck Bunny clip / When transcoded to mp4-480p
    job = transcode(api, "bigbuckbunny.mp4")

    # Then a faststart H.264 854x480 file with stereo AAC of the same length comes out
    assert_playable_h264(api, job, tmp_path, 854, 480, 5.31)
    assert job["progress"] == 100 and job["started_at"] and job["finished_at"]


def test_real_clip_accurate_trim_lasts_what_was_asked(api, tmp_path):
    source = api.upload("bigbuckbunny.mp4")

    job = api.run({"source": source, "operation": "trim", "trim": {"start": 1.0, "end": 3.5}})

    assert_playable_h264(api, job, tmp_path, 1280, 720, 2.5)
    assert job["result"]["actual_start"] == 1.0


def test_control_clip_succeeds(api, tmp_path):
    assert_playable_h264(api, transcode(api, "normal_h264_aac.mp4"), tmp_path, 640, 360, 4.0)


def test_odd_sized_mpeg4_comes_out_with_even_dimensions(api, tmp_path):
    assert_playable_h264(api, transcode(api, "odd_641x361_mpeg4.mp4", "mp4-720p"), tmp_path, 640, 360, 4.0)


def test_phone_rotation_is_applied_exactly_once(api, tmp_path):
    assert_playable_h264(api, transcode(api, "rotated_90.mp4"), tmp_path, 360, 640, 4.0)


def test_video_without_audio_succeeds_with_video_only(api, tmp_path):
    job = transcode(api, "video_only_no_audio.mp4")

    assert_playable_h264(api, job, tmp_path, 640, 360, 4.0, audio=False)


def test_index_at_end_source_gets_index_first_output(api, tmp_path):
    assert_playable_h264(api, transcode(api, "moov_at_end.mp4"), tmp_path, 640, 360, 4.0)


def test_audio_only_to_video_preset_fails_by_probing_not_by_name(api):
    # Given an audio-only file named like a video
    job = transcode(api, "audio_only.m4a", key_name="looks_like_video.mp4")

    assert job["status"] == "FAILED"
    assert "no video stream" in job["error"]
    assert not api.object_exists(job["output"])


def test_audio_only_to_m4a_succeeds(api, tmp_path):
    job = transcode(api, "audio_only.m4a", "audio-m4a")

    assert job["status"] == "COMPLETED", job
    info = ffprobe(api.settings, api.download(job, tmp_path))
    assert stream(info, "video") is None and stream(info, "audio")["codec_name"] == "aac"
    assert job["output"].endswith(".m4a")


def test_empty_upload_fails_fast_before_ffmpeg(api):
    job = transcode(api, "zero_bytes.mp4")

    assert job["status"] == "FAILED"
    assert "empty" in job["error"]
    assert job["progress"] == 0  # never got as far as probing
    assert not api.object_exists(job["output"])


def test_truncated_upload_fails_with_a_reason_and_no_output(api):
    job = transcode(api, "truncated_half_moov_missing.mp4")

    assert job["status"] == "FAILED"
    assert "incomplete" in job["error"]
    assert not api.object_exists(job["output"])


def test_playlist_is_refused_and_reads_no_local_file(api):
    job = transcode(api, "hls_local_file_read.m3u8", key_name="innocent.mp4")

    assert job["status"] == "FAILED"
    assert "not a supported media file" in job["error"]
    assert not api.object_exists(job["output"])
    with open("/etc/hostname") as handle:
        secret = handle.read().strip()
    assert secret not in job["error"]


def test_long_gop_accurate_trim_starts_on_the_asked_frame(api, tmp_path):
    # Given 10 s with keyframes only at 0, 4 and 8 s and a clock burnt in
    source = api.upload("long_gop_kf_0_4_8.mp4")

    # When trimmed accurately from 5.3 to 7.3 s
    job = api.run({"source": source, "operation": "trim", "trim": {"start": 5.3, "end": 7.3, "mode": "accurate"}})

    # Then 2.0 ± 0.05 s come out, and the first picture is the one at 5.3 s, not the keyframe at 4 s
    assert job["status"] == "COMPLETED", job
    output = api.download(job, tmp_path)
    assert abs(float(ffprobe(api.settings, output)["format"]["duration"]) - 2.0) <= 0.05
    original = MEDIA / "long_gop_kf_0_4_8.mp4"
    first = gray_frame(api.settings, output, 0.0)
    at_start = gray_frame(api.settings, original, 5.3)
    at_keyframe = gray_frame(api.settings, original, 4.0)
    assert mean_abs_diff(first, at_start) < mean_abs_diff(first, at_keyframe) / 4
    second = gray_frame(api.settings, output, 0.5)
    assert mean_abs_diff(first, second) > 0  # the clock runs: no frozen start


def test_long_gop_fast_trim_reports_the_keyframe_it_started_at(api):
    source = api.upload("long_gop_kf_0_4_8.mp4")

    job = api.run({"source": source, "operation": "trim", "trim": {"start": 5.3, "end": 7.3, "mode": "fast"}})

    assert job["status"] == "COMPLETED", job
    assert job["result"]["actual_start"] == 4.0
    assert job["result"]["requested_start"] == 5.3
    assert abs(job["result"]["actual_end"] - (4.0 + job["result"]["duration"])) < 0.002
    assert abs(job["result"]["duration"] - 3.3) <= 0.25


def test_trim_starting_past_the_end_fails_with_both_numbers(api):
    source = api.upload("long_gop_kf_0_4_8.mp4")

    job = api.run({"source": source, "operation": "trim", "trim": {"start": 12.0, "end": 13.0}})

    assert job["status"] == "FAILED"
    assert job["error"] == "trim start 12 s is past the end of the 10.0 s source"


def test_keys_with_spaces_plus_hash_question_and_unicode_round_trip(api, tmp_path):
    job = transcode(api, "normal_h264_aac.mp4", key_name="my clip +#?ünï.mp4")

    assert_playable_h264(api, job, tmp_path, 640, 360, 4.0)
    assert job["output"].endswith("/my clip +#?ünï.mp4")


def test_scratch_space_is_empty_after_jobs_end(api, local_stack):
    # Given jobs that completed and failed in this session (the tests above)
    transcode(api, "zero_bytes.mp4")
    transcode(api, "normal_h264_aac.mp4")

    # Then no job's scratch folder is left behind
    scratch = Path(local_stack.env()["MPR_SCRATCH_DIR"])
    assert [entry.name for entry in scratch.iterdir() if entry.name.startswith("mpr-")] == []
