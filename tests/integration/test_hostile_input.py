"""What a careless or hostile client sends, and the answers it must get (found by trying to break it)."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from ulid import ULID

from tests.integration.support import Api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(local_stack, stack_settings) -> Api:
    return Api(local_stack.env()["MPR_CALLBACK_URL"], stack_settings)


def post_raw(api: Api, body: bytes, content_type: str = "application/json"):
    return api.http.post("/api/jobs/", content=body, headers={"Content-Type": content_type})


def make_media(api: Api, folder, name: str, *args: str) -> str:
    """Encode a small clip with the project's FFmpeg and upload it; returns its s3:// source."""
    path = folder / name
    subprocess.run([api.settings.ffmpeg, "-v", "error", "-y", *args, str(path)], check=True)
    key = f"uploads/{ULID()}/{name}"
    api.s3.upload_file(str(path), api.settings.media_bucket, key)
    return f"s3://{api.settings.media_bucket}/{key}"


def test_output_cannot_overwrite_an_upload_or_the_source(api):
    # Given another user's upload
    victim = api.upload("normal_h264_aac.mp4")
    mine = api.upload("normal_h264_aac.mp4")

    # When a job names it, or its own source, as its output
    onto_victim = api.create({"source": mine, "operation": "transcode", "preset": "mp4-480p", "output": victim})
    onto_source = api.create({"source": mine, "operation": "transcode", "preset": "mp4-480p", "output": mine})

    # Then both are refused naming output, and the upload is untouched
    for response in (onto_victim, onto_source):
        assert response.status_code == 422 and "output must be under" in response.json()["error"]["message"]
    assert api.object_exists(victim)


@pytest.mark.parametrize("key", ["outputs/../x.mp4", "outputs/./y.mp4", "outputs//z.mp4", "/lead.mp4"])
def test_dot_and_empty_path_segments_are_refused_up_front(api, key):
    source = api.upload("normal_h264_aac.mp4")
    output = f"s3://{api.settings.media_bucket}/{key}"

    response = api.create({"source": source, "operation": "transcode", "preset": "mp4-480p", "output": output})

    assert response.status_code == 422 and "output" in response.json()["error"]["message"]


def test_unreadable_bodies_get_json_errors_not_a_crash(api):
    cases = {
        b"\xff\xfe{not utf-8": 400,
        b"[" * 50_000 + b"]" * 50_000: 413,
        b'{"source": "' + b"a" * 70_000 + b'"}': 413,
        json.dumps({"filename": "\ud800.mp4"}).encode(): None,  # escaped surrogate: valid JSON text
    }
    for body, status in cases.items():
        response = post_raw(api, body)
        assert response.headers["content-type"].startswith("application/json"), response.text
        if status:
            assert response.status_code == status, (body[:20], response.text)
        assert response.status_code < 500
    nested = post_raw(api, b"[" * 5_000 + b"]" * 5_000)
    assert nested.status_code in (400, 422) and "error" in nested.json()


def test_forged_page_tokens_are_422(api):
    for key in ({"id": "x"}, {"id": 1}, {"id": {"S": "x"}, "evil": {"S": "y"}}):
        token = base64.urlsafe_b64encode(json.dumps(key).encode()).decode()
        response = api.http.get("/api/jobs", params={"next_token": token})
        assert response.status_code == 422, (key, response.text)
        assert "next_token" in response.json()["error"]["message"]


def test_messages_name_the_field_for_nan_and_a_null_body(api):
    nan = post_raw(api, b'{"source": "s3://mpr-media/x.mp4", "operation": "trim", "trim": {"start": NaN, "end": 2}}')
    null = post_raw(api, b"null")

    assert nan.status_code == 422 and "trim.start" in nan.json()["error"]["message"]
    assert "finite" in nan.json()["error"]["message"]
    assert null.status_code == 422 and "body" in null.json()["error"]["message"]


@pytest.mark.parametrize("filename,words", [
    ("é" * 200 + ".mp4", "bytes"),
    ("evil\u202egpj.mp4", "control"),
    ("bell\x7f.mp4", "control"),
])
def test_upload_names_that_cannot_become_keys_are_refused(api, filename, words):
    response = api.http.post("/api/uploads", json={"filename": filename})

    assert response.status_code == 422 and words in response.json()["error"]["message"]


def test_upload_request_with_unknown_fields_is_refused(api):
    response = api.http.post("/api/uploads", json={"filename": "a.mp4", "bucket": "other"})

    assert response.status_code == 422 and "bucket" in response.json()["error"]["message"]


def test_ten_bit_fast_trim_is_refused_before_any_work(api, tmp_path):
    source = make_media(api, tmp_path, "ten_bit.mp4", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3",
                        "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-preset", "ultrafast")

    job = api.run({"source": source, "operation": "trim", "trim": {"start": 0.5, "end": 2.0, "mode": "fast"}})

    assert job["status"] == "FAILED"
    assert "yuv420p10le" in job["error"] and "use trim mode accurate" in job["error"]


def test_fast_trim_of_a_phone_video_keeps_its_single_rotation(api, tmp_path):
    source = api.upload("rotated_90.mp4")

    job = api.run({"source": source, "operation": "trim", "trim": {"start": 0.5, "end": 2.0, "mode": "fast"}})

    assert job["status"] == "COMPLETED", job
    assert (job["result"]["width"], job["result"]["height"]) == (360, 640)


def test_two_frames_claiming_ten_hours_do_not_become_millions_of_frames(api, tmp_path):
    # Given a tiny file whose second frame is stamped 10 hours after its first
    source = make_media(
        api, tmp_path, "sparse.mkv", "-f", "lavfi", "-i", "color=c=red:size=320x240:rate=1:duration=2",
        "-vf", "setpts='if(eq(N,0),0,36000/TB)'", "-fps_mode", "passthrough", "-c:v", "libx264",
        "-preset", "ultrafast",
    )

    # When it is transcoded / Then the job ends in seconds, not hours
    job = api.run({"source": source, "operation": "transcode", "preset": "mp4-480p"}, timeout=60)

    assert job["status"] in ("COMPLETED", "FAILED"), job
