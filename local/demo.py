"""`make local`: start the stack, run a real transcode and a real trim of the bundled clip, show them.

Everything goes through the REST API the way a client's app would: a presigned upload, two jobs,
progress polled until each ends, and the outputs downloaded back through their presigned URLs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tqdm import tqdm

from local.stack import Stack
from mpr.settings import LocalStackSettings, Settings

CLIP = Path(__file__).resolve().parent.parent / "media" / "bigbuckbunny.mp4"
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}
JOBS = [
    ("transcode to mp4-480p", {"operation": "transcode", "preset": "mp4-480p"}),
    ("accurate trim 1.0-3.5 s", {"operation": "trim", "trim": {"start": 1.0, "end": 3.5, "mode": "accurate"}}),
]


def upload(api: httpx.Client, path: Path) -> str:
    slot = api.post("/api/uploads", json={"filename": path.name}).raise_for_status().json()
    httpx.put(slot["upload_url"], content=path.read_bytes(), timeout=60).raise_for_status()
    return slot["source"]


def follow(api: httpx.Client, job: dict, label: str) -> tuple[dict, float]:
    started = time.monotonic()
    with tqdm(total=100, desc=label, unit="%", leave=True) as bar:
        while job["status"] not in FINAL:
            time.sleep(0.25)
            job = api.get(f"/api/jobs/{job['id']}").raise_for_status().json()
            bar.update(job["progress"] - bar.n)
    return job, time.monotonic() - started


def check_playable(url: str, ffprobe: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(httpx.get(url, timeout=60).raise_for_status().content)
        handle.flush()
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-show_entries", "stream=codec_name,width,height:format=duration",
             "-of", "compact=p=0:nk=0", handle.name], capture_output=True, text=True, check=False,
        )
    return probe.stdout.strip().replace("\n", "; ") if probe.returncode == 0 else "NOT PLAYABLE"


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end the demo through its `finally`, which stops the stack.

    NOTE: SIGINT is set explicitly because a shell that starts this in the background hands it down
    ignored, and Python then installs no handler of its own.
    """

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main() -> int:
    _stop_on_signals()
    stack = Stack(LocalStackSettings.from_env())
    settings = Settings.from_env(stack.env())
    base = stack.env()["MPR_CALLBACK_URL"]
    failures = 0
    try:
        stack.start()
        print(f"\nMPR is up: REST API at {base}/api  (executor: {settings.executor})\n")
        failures = run_jobs(base, settings)
        print("The stack keeps running: try the API at", base + "/api/docs", "- Ctrl-C stops it.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stack.stop()
    return 1 if failures else 0


def run_jobs(base: str, settings: Settings) -> int:
    failures = 0
    with httpx.Client(base_url=base, timeout=30) as api:
        source = upload(api, CLIP)
        print(f"uploaded {CLIP.name} to {source}")
        for label, body in JOBS:
            job = api.post("/api/jobs/", json={"source": source, **body}).raise_for_status().json()
            job, seconds = follow(api, job, label)
            failures += job["status"] != "COMPLETED"
            print(json.dumps(job, indent=2))
            print(f"{label}: {job['status']} in {seconds:.1f} s")
            if job["output_url"]:
                print(f"output plays: {check_playable(job['output_url'], settings.ffprobe)}\n")
    return failures


if __name__ == "__main__":
    sys.exit(main())
