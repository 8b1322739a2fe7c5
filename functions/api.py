"""The REST API Lambda: Powertools' API Gateway resolver over the job service.

The same handler serves API Gateway in AWS and the local gateway on a laptop.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from functions.api_models import JobOut, JobPage, UploadOut, responses
from mpr.errors import MprError
from mpr.idempotency import register_lambda_context
from mpr.logs import service_logger
from mpr.service import JobService
from mpr.settings import get_settings
from mpr.specs import CreateJobRequest, validation_message

logger = service_logger()
MAX_BODY_CHARS = 64 * 1024
app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(path="/api/docs", title="MPR job API")


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(description="Name of the file to upload; becomes the last part of the key.")


@functools.cache
def service() -> JobService:
    from mpr.events import publisher

    settings = get_settings()
    return JobService(settings, on_change=publisher(settings))


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(status_code=status, content_type="application/json", body=body, headers=headers)


def _error(status: int, code: str, message: str) -> Response[dict]:
    return _json(status, {"error": {"code": code, "message": message}})


@app.exception_handler(MprError)
def _domain_error(error: MprError) -> Response[dict]:
    if error.http_status >= 500:
        logger.exception("request failed")
    return _error(error.http_status, error.code, error.message)


@app.exception_handler(Exception)
def _unexpected_error(error: Exception) -> Response:
    logger.exception("request failed")
    return _error(500, "internal_error", "the service could not complete this request; try again")


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response[dict]:
    _, message = validation_message(list(error.errors()))
    return _error(422, "validation_error", message)


@app.not_found
def _no_route(_exception: Exception) -> Response:
    return _error(404, "not_found", "no such route; see /api/docs for the API")


@app.get("/api/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/api/uploads", status_code=201,
          responses=responses(201, UploadOut, "Where to upload, and the source to use", 415, 422))
def create_upload(body: Annotated[UploadRequest, Body()]) -> Response[UploadOut]:
    return _json(201, service().create_upload(body.filename))


@app.post("/api/jobs", status_code=201,
          responses=responses(201, JobOut, "The new job (or, for a repeated Idempotency-Key, the first one)",
                              409, 415, 422))
def create_job(
    body: Annotated[CreateJobRequest, Body()],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response[JobOut]:
    job = service().create(body, idempotency_key)
    logger.append_keys(job_id=job.id)
    return _json(201, service().view(job), {"Location": f"/api/jobs/{job.id}"})


@app.get("/api/jobs", responses=responses(200, JobPage, "Newest first", 422))
def list_jobs(
    status: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query()] = 20,
    next_token: Annotated[str | None, Query()] = None,
) -> JobPage:
    jobs, token = service().list(status, limit, next_token)
    return {"items": [service().view(job) for job in jobs], "next_token": token}


@app.get("/api/jobs/<job_id>", responses=responses(200, JobOut, "The job", 404))
def get_job(job_id: str) -> JobOut:
    return service().view(service().get(job_id))


@app.post("/api/jobs/<job_id>/cancel", responses=responses(200, JobOut, "The cancelled job", 404, 409))
def cancel_job(job_id: str) -> JobOut:
    return service().view(service().cancel(job_id))


@app.post("/api/jobs/<job_id>/retry", responses=responses(200, JobOut, "The job, PENDING again", 404, 409))
def retry_job(job_id: str) -> JobOut:
    return service().view(service().retry(job_id))


@app.post("/api/jobs/<job_id>/callback", responses=responses(200, JobOut, "The job after the report", 401, 404, 409))
def job_callback(job_id: str) -> JobOut:
    """Reports from the lambda executor; signed per attempt (see mpr.callback)."""
    event = app.current_event
    body = event.decoded_body.encode() if isinstance(event.decoded_body, str) else (event.decoded_body or b"")
    return service().view(service().callback(job_id, dict(event.headers or {}), body))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    register_lambda_context(context)
    refused = refuse_unreadable_body(event)
    return refused or app.resolve(event, context)


def refuse_unreadable_body(event: dict) -> dict | None:
    """A body that is not small, well-formed JSON is answered here, with a reason, not misread.

    NOTE: checked before the resolver because its request validation runs ahead of any middleware,
    and a body it cannot decode (bad UTF-8, nesting deep enough to exhaust the parser) ends there as
    an unhandled error.
    """
    body = event.get("body")
    if not body:
        return None
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    if "json" not in headers.get("content-type", "json").lower():
        return _plain_error(415, "unsupported_media_type",
                            "send the request body as JSON with Content-Type: application/json")
    if len(body) > MAX_BODY_CHARS:
        return _plain_error(413, "body_too_large", f"request body must be at most {MAX_BODY_CHARS} bytes")
    try:
        raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
        json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return _plain_error(400, "validation_error", "request body is not valid JSON in UTF-8")
    return None


def _plain_error(status: int, code: str, message: str) -> dict:
    body = json.dumps({"error": {"code": code, "message": message}})
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": body}
