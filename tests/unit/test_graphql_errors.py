"""Errors: the Lambda answers domain errors, and AppSync (or the local endpoint) shows them as GraphQL errors
with the error's code as errorType and its message as it is."""

from __future__ import annotations

import pytest

import functions.graphql
from local import appsync
from local.gateway import LocalContext
from mpr.errors import ConflictError, DispatchError, MprError, NotFoundError, ValidationError
from tests.unit.graphql_support import post

CREATE = "mutation($input: CreateJobInput!) { createJob(input: $input) { id status } }"
SOURCE = "s3://mpr-media/uploads/a/clip.mp4"




def lambda_event(parent: str, field: str, arguments: dict) -> dict:
    return {"arguments": arguments, "identity": None, "source": None, "prev": None, "stash": {},
            "request": {"headers": {}, "domainName": None},
            "info": {"fieldName": field, "parentTypeName": parent, "variables": {}, "selectionSetList": ["id"],
                     "selectionSetGraphQL": "{ id }"}}


@pytest.mark.parametrize("error", [
    ValidationError("trim", "trim.end must be greater than trim.start"),
    NotFoundError("job 01X does not exist"),
    ConflictError("cannot retry job 01X: it is COMPLETED"),
    DispatchError("the pipeline is unavailable"),
])
def test_each_domain_error_is_answered_with_its_code_and_message(error: MprError):
    assert functions.graphql.error_answer(error) == {"__error": {"type": error.code, "message": error.message}}


def test_lambda_answers_a_reversed_trim_with_a_validation_error_naming_the_field(service):
    # Given a trim whose end comes before its start
    arguments = {"input": {"source": SOURCE, "operation": "trim", "trim": {"start": 3.0, "end": 1.0}}}

    # When AppSync calls the Lambda for createJob
    answer = functions.graphql.handler(lambda_event("Mutation", "createJob", arguments), LocalContext())

    # Then the answer is the error, and nothing was created
    assert answer == {"__error": {"type": "validation_error", "message": "trim.end must be greater than trim.start"}}
    assert not [call for call in service.calls if call[0] == "create"]


def test_lambda_answers_an_unknown_job_with_not_found(service):
    answer = functions.graphql.handler(lambda_event("Query", "job", {"id": "01NOPE"}), LocalContext())

    assert answer == {"__error": {"type": "not_found", "message": "job 01NOPE does not exist"}}


def test_local_error_has_appsync_shape_with_error_type_and_message_as_is(client):
    body = post(client, CREATE, input={"source": SOURCE, "operation": "trim", "trim": {"start": 3, "end": 1}})

    assert body["data"] == {"createJob": None}
    (error,) = body["errors"]
    assert error["errorType"] == "validation_error"
    assert error["message"] == "trim.end must be greater than trim.start"
    assert error["path"] == ["createJob"] and error["errorInfo"] is None


@pytest.mark.parametrize(("bad_input", "field"), [
    ({"source": SOURCE, "operation": "transcode"}, "preset"),
    ({"source": "https://example.com/a.mp4", "operation": "transcode", "preset": "mp4-480p"}, "source"),
    ({"source": SOURCE, "operation": "transcode", "preset": "audio-m4a", "output": "s3://mpr-media/a.mp4"}, "output"),
    ({"source": SOURCE, "operation": "transcode", "preset": "mp4-4k"}, "preset"),
    ({"source": SOURCE, "operation": "trim", "trim": {"start": -1, "end": 2}}, "trim.start"),
    ({"source": SOURCE, "operation": "trim", "trim": {"start": 0, "end": 2, "mode": "slow"}}, "trim.mode"),
])
def test_invalid_create_input_is_a_validation_error_naming_the_field(client, service, bad_input, field):
    service.jobs.clear()

    body = post(client, CREATE, input=bad_input)

    (error,) = body["errors"]
    assert error["errorType"] == "validation_error"
    assert error["message"].startswith(field), error["message"]


def test_conflict_keeps_its_code(client):
    body = post(client, "mutation { retryJob(id: \"01DONE\") { id } }")

    assert body["errors"][0]["errorType"] == "conflict"
    assert body["errors"][0]["message"] == "cannot retry job 01DONE: it is COMPLETED"


def test_raised_exception_is_lambda_unhandled_with_its_message(client, monkeypatch):
    def broken(job_id):
        raise RuntimeError("table is unreachable")

    monkeypatch.setattr(functions.graphql.service(), "get", broken)

    body = post(client, "{ job(id: \"01DONE\") { id } }")

    assert body["errors"][0]["errorType"] == appsync.UNHANDLED
    assert body["errors"][0]["message"] == "table is unreachable"


def test_iam_only_publish_is_refused_to_the_api_key_caller(client, service):
    job = {"id": "01DONE", "status": "COMPLETED", "operation": "trim", "source": SOURCE, "output": SOURCE,
           "progress": 100, "attempt": 1, "executor": "local", "createdAt": "2026-12-04T15:00:00Z",
           "updatedAt": "2026-12-04T15:00:00Z"}

    body = post(client, "mutation($job: JobUpdateInput!) { publishJobUpdate(job: $job) { id } }", job=job)

    assert body["errors"][0]["errorType"] == "Unauthorized"
    assert body["errors"][0]["message"] == "Not Authorized to access publishJobUpdate on type Mutation"


def test_document_that_does_not_match_the_schema_is_a_validation_error(client):
    body = post(client, "{ job(id: \"01DONE\") { id colour } }")

    assert body["data"] is None
    assert body["errors"][0]["errorType"] == appsync.INVALID_REQUEST
    assert "colour" in body["errors"][0]["message"]


def test_body_that_is_not_a_graphql_request_is_refused_with_400(client):
    response = client.post("/graphql", content=b"query { jobs }", headers={"content-type": "text/plain"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["errorType"] == appsync.INVALID_REQUEST


def test_subscription_over_http_points_to_the_websocket(client):
    body = post(client, "subscription { onJobUpdated(id: \"01DONE\") { id } }")

    assert "WebSocket" in body["errors"][0]["message"]
