"""The reaper Lambda: run on a schedule by EventBridge, it calls the job service's ``reap``.

``reap`` fails PROCESSING jobs whose lease ran out and resends PENDING jobs whose dispatch was
lost. Locally the gateway calls it every 15 s; in AWS this Lambda is the only caller.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.api import service
from mpr.logs import service_logger

logger = service_logger()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    counts = service().reap()
    logger.info("jobs reaped", extra=counts)
    return counts
