"""The job API's answers in the GraphQL schema's names (mpr/schema.graphql).

REST (docs/api.md) is snake_case and GraphQL clients expect camelCase. Every field keeps its REST
value and meaning; only its name changes, by the one rule in `camel`. Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def renamed(answer: dict[str, Any]) -> dict[str, Any]:
    """A REST answer's top-level names in camelCase: next_token -> nextToken."""
    return {camel(name): value for name, value in answer.items()}


def job_fields(view: dict[str, Any]) -> dict[str, Any]:
    """A REST job (Job.to_api, JobService.view) as the schema's Job; `result` as AWSJSON text."""
    fields = renamed(view)
    if fields.get("result") is not None:
        # NOTE: AWSJSON travels as JSON text. trim stays an object: its keys are single words.
        fields["result"] = json.dumps(fields["result"], separators=(",", ":"))
    return fields
