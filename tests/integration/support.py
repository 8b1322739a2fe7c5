"""Plain helpers for the integration tests: a REST client, uploads, waiting, and ffprobe checks."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
from ulid import ULID

from mpr.jobs import Job, JobStatus
from mpr.settings import Settings
from mpr.storage import s3_client
from mpr.store import JobStore

MEDIA = Path(__file__).resolve().parents[2] / "media"
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class Api:
    """The REST API as a client application sees it, over HTTP."""

    def __init__(self, base_url: str, settings: Settings):
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.settings = settings
        self.s3 = s3_client(settings)

    def upload(self, name: str, key_name: str | None = None) -> str:
        key = f"uploads/{ULID()}/{key_name or name}"
        self.s3.upload_file(str(MEDIA / name), self.settings.media_bucket, key)
        return f"s3://{self.settings.media_bucket}/{key}"

    def create(self, body: dict, **headers) -> httpx.Response:
        return self.http.post("/api/jobs/", json=body, headers=headers)

    def submit(self, body: dict) -> dict:
        response = self.create(body)
        assert response.status_code == 201, response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        return self.http.get(f"/api/jobs/{job_id}").raise_for_status().json()

    def wait(self, job_id: str, until=FINAL, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in until:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")

    def run(self, body: dict, timeout: float = 120.0) -> dict:
        return self.wait(self.submit(body)["id"], timeout=timeout)

    def object_exists(self, uri: str) -> bool:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return self.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0

    def download(self, job: dict, folder: Path) -> Path:
        path = folder / f"{job['id']}{Path(job['output']).suffix}"
        path.write_bytes(httpx.get(job["output_url"], timeout=60).raise_for_status().content)
        return path


def ffprobe(settings: Settings, path: Path) -> dict:
    out = subprocess.run(
        [settings.ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True, check=True,
    ).stdout
    return json.loads(out)


def stream(info: dict, kind: str) -> dict | None:
    return next((s for s in info["streams"] if s["codec_type"] == kind), None)


def top_level_boxes(path: Path) -> list[str]:
    names, data = [], path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        names.append(data[offset + 4:offset + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        if size < 8:
            break
        offset += size
    return names


def gray_frame(settings: Settings, path: Path, seconds: float, accurate_input_seek: bool = True) -> bytes:
    """One frame at `seconds`, as 64x36 grayscale bytes, for comparing pictures."""
    out = subprocess.run(
        [settings.ffmpeg, "-v", "error", "-ss", f"{seconds:.3f}", "-i", str(path), "-frames:v", "1",
         "-vf", "scale=64:36,format=gray", "-f", "rawvideo", "-"],
        capture_output=True, check=True,
    ).stdout
    assert len(out) == 64 * 36
    return out


def mean_abs_diff(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def ffmpeg_pids_for(job_id: str) -> list[int]:
    """Processes whose command line names this job's scratch folder."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"mpr-{job_id}-".encode() in cmdline and b"ffmpeg" in cmdline:
                pids.append(int(entry.name))
    return pids


def stored_job(store: JobStore, settings, status=JobStatus.PENDING) -> Job:
    """A job written straight to the table, with no worker told about it."""
    job_id = str(ULID())
    job = Job(id=job_id, status=JobStatus.PENDING, operation="transcode", preset="mp4-480p",
              source=f"s3://{settings.media_bucket}/uploads/none.mp4",
              output=f"s3://{settings.media_bucket}/outputs/{job_id}/none.mp4")
    store.create(job)
    # As if handed to an executor that has not picked it up yet: the reaper leaves it alone.
    store.mark_dispatched(job_id, 1)
    if status is JobStatus.PROCESSING:
        store.claim(job_id, 1)
    return store.get(job_id)
