"""Job change notifications. Each state or progress write is published for live subscribers.

Locally the stream is Redis pub/sub (the GraphQL endpoint relays it over WebSocket); with no
MPR_EVENTS_URL nothing is published.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from mpr.jobs import Job
from mpr.settings import Settings

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "mpr:job:"


def channel(job_id: str) -> str:
    return f"{CHANNEL_PREFIX}{job_id}"


def publisher(settings: Settings) -> Callable[[Job], None]:
    if not settings.events_url:
        return lambda job: None
    import redis

    client = redis.Redis.from_url(settings.events_url, socket_timeout=1, socket_connect_timeout=1)

    def publish(job: Job) -> None:
        try:
            client.publish(channel(job.id), json.dumps(job.to_api()))
        except redis.RedisError as error:
            # NOTE: a lost notification costs a subscriber one update, never the job: state is in the table.
            logger.debug("publish failed", extra={"job_id": job.id, "error": str(error)})

    return publish
