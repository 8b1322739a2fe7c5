"""The GraphQL Lambda: Powertools' AppSync resolver over the same job service as REST.

AppSync calls it once per root field with the event of a direct Lambda resolver (arguments,
identity, source, request, info); the local server (local/appsync.py) builds the same events.
Answers use the schema's names (mpr/schema.graphql).

A domain error is answered, not raised: ``{"__error": {"type": code, "message": message}}``. The
AppSync resolver code (stacks/graphql_api.py) and the local server turn it into a GraphQL error
whose errorType is the error's code and whose message is the error's message, as it is. No schema
field can be called ``__error`` (GraphQL reserves the ``__`` prefix), so no answer is mistaken
for one. Anything else raised fails the invocation; AppSync reports that as ``Lambda:Unhandled``.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import AppSyncResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.api import service
from functions.graphql_view import job_fields, renamed
from mpr.errors import MprError
from mpr.idempotency import register_lambda_context
from mpr.jobs import Job
from mpr.logs import service_logger
from mpr.specs import parse_create_request

logger = service_logger()
app = AppSyncResolver()

ERROR_KEY = "__error"
# NOTE: the same default page size as GET /api/jobs (functions/api.py, list_jobs).
DEFAULT_PAGE_SIZE = 20


def error_answer(error: MprError) -> dict:
    return {ERROR_KEY: {"type": error.code, "message": error.message}}


@app.exception_handler(MprError)
def _domain_error(error: MprError) -> dict:
    if error.http_status >= 500:
        logger.exception("request failed")
    return error_answer(error)


def _job(job: Job) -> dict:
    return job_fields(service().view(job))


@app.resolver(type_name="Query", field_name="job")
def get_job(id: str) -> dict:
    return _job(service().get(id))


@app.resolver(type_name="Query", field_name="jobs")
def list_jobs(status: str | None = None, limit: int | None = None,
              nextToken: str | None = None) -> dict:
    size = DEFAULT_PAGE_SIZE if limit is None else limit
    jobs, token = service().list(status, size, nextToken)
    return {"items": [_job(job) for job in jobs], "nextToken": token}


@app.resolver(type_name="Mutation", field_name="createJob")
def create_job(input: dict, idempotencyKey: str | None = None) -> dict:
    request = parse_create_request(input)
    job = service().create(request, idempotencyKey)
    logger.append_keys(job_id=job.id)
    return _job(job)


@app.resolver(type_name="Mutation", field_name="cancelJob")
def cancel_job(id: str) -> dict:
    return _job(service().cancel(id))


@app.resolver(type_name="Mutation", field_name="retryJob")
def retry_job(id: str) -> dict:
    return _job(service().retry(id))


@app.resolver(type_name="Mutation", field_name="createUpload")
def create_upload(filename: str) -> dict:
    return renamed(service().create_upload(filename))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.APPSYNC_RESOLVER,
                              clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    register_lambda_context(context)
    return app.resolve(event, context)
