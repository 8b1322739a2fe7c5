"""GraphQL on the local gateway at /graphql: queries and mutations over HTTP POST, subscriptions
over WebSocket with the graphql-transport-ws protocol (the protocol of the graphql-ws library).

The schema is mpr/schema.graphql and every root field runs through functions.graphql.handler, as
on AppSync (local/appsync.py). Subscriptions are the local part: onJobUpdated first sends the job
as the handler reads it, then each change the service publishes on Redis (mpr/events.py), and
completes after a final state.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator
from inspect import isawaitable
from typing import Any

import redis.asyncio as redis
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    subscribe,
    validate,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from functions.graphql_view import job_fields
from local import appsync
from mpr.events import channel
from mpr.jobs import JobStatus
from mpr.settings import get_settings

logger = logging.getLogger(__name__)

PROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT_SECONDS = 10.0
SUBSCRIBE_CONFIRM_SECONDS = 5.0
FINAL = {JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}
# A job only moves forward within an attempt: later states rank higher, progress only grows.
RANK = {JobStatus.PENDING.value: 0, JobStatus.PROCESSING.value: 1, **dict.fromkeys(FINAL, 2)}
UNAVAILABLE = "Unavailable"

Outcome = list[GraphQLError] | ExecutionResult | AsyncIterator[ExecutionResult]


# ---- live job updates from Redis


class RedisJobFeed:
    """The changes of one job as mpr/events.py publishes them: Job.to_api() as JSON."""

    def __init__(self, url: str, job_id: str):
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._channel = channel(job_id)

    async def start(self) -> None:
        """Subscribe, and return once Redis confirms: no change after this call is missed."""
        try:
            await self._pubsub.subscribe(self._channel)
            deadline = asyncio.get_running_loop().time() + SUBSCRIBE_CONFIRM_SECONDS
            while asyncio.get_running_loop().time() < deadline:
                message = await self._pubsub.get_message(timeout=SUBSCRIBE_CONFIRM_SECONDS)
                if message and message["type"] == "subscribe":
                    return
        except redis.RedisError as error:
            message = f"live updates are unavailable: {error}"
            raise appsync.appsync_error(UNAVAILABLE, message) from None
        raise appsync.appsync_error(UNAVAILABLE, "live updates are unavailable: no Redis answer")

    async def changes(self) -> AsyncIterator[dict]:
        async for message in self._pubsub.listen():
            if message["type"] == "message":
                yield json.loads(message["data"])

    async def stop(self) -> None:
        await self._pubsub.aclose()
        await self._client.aclose()


def open_feed(job_id: str) -> RedisJobFeed:
    url = get_settings().events_url
    if not url:
        message = "live updates are off: the gateway has no MPR_EVENTS_URL"
        raise appsync.appsync_error(UNAVAILABLE, message)
    return RedisJobFeed(url, job_id)


def freshness(job: dict) -> tuple[int, int, int]:
    return job["attempt"], RANK[job["status"]], job["progress"]


async def _updates(feed: RedisJobFeed, current: dict) -> AsyncIterator[dict]:
    try:
        yield current
        last = freshness(current)
        if current["status"] in FINAL:
            return
        async for change in feed.changes():
            job = job_fields(change)
            # NOTE: changes published before the first read, or twice, are not news: drop them.
            if freshness(job) <= last:
                continue
            last = freshness(job)
            yield job
            if job["status"] in FINAL:
                return
    finally:
        await feed.stop()


async def job_updates(_root: Any, info: GraphQLResolveInfo, id: str) -> AsyncIterator[dict]:
    """Subscription.onJobUpdated: the job as the handler reads it (Query.job), then its changes."""
    feed = open_feed(id)
    try:
        await feed.start()
        headers = info.context["headers"]
        event = appsync.appsync_event(info, {"id": id}, headers, as_field=("Query", "job"))
        current = await run_in_threadpool(appsync.invoke, event)
    except BaseException:
        await feed.stop()
        raise
    return _updates(feed, current)


@functools.cache
def served_schema() -> GraphQLSchema:
    served = appsync.schema()
    field = served.subscription_type.fields["onJobUpdated"]
    field.subscribe = job_updates
    field.resolve = lambda job, _info, **_arguments: job
    return served


# ---- running one request

MAX_ROOT_FIELDS = 10
MAX_QUERY_CHARS = 16 * 1024


def prepare(payload: dict) -> tuple[DocumentNode, OperationDefinitionNode] | list[GraphQLError]:
    query, variables = payload.get("query"), payload.get("variables")
    if not isinstance(query, str) or not isinstance(variables, dict | None):
        return [GraphQLError("the request needs query as a string, variables as an object or null")]
    if len(query) > MAX_QUERY_CHARS:
        return [GraphQLError(f"query must be at most {MAX_QUERY_CHARS} characters")]
    try:
        document = parse(query)
    except GraphQLError as error:
        return [error]
    errors = validate(served_schema(), document)
    if errors:
        return errors
    operation = get_operation_ast(document, payload.get("operationName"))
    if operation is None:
        return [GraphQLError("operationName must name one operation of the document")]
    if len(operation.selection_set.selections) > MAX_ROOT_FIELDS:
        # NOTE: each root field is one handler call, and calls are serialized like a Lambda's; a
        # request of hundreds of aliases would hold every other client up.
        return [GraphQLError(f"a request may ask for at most {MAX_ROOT_FIELDS} root fields (aliases count)")]
    return document, operation


async def run_operation(payload: dict, headers: dict[str, str], streaming: bool = True) -> Outcome:
    """Errors before execution, one result (query, mutation) or a stream (subscription)."""
    prepared = prepare(payload)
    if isinstance(prepared, list):
        return prepared
    document, operation = prepared
    if operation.operation is OperationType.SUBSCRIPTION and not streaming:
        return [GraphQLError(f"subscriptions need a WebSocket to /graphql speaking {PROTOCOL}")]
    run = subscribe if operation.operation is OperationType.SUBSCRIPTION else execute
    outcome = run(served_schema(), document, variable_values=payload.get("variables"),
                  operation_name=payload.get("operationName"), context_value={"headers": headers})
    outcome = await outcome if isawaitable(outcome) else outcome
    if run is subscribe and isinstance(outcome, ExecutionResult):
        return outcome.errors or []
    return outcome


def response_body(result: ExecutionResult | list[GraphQLError]) -> dict:
    errors = result if isinstance(result, list) else result.errors
    body: dict[str, Any] = {"data": None if isinstance(result, list) else result.data}
    if errors:
        body["errors"] = [appsync.formatted_error(error) for error in errors]
    return body


# ---- HTTP


async def graphql_http(request: Request) -> JSONResponse:
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        error = GraphQLError("the body must be a JSON object: {query, variables, operationName}")
        return JSONResponse(response_body([error]), status_code=400)
    outcome = await run_operation(payload, dict(request.headers), streaming=False)
    return JSONResponse(response_body(outcome))


# ---- WebSocket, graphql-transport-ws


class Session:
    """One WebSocket connection: its handshake state and its running operations by id."""

    def __init__(self, websocket: WebSocket):
        self.websocket = websocket
        self.headers = dict(websocket.headers)
        self.acknowledged = False
        self.closed = False
        self.operations: dict[str, asyncio.Task] = {}
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        if PROTOCOL not in self.websocket.scope.get("subprotocols", []):
            await self.websocket.accept()
            await self.websocket.close(4406, "Subprotocol not acceptable")
            return
        await self.websocket.accept(subprotocol=PROTOCOL)
        watchdog = asyncio.create_task(self._require_init())
        try:
            while not self.closed:
                await self._dispatch(await self.websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            watchdog.cancel()
            for task in list(self.operations.values()):
                task.cancel()

    async def _require_init(self) -> None:
        await asyncio.sleep(INIT_TIMEOUT_SECONDS)
        if not self.acknowledged:
            await self.close(4408, "Connection initialisation timeout")

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            await self.websocket.close(code, reason)

    async def send(self, message: dict) -> None:
        async with self._send_lock:
            if not self.closed:
                await self.websocket.send_text(json.dumps(message))

    async def _dispatch(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        handlers = {"connection_init": self._on_init, "ping": self._on_ping, "pong": self._on_pong,
                    "subscribe": self._on_subscribe, "complete": self._on_complete}
        if kind not in handlers:
            await self.close(4400, "Invalid message received")
            return
        await handlers[kind](message)

    async def _on_init(self, _message: dict) -> None:
        if self.acknowledged:
            await self.close(4429, "Too many initialisation requests")
            return
        self.acknowledged = True
        await self.send({"type": "connection_ack"})

    async def _on_ping(self, _message: dict) -> None:
        await self.send({"type": "pong"})

    async def _on_pong(self, _message: dict) -> None:
        return None

    async def _on_subscribe(self, message: dict) -> None:
        operation_id, payload = message.get("id"), message.get("payload")
        if not self.acknowledged:
            await self.close(4401, "Unauthorized")
        elif not isinstance(operation_id, str) or not operation_id or not isinstance(payload, dict):
            await self.close(4400, "Invalid message received")
        elif operation_id in self.operations:
            await self.close(4409, f"Subscriber for {operation_id} already exists")
        else:
            task = asyncio.create_task(self._operate(operation_id, payload))
            self.operations[operation_id] = task

    async def _on_complete(self, message: dict) -> None:
        task = self.operations.pop(message.get("id"), None)
        if task is not None:
            task.cancel()

    async def _operate(self, operation_id: str, payload: dict) -> None:
        try:
            outcome = await run_operation(payload, self.headers)
            if isinstance(outcome, list):
                await self._send_errors(operation_id, outcome)
                return
            await self._stream(operation_id, outcome)
            await self.send({"id": operation_id, "type": "complete"})
        except Exception as error:  # a Redis or handler outage ends the operation, not the socket
            reason = str(error)
            logger.warning("operation failed", extra={"operation": operation_id, "error": reason})
            failure = appsync.appsync_error(UNAVAILABLE, f"live updates stopped: {reason}")
            await self._send_errors(operation_id, [failure])
        finally:
            if self.operations.get(operation_id) is asyncio.current_task():
                del self.operations[operation_id]

    async def _send_errors(self, operation_id: str, errors: list[GraphQLError]) -> None:
        shown = response_body(errors)["errors"]
        await self.send({"id": operation_id, "type": "error", "payload": shown})

    async def _stream(self, operation_id: str, outcome: Outcome) -> None:
        if isinstance(outcome, ExecutionResult):
            outcome = _single(outcome)
        try:
            async for result in outcome:
                message = {"id": operation_id, "type": "next", "payload": response_body(result)}
                await self.send(message)
        finally:
            await outcome.aclose()


async def _single(result: ExecutionResult) -> AsyncIterator[ExecutionResult]:
    yield result


async def graphql_ws(websocket: WebSocket) -> None:
    await Session(websocket).run()


routes = [Route("/graphql", graphql_http, methods=["POST"]), WebSocketRoute("/graphql", graphql_ws)]
