"""The local WebSocket endpoint speaks graphql-transport-ws; onJobUpdated streams one job until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from local import appsync, graphql_server
from mpr.jobs import JobStatus
from tests.unit.graphql_support import FakeJobService, install_service, make_job

PROTOCOL = ["graphql-transport-ws"]
WATCH = "subscription($id: ID!) { onJobUpdated(id: $id) { id status progress attempt } }"


class FakeFeed:
    """Published changes of one job, then silence, as Redis pub/sub would give them."""

    def __init__(self, changes: list[dict], failure: Exception | None = None):
        self._changes = changes
        self._failure = failure
        self.started = self.stopped = False

    async def start(self) -> None:
        if self._failure:
            raise self._failure
        self.started = True

    async def changes(self):
        for change in self._changes:
            yield change
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def service(monkeypatch) -> FakeJobService:
    fake = install_service(monkeypatch)
    fake.jobs["01RUN"] = make_job("01RUN", JobStatus.PROCESSING, progress=10)
    return fake




def running(progress: int, status: JobStatus = JobStatus.PROCESSING, attempt: int = 1) -> dict:
    return make_job("01RUN", status, progress=progress, attempt=attempt).to_api()


def use_feed(monkeypatch, changes: list[dict], failure: Exception | None = None) -> FakeFeed:
    feed = FakeFeed(changes, failure)
    monkeypatch.setattr(graphql_server, "open_feed", lambda job_id: feed)
    return feed


@contextlib.contextmanager
def connected(client):
    with client.websocket_connect("/graphql", subprotocols=PROTOCOL) as session:
        session.send_json({"type": "connection_init", "payload": {}})
        assert session.receive_json() == {"type": "connection_ack"}
        yield session


def subscribe(session, job_id: str, operation_id: str = "1") -> None:
    payload = {"query": WATCH, "variables": {"id": job_id}}
    session.send_json({"id": operation_id, "type": "subscribe", "payload": payload})


def closing_code(session) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        session.receive_json()
    return closed.value.code


def test_handshake_and_ping(client):
    with connected(client) as session:
        session.send_json({"type": "ping"})

        assert session.receive_json() == {"type": "pong"}


def test_subscription_sends_current_state_then_newer_changes_then_completes(client, monkeypatch):
    # Given a job at 10 % whose feed replays an older and a repeated change before real news
    feed = use_feed(monkeypatch, [running(5), running(10), running(40), running(70),
                                  running(100, JobStatus.COMPLETED), running(100, JobStatus.COMPLETED)])
    with connected(client) as session:
        # When a client subscribes to it
        subscribe(session, "01RUN")
        messages = [session.receive_json() for _ in range(5)]

        # Then it gets the state, each newer change in order, and the end of the subscription
        jobs = [message["payload"]["data"]["onJobUpdated"] for message in messages[:4]]
        assert [(job["status"], job["progress"]) for job in jobs] == [
            ("PROCESSING", 10), ("PROCESSING", 40), ("PROCESSING", 70), ("COMPLETED", 100)]
        assert all(message["type"] == "next" and message["id"] == "1" for message in messages[:4])
        assert messages[4] == {"id": "1", "type": "complete"}
        assert feed.started and feed.stopped


def test_subscription_to_a_finished_job_sends_it_once_and_completes(client, monkeypatch):
    use_feed(monkeypatch, [])
    with connected(client) as session:
        subscribe(session, "01DONE")

        assert session.receive_json()["payload"]["data"]["onJobUpdated"]["status"] == "COMPLETED"
        assert session.receive_json() == {"id": "1", "type": "complete"}


def test_a_final_state_is_news_even_at_lower_progress(client, service, monkeypatch):
    service.jobs["01RUN"] = dataclasses.replace(service.jobs["01RUN"], progress=90)
    use_feed(monkeypatch, [running(0, JobStatus.FAILED)])
    with connected(client) as session:
        subscribe(session, "01RUN")
        first, second = session.receive_json(), session.receive_json()

        assert first["payload"]["data"]["onJobUpdated"]["progress"] == 90
        assert second["payload"]["data"]["onJobUpdated"]["status"] == "FAILED"
        assert session.receive_json() == {"id": "1", "type": "complete"}


def test_changes_of_an_earlier_attempt_are_dropped_after_a_retry(client, service, monkeypatch):
    # Given a retried job (attempt 2, PENDING) and a late change from attempt 1
    service.jobs["01RUN"] = make_job("01RUN", JobStatus.PENDING, attempt=2)
    use_feed(monkeypatch, [running(50), running(20, attempt=2), running(100, JobStatus.COMPLETED, attempt=2)])
    with connected(client) as session:
        # When a client subscribes
        subscribe(session, "01RUN")
        jobs = [session.receive_json()["payload"]["data"]["onJobUpdated"] for _ in range(3)]

        # Then only attempt 2 is reported
        assert [(job["attempt"], job["status"], job["progress"]) for job in jobs] == [
            (2, "PENDING", 0), (2, "PROCESSING", 20), (2, "COMPLETED", 100)]


def test_subscription_to_an_unknown_job_is_an_error_message(client, monkeypatch):
    feed = use_feed(monkeypatch, [])
    with connected(client) as session:
        subscribe(session, "01NOPE")
        message = session.receive_json()

        assert message["type"] == "error" and message["id"] == "1"
        assert message["payload"][0]["errorType"] == "not_found"
        assert feed.stopped


def test_feed_that_cannot_start_is_an_unavailable_error_and_is_closed(client, monkeypatch):
    down = appsync.appsync_error(graphql_server.UNAVAILABLE, "live updates are unavailable: refused")
    feed = use_feed(monkeypatch, [], failure=down)
    with connected(client) as session:
        subscribe(session, "01RUN")
        message = session.receive_json()

        assert message["type"] == "error"
        assert message["payload"][0]["errorType"] == "Unavailable"
        assert feed.stopped


def test_client_complete_stops_the_feed(client, monkeypatch):
    feed = use_feed(monkeypatch, [])
    with connected(client) as session:
        subscribe(session, "01RUN")
        session.receive_json()

        session.send_json({"id": "1", "type": "complete"})

        deadline = time.monotonic() + 5
        while not feed.stopped and time.monotonic() < deadline:
            time.sleep(0.01)
        assert feed.stopped


def test_query_over_the_socket_is_one_next_then_complete(client):
    with connected(client) as session:
        query = "{ job(id: \"01DONE\") { status } }"
        session.send_json({"id": "q", "type": "subscribe", "payload": {"query": query}})

        answer = {"data": {"job": {"status": "COMPLETED"}}}
        assert session.receive_json() == {"id": "q", "type": "next", "payload": answer}
        assert session.receive_json() == {"id": "q", "type": "complete"}


def test_subscribe_before_init_closes_4401(client):
    with client.websocket_connect("/graphql", subprotocols=PROTOCOL) as session:
        subscribe(session, "01RUN")
        assert closing_code(session) == 4401


def test_second_init_closes_4429(client):
    with connected(client) as session:
        session.send_json({"type": "connection_init"})

        assert closing_code(session) == 4429


def test_duplicate_operation_id_closes_4409(client, monkeypatch):
    use_feed(monkeypatch, [])
    with connected(client) as session:
        subscribe(session, "01RUN")
        session.receive_json()

        subscribe(session, "01RUN")

        assert closing_code(session) == 4409


def test_unknown_message_closes_4400(client):
    with connected(client) as session:
        session.send_json({"type": "start", "id": "1"})

        assert closing_code(session) == 4400


def test_missing_subprotocol_closes_4406(client):
    with client.websocket_connect("/graphql") as session:
        assert closing_code(session) == 4406


def test_no_init_in_time_closes_4408(client, monkeypatch):
    monkeypatch.setattr(graphql_server, "INIT_TIMEOUT_SECONDS", 0.05)

    with client.websocket_connect("/graphql", subprotocols=PROTOCOL) as session:
        assert closing_code(session) == 4408


def test_a_request_of_hundreds_of_aliases_is_refused_before_it_runs():
    # Given one request asking for the job list 400 times under aliases
    query = "{ " + " ".join(f"a{i}: jobs(limit: 100) {{ nextToken }}" for i in range(400)) + " }"

    # When it is prepared / Then it is refused without a single handler call
    prepared = graphql_server.prepare({"query": query})

    assert isinstance(prepared, list) and "at most 10 root fields" in prepared[0].message


def test_an_oversized_query_is_refused():
    prepared = graphql_server.prepare({"query": "{ jobs { nextToken } }" + " " * 20_000})

    assert isinstance(prepared, list) and "at most" in prepared[0].message
