"""The laptop stack for the integration tests: real Redis, SeaweedFS, moto, worker and gateway.

One stack per test session, on free ports of 127.0.0.1 and in a temporary state directory, stopped
at the end of the session even when a test or the start itself fails. `servers_stack` is the three
servers with the tables and the bucket made; `local_stack` adds the Celery worker and the gateway.
"""

from __future__ import annotations

import dataclasses
from importlib import util as importlib_util

import pytest

from local.stack import Stack, free_ports
from mpr.settings import LocalStackSettings, Settings

# Variables the test process itself needs to reach the stack with boto3 and pynamodb: SeaweedFS
# checks signatures against the stack's key pair, and 127.0.0.1 must bypass any HTTP proxy.
CLIENT_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
                    "NO_PROXY", "no_proxy")


def module_exists(name: str) -> bool:
    try:
        return importlib_util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


# The flag for a servers-only stack: False while local/worker.py or local/gateway.py is missing.
APPS_PRESENT = module_exists("local.worker") and module_exists("local.gateway")


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory) -> LocalStackSettings:
    """Where the session's stack lives; stopping it here covers every part any fixture started."""
    redis, s3, moto, gateway = free_ports(4)
    config = dataclasses.replace(
        LocalStackSettings.from_env(), state_dir=str(tmp_path_factory.mktemp("mpr-stack")),
        redis_port=redis, s3_port=s3, moto_port=moto, gateway_port=gateway, external_s3_endpoint=None,
    )
    yield config
    Stack(config).stop()


@pytest.fixture(scope="session")
def _client_environment(stack_config):
    """Give this process the stack's key pair and proxy bypass, as the stack's children get them."""
    stack = Stack(stack_config)
    child = stack.child_env()
    with pytest.MonkeyPatch.context() as patch:
        for name in CLIENT_VARIABLES:
            patch.setenv(name, child[name])
        if "AWS_SESSION_TOKEN" not in child:
            patch.delenv("AWS_SESSION_TOKEN", raising=False)
        yield


@pytest.fixture(scope="session")
def servers_stack(stack_config, _client_environment) -> Stack:
    """Redis, S3 and moto answering, the job tables and the media bucket made."""
    stack = Stack(stack_config, with_worker=False, with_gateway=False)
    stack.start()
    return stack


@pytest.fixture(scope="session")
def local_stack(stack_config, servers_stack) -> Stack:
    """All five parts answering: the servers, the Celery worker and the HTTP gateway."""
    if not APPS_PRESENT:
        pytest.skip("local/worker.py or local/gateway.py does not exist yet")
    stack = Stack(stack_config)
    stack.start()
    return stack


@pytest.fixture(scope="session")
def stack_settings(servers_stack) -> Settings:
    return Settings.from_env(servers_stack.env())
