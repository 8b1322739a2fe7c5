"""GraphQL against the real local stack: every query and mutation over HTTP at /graphql, and live progress
over WebSocket (graphql-transport-ws) while the Celery worker runs FFmpeg on the real clip."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from graphql import build_client_schema, get_introspection_query, lexicographic_sort_schema, print_schema
from websockets.sync.client import connect

from functions.graphql_view import renamed
from local import appsync
from tests.integration.support import FINAL, MEDIA, Api

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB = ("id status operation source preset trim { start end mode } output outputUrl progress attempt executor "
       "error result createdAt startedAt finishedAt updatedAt")
CREATE = ("mutation($input: CreateJobInput!, $key: String) "
          f"{{ createJob(input: $input, idempotencyKey: $key) {{ {JOB} }} }}")
GET = f"query($id: ID!) {{ job(id: $id) {{ {JOB} }} }}"
LIST = ("query($status: JobStatus, $limit: Int, $next: String) "
        "{ jobs(status: $status, limit: $limit, nextToken: $next) { items { id status } nextToken } }")
WATCH = "subscription($id: ID!) { onJobUpdated(id: $id) { id status progress attempt outputUrl } }"
SUBSCRIPTION_TIMEOUT = 120.0


class Graphql:
    """The local /graphql endpoint as a client application sees it."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def run(self, query: str, **variables) -> dict:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        return response.json()

    def data(self, query: str, **variables) -> dict:
        body = self.run(query, **variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def error(self, query: str, **variables) -> dict:
        body = self.run(query, **variables)
        assert len(body.get("errors") or []) == 1, body
        return body["errors"][0]

    def create(self, **job_input) -> dict:
        return self.data(CREATE, input=job_input)["createJob"]

    def wait(self, job_id: str, until=FINAL, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.data(GET, id=job_id)["job"]
            if job["status"] in until:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")

    @property
    def websocket_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/graphql"


@pytest.fixture(scope="module")
def rest(local_stack, stack_settings) -> Api:
    return Api(local_stack.env()["MPR_CALLBACK_URL"], stack_settings)


@pytest.fixture(scope="module")
def graphql(local_stack) -> Graphql:
    return Graphql(local_stack.env()["MPR_CALLBACK_URL"])


@pytest.fixture(scope="module")
def clip(rest) -> str:
    return rest.upload("bigbuckbunny.mp4")


def transcode(source: str, preset: str = "mp4-480p") -> dict:
    return {"source": source, "operation": "transcode", "preset": preset}


# ---- mutations and queries over HTTP


def test_upload_then_transcode_completes_and_matches_rest(graphql, rest):
    # Given a source uploaded to the presigned PUT that createUpload hands out
    upload = graphql.data("mutation { createUpload(filename: \"bunny clip.mp4\") { source uploadUrl expiresIn } }")
    upload = upload["createUpload"]
    httpx.put(upload["uploadUrl"], content=(MEDIA / "bigbuckbunny.mp4").read_bytes(), timeout=60).raise_for_status()

    # When a transcode of it is created and runs
    created = graphql.create(**transcode(upload["source"]))
    done = graphql.wait(created["id"])

    # Then it completes with a downloadable output, and GraphQL shows what REST shows
    assert created["status"] == "PENDING" and upload["expiresIn"] > 0
    assert done["status"] == "COMPLETED" and done["progress"] == 100
    assert json.loads(done["result"])["video_codec"] == "h264"
    assert httpx.get(done["outputUrl"], timeout=60).raise_for_status().content[4:8] == b"ftyp"
    rest_job = renamed(rest.job(done["id"]))
    assert {**done, "outputUrl": None} == {**rest_job, "outputUrl": None, "result": done["result"]}
    assert json.loads(done["result"]) == rest_job["result"]


def test_trim_keeps_its_spec(graphql, clip):
    job = graphql.create(source=clip, operation="trim", trim={"start": 1.0, "end": 2.5, "mode": "fast"})

    assert job["trim"] == {"start": 1.0, "end": 2.5, "mode": "fast"}
    assert graphql.wait(job["id"])["status"] == "COMPLETED"


def test_jobs_lists_newest_first_in_pages(graphql, clip):
    created = [graphql.create(**transcode(clip))["id"] for _ in range(3)]

    first = graphql.data(LIST, limit=2)["jobs"]
    second = graphql.data(LIST, limit=2, next=first["nextToken"])["jobs"]

    listed = [job["id"] for job in first["items"] + second["items"]]
    assert listed[:3] == sorted(created, reverse=True)
    assert first["nextToken"] and len(set(listed)) == len(listed)


def test_jobs_filters_by_status(graphql, rest):
    failed = graphql.create(**transcode(rest.upload("zero_bytes.mp4")))
    graphql.wait(failed["id"])

    items = graphql.data(LIST, status="FAILED", limit=100)["jobs"]["items"]

    assert failed["id"] in [job["id"] for job in items]
    assert {job["status"] for job in items} == {"FAILED"}


def test_cancel_then_cancel_again_is_a_conflict(graphql, clip):
    job = graphql.create(**transcode(clip, "mp4-1080p"))

    cancelled = graphql.data("mutation($id: ID!) { cancelJob(id: $id) { status finishedAt } }", id=job["id"])
    again = graphql.error("mutation($id: ID!) { cancelJob(id: $id) { status } }", id=job["id"])

    assert cancelled["cancelJob"]["status"] == "CANCELLED"
    assert again["errorType"] == "conflict"
    assert again["message"] == f"cannot cancel job {job['id']}: it is CANCELLED"


def test_retry_of_a_failed_job_starts_the_next_attempt(graphql, rest):
    failed = graphql.wait(graphql.create(**transcode(rest.upload("zero_bytes.mp4")))["id"])

    retried = graphql.data("mutation($id: ID!) { retryJob(id: $id) { status attempt error } }", id=failed["id"])

    assert failed["status"] == "FAILED" and failed["error"]
    assert retried["retryJob"] == {"status": "PENDING", "attempt": 2, "error": None}


def test_retry_of_a_completed_job_is_a_conflict(graphql, clip):
    done = graphql.wait(graphql.create(**transcode(clip))["id"])

    error = graphql.error("mutation($id: ID!) { retryJob(id: $id) { id } }", id=done["id"])

    assert error["errorType"] == "conflict"


def test_unknown_job_is_not_found(graphql):
    error = graphql.error(GET, id="01JD3W8Q3N6V9ZC1X4T5B2K7PM")

    assert error == {**error, "errorType": "not_found", "message": "job 01JD3W8Q3N6V9ZC1X4T5B2K7PM does not exist"}


def test_same_idempotency_key_returns_the_same_job(graphql, clip):
    key = str(uuid.uuid4())

    first = graphql.data(CREATE, input=transcode(clip), key=key)["createJob"]
    second = graphql.data(CREATE, input=transcode(clip), key=key)["createJob"]
    other = graphql.error(CREATE, input=transcode(clip, "mp4-720p"), key=key)

    assert first["id"] == second["id"]
    assert other["errorType"] == "validation_error" and "Idempotency-Key" in other["message"]


@pytest.mark.parametrize(("job_input", "message"), [
    ({"operation": "trim", "trim": {"start": 3.0, "end": 1.0}}, "trim.end must be greater than trim.start"),
    ({"operation": "transcode"}, "preset is required when operation is transcode"),
    ({"operation": "transcode", "preset": "mp4-4k"}, "preset"),
    ({"operation": "trim", "trim": {"start": -1.0, "end": 1.0}}, "trim.start"),
])
def test_invalid_input_is_a_validation_error_naming_the_field(graphql, clip, job_input, message):
    error = graphql.error(CREATE, input={"source": clip, **job_input})

    assert error["errorType"] == "validation_error"
    assert error["message"].startswith(message), error["message"]


def test_source_outside_the_media_bucket_names_source(graphql):
    error = graphql.error(CREATE, input=transcode("s3://someone-elses-bucket/clip.mp4"))

    assert error["errorType"] == "validation_error"
    assert error["message"].startswith("source must be in the service's bucket")


def test_source_that_was_never_uploaded_names_source(graphql, stack_settings):
    error = graphql.error(CREATE, input=transcode(f"s3://{stack_settings.media_bucket}/uploads/none/clip.mp4"))

    assert error["errorType"] == "validation_error" and error["message"].startswith("source")


def test_page_size_out_of_range_names_limit(graphql):
    error = graphql.error(LIST, limit=0)

    assert error["errorType"] == "validation_error" and error["message"].startswith("limit")


def test_upload_filename_with_folders_names_filename(graphql):
    error = graphql.error("mutation { createUpload(filename: \"../etc/passwd\") { source } }")

    assert error["errorType"] == "validation_error" and error["message"].startswith("filename")


def test_service_only_publish_is_refused(graphql):
    job = {"id": "x", "status": "COMPLETED", "operation": "trim", "source": "s", "output": "o", "progress": 100,
           "attempt": 1, "executor": "local", "createdAt": "2026-12-04T15:00:00Z", "updatedAt": "2026-12-04T15:00:00Z"}

    error = graphql.error("mutation($job: JobUpdateInput!) { publishJobUpdate(job: $job) { id } }", job=job)

    assert error["errorType"] == "Unauthorized"


# ---- live progress over WebSocket


def events_published(local_stack) -> bool:
    return bool(local_stack.env().get("MPR_EVENTS_URL"))


def subscribe(socket, job_id: str) -> None:
    socket.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(socket.recv(timeout=10)) == {"type": "connection_ack"}
    payload = {"query": WATCH, "variables": {"id": job_id}}
    socket.send(json.dumps({"id": "watch", "type": "subscribe", "payload": payload}))


def messages_until_complete(socket) -> list[dict]:
    received = []
    deadline = time.monotonic() + SUBSCRIPTION_TIMEOUT
    while time.monotonic() < deadline:
        message = json.loads(socket.recv(timeout=deadline - time.monotonic()))
        received.append(message)
        if message["type"] in ("complete", "error"):
            return received
    raise AssertionError(f"no complete within {SUBSCRIPTION_TIMEOUT} s: {received}")


def test_subscription_streams_progress_then_completed_in_order(graphql, clip, local_stack):
    if not events_published(local_stack):
        pytest.skip("the local stack does not set MPR_EVENTS_URL (local/stack.py Stack.env), so nothing is published")
    # Given a client connected over graphql-transport-ws
    with connect(graphql.websocket_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as socket:
        assert socket.subprotocol == "graphql-transport-ws"

        # When it creates a transcode of the real clip and subscribes to it
        job = graphql.create(**transcode(clip, "mp4-720p"))
        subscribe(socket, job["id"])
        received = messages_until_complete(socket)

    # Then it sees the job, progress between 0 and 100 that never goes back, then COMPLETED, then the end
    assert received[-1] == {"id": "watch", "type": "complete"}
    updates = [message["payload"]["data"]["onJobUpdated"] for message in received[:-1]]
    assert all(message["type"] == "next" for message in received[:-1])
    assert {update["id"] for update in updates} == {job["id"]}
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress)
    assert any(0 < value < 100 for value in progress), updates
    assert updates[-1]["status"] == "COMPLETED" and updates[-1]["progress"] == 100
    assert [update["status"] for update in updates].count("COMPLETED") == 1


def test_subscription_to_a_finished_job_sends_its_state_and_completes(graphql, clip, local_stack):
    if not events_published(local_stack):
        pytest.skip("the local stack does not set MPR_EVENTS_URL (local/stack.py Stack.env)")
    done = graphql.wait(graphql.create(**transcode(clip))["id"])

    with connect(graphql.websocket_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as socket:
        subscribe(socket, done["id"])
        received = messages_until_complete(socket)

    assert [message["type"] for message in received] == ["next", "complete"]
    state = received[0]["payload"]["data"]["onJobUpdated"]
    assert state["status"] == "COMPLETED" and state["outputUrl"]


def test_subscription_to_an_unknown_job_is_an_error(graphql, local_stack):
    with connect(graphql.websocket_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as socket:
        subscribe(socket, "01JD3W8Q3N6V9ZC1X4T5B2K7PM")
        received = messages_until_complete(socket)

    assert received[-1]["type"] == "error"
    expected = "not_found" if events_published(local_stack) else "Unavailable"
    assert received[-1]["payload"][0]["errorType"] == expected


# ---- one schema


def test_local_endpoint_serves_exactly_the_schema_file(graphql):
    introspection = graphql.data(get_introspection_query())

    served = print_schema(lexicographic_sort_schema(build_client_schema(introspection)))
    from_file = print_schema(lexicographic_sort_schema(appsync.schema()))

    assert served == from_file
    assert appsync.SCHEMA_FILE == REPO_ROOT / "mpr" / "schema.graphql"


def test_cdk_construct_deploys_the_same_schema_file():
    from stacks import graphql_api

    assert graphql_api.SCHEMA_FILE == appsync.SCHEMA_FILE == REPO_ROOT / "mpr" / "schema.graphql"
