"""Fixtures the GraphQL unit tests share: a fake job service behind the local /graphql endpoint."""

import pytest

from tests.unit.graphql_support import FakeJobService, install_service, local_client


@pytest.fixture
def service(monkeypatch) -> FakeJobService:
    """The fake service the resolver Lambda calls; a test module may override it with seeded jobs."""
    return install_service(monkeypatch)


@pytest.fixture
def client(service):
    """The local gateway app in-process, built after `service` is installed."""
    with local_client() as test_client:
        yield test_client
