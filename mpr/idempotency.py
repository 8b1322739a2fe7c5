"""Idempotency-Key on job creation, through Powertools idempotency on the DynamoDB idempotency table.

The same key with the same body returns the job the first request created; the same key with another
body is refused, and a key whose first request is still running answers 409.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from mpr.errors import ConflictError, ValidationError
from mpr.settings import Settings

KEY_TTL_SECONDS = 24 * 3600
MAX_KEY_CHARS = 255


def _create_job(*, payload: dict, work: Callable[[], str]) -> dict:
    return {"job_id": work()}


CONFIG = IdempotencyConfig(event_key_jmespath="key", payload_validation_jmespath="request",
                           expires_after_seconds=KEY_TTL_SECONDS)


def register_lambda_context(context) -> None:
    """Lets an in-progress record expire with the invocation that wrote it, if that invocation dies."""
    CONFIG.register_lambda_context(context)


@functools.cache
def _guarded(settings: Settings) -> Callable[..., dict]:
    client = boto3.client("dynamodb", region_name=settings.region, endpoint_url=settings.dynamodb_endpoint)
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=client)
    return idempotent_function(data_keyword_argument="payload", persistence_store=persistence,
                               config=CONFIG)(_create_job)


def run_once(settings: Settings, key: str, request: dict, work: Callable[[], str]) -> str:
    """Run `work` (which creates a job and returns its id) at most once per key; return that job id."""
    if not key or len(key) > MAX_KEY_CHARS:
        raise ValidationError("Idempotency-Key", f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters")
    try:
        return _guarded(settings)(payload={"key": key, "request": request}, work=work)["job_id"]
    except IdempotencyValidationError:
        raise ValidationError(
            "Idempotency-Key", "Idempotency-Key was already used with a different request body"
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise ConflictError("a request with this Idempotency-Key is still being processed") from None
