"""The local endpoint sends the GraphQL Lambda the events AppSync sends a direct Lambda resolver."""

from __future__ import annotations

import pytest
from graphql import parse

import functions.graphql
from local import appsync
from tests.unit.graphql_support import post

JOB_QUERY = """
query One($id: ID!) {
  job(id: $id) { id status trim { start end } ...Timing __typename }
}
fragment Timing on Job { createdAt updatedAt }
"""




@pytest.fixture
def events(monkeypatch) -> list[dict]:
    """The events the handler receives, recorded before the real handler answers them."""
    seen: list[dict] = []
    real = functions.graphql.handler

    def recording(event, context):
        seen.append(event)
        return real(event, context)

    monkeypatch.setattr(functions.graphql, "handler", recording)
    return seen


def test_query_field_becomes_one_event_with_arguments_and_info(client, events):
    # Given a query for one job, with a fragment and a variable
    # When the local endpoint runs it
    post(client, JOB_QUERY, id="01DONE")

    # Then the handler got one AppSync event naming the field, its type, arguments and variables
    (event,) = events
    assert event["arguments"] == {"id": "01DONE"}
    assert event["info"]["fieldName"] == "job"
    assert event["info"]["parentTypeName"] == "Query"
    assert event["info"]["variables"] == {"id": "01DONE"}
    assert event["identity"] is None and event["source"] is None


def test_selection_set_list_expands_fragments_nests_with_slashes_and_skips_introspection(client, events):
    post(client, JOB_QUERY, id="01DONE")

    selection = events[0]["info"]["selectionSetList"]

    assert selection == ["id", "status", "trim", "trim/start", "trim/end", "createdAt", "updatedAt"]
    assert events[0]["info"]["selectionSetGraphQL"].startswith("{")


def test_request_headers_reach_the_handler(client, events):
    client.post("/graphql", json={"query": JOB_QUERY, "variables": {"id": "01DONE"}},
                headers={"x-amzn-trace-id": "Root=1-test"})

    assert events[0]["request"]["headers"]["x-amzn-trace-id"] == "Root=1-test"


def test_input_object_arrives_with_graphql_names_and_only_the_given_fields(client, events, service):
    post(client, "mutation($input: CreateJobInput!) { createJob(input: $input, idempotencyKey: \"k1\") { id } }",
         input={"source": "s3://mpr-media/uploads/a/clip.mp4", "operation": "trim", "trim": {"start": 1, "end": 2}})

    arguments = events[0]["arguments"]
    assert arguments == {"input": {"source": "s3://mpr-media/uploads/a/clip.mp4", "operation": "trim",
                                   "trim": {"start": 1.0, "end": 2.0}}, "idempotencyKey": "k1"}
    assert service.calls[-1][2] == "k1"


def test_each_root_field_of_a_document_is_its_own_event(client, events):
    # Query fields resolve concurrently, as on AppSync, so their events come in any order.
    post(client, "{ a: job(id: \"01DONE\") { id } b: jobs(limit: 1) { nextToken } }")

    assert sorted(event["info"]["fieldName"] for event in events) == ["job", "jobs"]


def test_mutation_fields_run_one_after_another_in_document_order(client, events):
    post(client, "mutation { a: cancelJob(id: \"01FAIL\") { id } b: createUpload(filename: \"c.mp4\") "
                 "{ source } c: retryJob(id: \"01FAIL\") { id } }")

    assert [event["info"]["fieldName"] for event in events] == ["cancelJob", "createUpload", "retryJob"]


def test_enum_argument_arrives_as_its_name(client, events, service):
    post(client, "{ jobs(status: FAILED) { items { id } } }")

    assert events[0]["arguments"] == {"status": "FAILED"}
    assert service.calls[-1] == ("list", "FAILED", functions.graphql.DEFAULT_PAGE_SIZE, None)


def test_selection_paths_follow_inline_fragments():
    document = parse("{ job(id: 1) { ... on Job { id trim { mode } } } }")
    field = document.definitions[0].selection_set.selections[0]

    assert appsync.selection_paths(field.selection_set, {}) == ["id", "trim", "trim/mode"]
