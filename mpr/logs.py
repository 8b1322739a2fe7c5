"""One logger factory: Powertools' structured JSON logger, in the Lambdas and the local processes alike."""

from __future__ import annotations

import functools
import logging

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import utils as logging_utils

SERVICE = "mpr"


@functools.cache
def service_logger() -> Logger:
    """The entry points' logger; the library modules' `logging.getLogger(__name__)` loggers share its format."""
    logger = Logger(service=SERVICE)
    logging_utils.copy_config_to_registered_loggers(source_logger=logger, include={"mpr"})
    # NOTE: one JSON line per record; a host's own root handler (Celery's, uvicorn's) would repeat it.
    logging.getLogger(SERVICE).propagate = False
    return logger
