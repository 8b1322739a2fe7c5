"""The local stand-in for AppSync: mpr/schema.graphql run by graphql-core, each root field resolved
by the GraphQL Lambda handler with the event AppSync would send it.

What AppSync itself provides is declared here: its scalars and directives (which the schema file
must not declare), its error shape (errorType next to message), and its rule that a caller with
the API key may not call an IAM-only field such as publishJobUpdate. The local caller is the
API-key caller: `identity` is null, as AppSync sends it for API-key requests.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    build_schema,
    print_ast,
)
from starlette.concurrency import run_in_threadpool

from functions import graphql as resolver_lambda

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "mpr" / "schema.graphql"

# What AppSync defines for every API; only declared here, never in the schema file.
APPSYNC_DECLARATIONS = """
scalar AWSDate
scalar AWSTime
scalar AWSDateTime
scalar AWSTimestamp
scalar AWSEmail
scalar AWSJSON
scalar AWSURL
scalar AWSPhone
scalar AWSIPAddress
directive @aws_subscribe(mutations: [String!]!) on FIELD_DEFINITION
directive @aws_api_key on OBJECT | FIELD_DEFINITION
directive @aws_iam on OBJECT | FIELD_DEFINITION
directive @aws_oidc on OBJECT | FIELD_DEFINITION
directive @aws_lambda on OBJECT | FIELD_DEFINITION
directive @aws_cognito_user_pools(cognito_groups: [String!]) on OBJECT | FIELD_DEFINITION
directive @aws_auth(cognito_groups: [String!]) on FIELD_DEFINITION
"""
AUTH_DIRECTIVES = {"aws_api_key", "aws_iam", "aws_oidc", "aws_lambda", "aws_cognito_user_pools",
                   "aws_auth"}
FUNCTION_NAME = "mpr-graphql-local"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION_NAME}"
UNHANDLED = "Lambda:Unhandled"
UNAUTHORIZED = "Unauthorized"
# AppSync's errorType for a request that fails parsing or validation against the schema.
INVALID_REQUEST = "ValidationError"
# NOTE: one invocation at a time, as in one Lambda container: Powertools' resolver keeps the current
# event in shared state, so two threads resolving at once could run each other's field.
_ONE_INVOCATION = threading.Lock()


def appsync_error(error_type: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"errorType": error_type})


def formatted_error(error: GraphQLError) -> dict[str, Any]:
    """An error as AppSync writes it: errorType and errorInfo beside message, path and locations."""
    shown = error.formatted
    error_type = (error.extensions or {}).get("errorType")
    if error_type is None:
        error_type = INVALID_REQUEST if error.path is None else UNHANDLED
    return {"path": shown.get("path"), "data": None, "errorType": error_type, "errorInfo": None,
            "locations": shown.get("locations"), "message": error.message}


# ---- the events AppSync sends a direct Lambda resolver


def selection_paths(selection_set: SelectionSetNode | None, fragments: Mapping[str, Any],
                    prefix: str = "") -> list[str]:
    """AppSync's selectionSetList: field names below the resolved field, nested ones as a/b."""
    paths: list[str] = []
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode) and not selection.name.value.startswith("__"):
            path = prefix + selection.name.value
            paths += [path, *selection_paths(selection.selection_set, fragments, path + "/")]
        elif isinstance(selection, InlineFragmentNode):
            paths += selection_paths(selection.selection_set, fragments, prefix)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            paths += selection_paths(fragment.selection_set, fragments, prefix)
    return list(dict.fromkeys(paths))


def appsync_event(info: GraphQLResolveInfo, arguments: dict[str, Any],
                  headers: Mapping[str, str], *, as_field: tuple[str, str] | None = None) -> dict:
    """The event AppSync sends for the field `info` resolves, or, given `as_field` (type, field),
    for that root field with the same selection: how a subscription reads a job's first state."""
    parent_type, field_name = as_field or (info.parent_type.name, info.field_name)
    selection_set = info.field_nodes[0].selection_set
    return {
        "arguments": arguments,
        "identity": None,
        "source": None,
        "request": {"headers": dict(headers), "domainName": None},
        "prev": None,
        "stash": {},
        "info": {
            "fieldName": field_name,
            "parentTypeName": parent_type,
            "variables": dict(info.variable_values.coerced),
            "selectionSetList": selection_paths(selection_set, info.fragments),
            "selectionSetGraphQL": print_ast(selection_set) if selection_set else "",
        },
    }


# ---- resolving through the Lambda handler


def invoke(event: dict) -> Any:
    """Run the handler as Lambda would, and raise what AppSync would report for its answer."""
    # NOTE: imported here because local.gateway imports this module's routes at its top.
    from local.gateway import LocalContext

    context = LocalContext(function_name=FUNCTION_NAME, invoked_function_arn=FUNCTION_ARN)
    try:
        with _ONE_INVOCATION:
            answer = resolver_lambda.handler(event, context)
    except Exception as error:  # a failed invocation: AppSync shows its message as Lambda:Unhandled
        raise appsync_error(UNHANDLED, str(error)) from error
    failure = answer.get(resolver_lambda.ERROR_KEY) if isinstance(answer, dict) else None
    if failure:
        raise appsync_error(failure["type"], failure["message"])
    return answer


def api_key_may_call(parent: GraphQLObjectType, field: GraphQLField) -> bool:
    """AppSync's rule: the field's auth directives, else its type's, else the default (the key)."""
    for node in (field.ast_node, parent.ast_node):
        directives = (node.directives if node else None) or ()
        modes = {directive.name.value for directive in directives} & AUTH_DIRECTIVES
        if modes:
            return "aws_api_key" in modes
    return True


async def resolve_root(_root: Any, info: GraphQLResolveInfo, **arguments: Any) -> Any:
    field = info.parent_type.fields[info.field_name]
    if not api_key_may_call(info.parent_type, field):
        raise appsync_error(UNAUTHORIZED, f"Not Authorized to access {info.field_name} on type "
                                          f"{info.parent_type.name}")
    event = appsync_event(info, arguments, (info.context or {}).get("headers", {}))
    return await run_in_threadpool(invoke, event)


# ---- AppSync's scalars


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _parsed_json(value: Any) -> Any:
    # NOTE: AppSync hands AWSJSON arguments to resolvers parsed, as objects.
    if not isinstance(value, str):
        raise GraphQLError("AWSJSON must be a string of JSON")
    try:
        return json.loads(value)
    except ValueError:
        raise GraphQLError("AWSJSON must be valid JSON") from None


def _date_time(value: Any) -> str:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        message = "AWSDateTime must be an ISO 8601 date and time like 2026-12-04T15:00:00Z"
        raise GraphQLError(message) from None
    return value


def _url(value: Any) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise GraphQLError("AWSURL must be an absolute URL")
    return value


def _attach_scalars(built: GraphQLSchema) -> None:
    behaviour = {"AWSJSON": (_json_text, _parsed_json), "AWSDateTime": (str, _date_time),
                 "AWSURL": (str, _url)}
    for name, (output, parse) in behaviour.items():
        scalar = built.type_map[name]
        scalar.coerce_output_value = output
        scalar.coerce_input_value = parse


# ---- the schema


def schema_text() -> str:
    return SCHEMA_FILE.read_text()


@functools.cache
def schema() -> GraphQLSchema:
    """mpr/schema.graphql with AppSync's declarations; root fields resolved through the handler."""
    built = build_schema(APPSYNC_DECLARATIONS + schema_text())
    _attach_scalars(built)
    for root in (built.query_type, built.mutation_type):
        for field in root.fields.values():
            field.resolve = resolve_root
    return built
