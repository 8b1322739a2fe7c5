"""Benchmarks, each printed as a ratio measured side by side in one run (the machine is noisy).

1. job overhead: wall time of a full job through the local stack (REST → Celery → S3 → FFmpeg → S3 →
   table) against the same FFmpeg argv run bare on a local file; median of N of each, interleaved.
2. transfer memory: peak RSS growth of a process streaming a large object from S3 to disk and back,
   against the object's size. Streaming means this stays far below 1.

python -m bench.run [--rounds N] [--size-mb M]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from local.stack import Stack, free_ports
from mpr.ffmpeg import encode_argv
from mpr.presets import PRESETS
from mpr.probe import probe
from mpr.settings import LocalStackSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "media" / "bigbuckbunny.mp4"


def bare_ffmpeg_seconds(settings: Settings, folder: Path) -> float:
    info = probe(settings.ffprobe, CLIP)
    argv = encode_argv(settings.ffmpeg, CLIP, folder / "bare.mp4", PRESETS["mp4-480p"], info)
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def job_seconds(api: httpx.Client, source: str) -> float:
    started = time.monotonic()
    job = api.post("/api/jobs/", json={"source": source, "operation": "transcode", "preset": "mp4-480p"}).json()
    while job["status"] not in ("COMPLETED", "FAILED", "CANCELLED"):
        time.sleep(0.05)
        job = api.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "COMPLETED", job
    return time.monotonic() - started


def overhead(stack: Stack, settings: Settings, rounds: int) -> None:
    source_key = "uploads/bench/bigbuckbunny.mp4"
    from mpr.storage import s3_client

    s3_client(settings).upload_file(str(CLIP), settings.media_bucket, source_key)
    source = f"s3://{settings.media_bucket}/{source_key}"
    bare, full = [], []
    with tempfile.TemporaryDirectory() as folder, httpx.Client(base_url=stack.env()["MPR_CALLBACK_URL"],
                                                               timeout=60) as api:
        job_seconds(api, source)  # warm the worker
        for _ in range(rounds):
            bare.append(bare_ffmpeg_seconds(settings, Path(folder)))
            full.append(job_seconds(api, source))
    print(f"job overhead  bare ffmpeg median {statistics.median(bare):.2f} s, full job median "
          f"{statistics.median(full):.2f} s, ratio job/ffmpeg {statistics.median(full) / statistics.median(bare):.2f}"
          f"  (rounds={rounds}, 5.3 s 720p clip to mp4-480p)")


TRANSFER_PROBE = """
import json, os, resource, sys, tempfile
from pathlib import Path
from mpr.settings import Settings
from mpr.specs import S3Location
from mpr.storage import MediaStorage
settings = Settings.from_env(json.loads(sys.argv[1]))
storage = MediaStorage(settings)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "big"
    storage.download(S3Location(settings.media_bucket, sys.argv[2]), path)
    storage.upload(path, S3Location(settings.media_bucket, sys.argv[2] + ".copy"), "video/mp4")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "peak_kib": after}))
"""


def transfer_memory(stack: Stack, settings: Settings, size_mb: int) -> None:
    from mpr.storage import s3_client

    key = "uploads/bench/big.bin"
    with tempfile.NamedTemporaryFile() as handle:
        chunk = bytes(range(256)) * 4096
        for _ in range(size_mb):
            handle.write(chunk)
        handle.flush()
        s3_client(settings).upload_file(handle.name, settings.media_bucket, key)
    env = stack.child_env()
    out = subprocess.run([sys.executable, "-c", TRANSFER_PROBE, json.dumps(stack.env()), key], env=env,
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    measured = json.loads(out.strip().splitlines()[-1])
    growth_mb, peak_mb = measured["growth_kib"] / 1024, measured["peak_kib"] / 1024
    print(f"transfer memory  {size_mb} MiB down and up again: peak RSS {peak_mb:.0f} MiB (growth during the "
          f"transfers {growth_mb:.1f} MiB), ratio peak/size {peak_mb / size_mb:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=512)
    args = parser.parse_args()
    redis, s3, moto, gateway = free_ports(4)
    with tempfile.TemporaryDirectory(prefix="mpr-bench-") as state:
        config = dataclasses.replace(LocalStackSettings.from_env(), state_dir=state, redis_port=redis,
                                     s3_port=s3, moto_port=moto, gateway_port=gateway, external_s3_endpoint=None,
                                     worker_concurrency=1)
        stack = Stack(config)
        # This process talks to the stack's S3 and DynamoDB too, with the stack's key pair.
        os.environ.update({k: v for k, v in stack.child_env().items() if k.startswith("AWS_") or "proxy" in k.lower()})
        try:
            stack.start()
            settings = Settings.from_env(stack.env())
            overhead(stack, settings, args.rounds)
            transfer_memory(stack, settings, args.size_mb)
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
