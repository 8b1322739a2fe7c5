"""mpr/schema.graphql is the one schema: AppSync can load it, and it matches what the code answers."""

from __future__ import annotations

from graphql import (
    DirectiveDefinitionNode,
    GraphQLNamedType,
    ScalarTypeDefinitionNode,
    get_named_type,
    parse,
    validate,
)

import functions.graphql
from functions.graphql_view import job_fields, renamed
from functions.job_stream import PUBLISH_MUTATION
from local import appsync
from tests.unit.graphql_support import FakeJobService, make_job

SCHEMA = appsync.schema()


def type_fields(name: str) -> dict[str, str]:
    """Field name -> named type name (wrappers dropped, input types named like their output types)."""
    found = SCHEMA.type_map[name].fields
    return {field: get_named_type(spec.type).name.removesuffix("Input") for field, spec in found.items()}


def test_schema_file_declares_nothing_that_appsync_itself_defines():
    definitions = parse(appsync.schema_text()).definitions

    assert not [node for node in definitions if isinstance(node, ScalarTypeDefinitionNode | DirectiveDefinitionNode)]


def test_local_server_loads_the_schema_file():
    assert appsync.SCHEMA_FILE.relative_to(appsync.SCHEMA_FILE.parents[1]).as_posix() == "mpr/schema.graphql"
    assert appsync.schema_text() == appsync.SCHEMA_FILE.read_text()


def test_job_names_every_field_of_the_rest_job_in_camel_case():
    rest_job = make_job(result={"size": 1}).to_api()

    assert set(type_fields("Job")) == set(job_fields(rest_job))


def test_job_update_input_carries_every_job_field_with_the_same_type():
    assert type_fields("JobUpdateInput") == type_fields("Job")
    assert type_fields("TrimInput") == type_fields("Trim")


def test_upload_and_connection_match_the_answers():
    upload = FakeJobService().create_upload("clip.mp4")

    assert set(type_fields("Upload")) == set(renamed(upload))
    assert set(type_fields("JobConnection")) == {"items", "nextToken"}


def test_stream_publish_mutation_is_valid_and_selects_every_job_field():
    document = parse(PUBLISH_MUTATION)

    assert validate(SCHEMA, document) == []
    selection = document.definitions[0].selection_set.selections[0].selection_set
    assert set(appsync.selection_paths(selection, {})) == {
        *type_fields("Job"), *(f"trim/{name}" for name in type_fields("Trim"))}


def test_lambda_resolves_every_root_field_but_the_service_only_publish():
    registry = functions.graphql.app._resolver_registry
    fields = [(root.name, name) for root in (SCHEMA.query_type, SCHEMA.mutation_type) for name in root.fields]

    missing = [field for field in fields if not registry.find_resolver(*field)]

    assert missing == [("Mutation", "publishJobUpdate")]


def test_only_publish_is_closed_to_the_api_key():
    roots: list[GraphQLNamedType] = [SCHEMA.query_type, SCHEMA.mutation_type, SCHEMA.subscription_type]

    closed = [name for root in roots for name, field in root.fields.items()
              if not appsync.api_key_may_call(root, field)]

    assert closed == ["publishJobUpdate"]
