"""The local HTTP gateway: each request becomes an API Gateway proxy event for the same Lambda handler.

uvicorn serves it: python -m uvicorn local.gateway:app --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions import api
from local import graphql_server

logger = logging.getLogger(__name__)

REAP_INTERVAL_SECONDS = 15.0


@dataclass
class LocalContext:
    """What the Lambda runtime hands a handler, as far as the handler reads it."""

    function_name: str = "mpr-api-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:mpr-api-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: float = field(default_factory=lambda: time.monotonic() + 29)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


async def proxy_event(request: Request) -> dict:
    body = await request.body()
    # NOTE: like a REST API with no binary media types, any body that is valid UTF-8 passes as text.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    query = request.query_params
    return {
        "resource": "/api/{proxy+}",
        "path": request.url.path,
        "httpMethod": request.method,
        "headers": dict(request.headers),
        "multiValueHeaders": {key: request.headers.getlist(key) for key in request.headers},
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": {key: query.getlist(key) for key in query} or None,
        "pathParameters": {"proxy": request.url.path.removeprefix("/api/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/api/{proxy+}", "httpMethod": request.method, "path": request.url.path,
            "stage": "local", "requestId": str(uuid.uuid4()), "accountId": "000000000000", "apiId": "local",
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": request.client.host if request.client else "127.0.0.1"},
        },
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


def to_response(result: dict) -> Response:
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers = dict(result.get("headers") or {})
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key] = ", ".join(values)
    headers.pop("content-length", None)
    return Response(raw, status_code=int(result.get("statusCode", 502)), headers=headers)


# NOTE: the resolver keeps the current event on the app object, as a Lambda that serves one request
# at a time may. Calls are serialized here to give the handler that same guarantee.
_HANDLER_LOCK = threading.Lock()


def _invoke(event: dict) -> dict:
    with _HANDLER_LOCK:
        return api.handler(event, LocalContext())


async def rest(request: Request) -> Response:
    event = await proxy_event(request)
    return to_response(await run_in_threadpool(_invoke, event))


async def _reap_forever() -> None:
    """The local stand-in for the cloud's execution timeouts: fail jobs whose worker went silent."""
    while True:
        await asyncio.sleep(REAP_INTERVAL_SECONDS)
        try:
            await run_in_threadpool(api.service().reap)
        except Exception:  # the stack may be shutting down; try again next round
            logger.warning("reap failed", exc_info=True)


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette):
    task = asyncio.create_task(_reap_forever())
    yield
    task.cancel()


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
routes = [Route("/api", rest, methods=METHODS), Route("/api/{proxy:path}", rest, methods=METHODS)]
routes += graphql_server.routes
app = Starlette(routes=routes, lifespan=lifespan)
