"""The local executor's Celery worker: queue `transcode`, Redis broker.

Run: celery -A local.worker worker -Q transcode
"""

from __future__ import annotations

import functools

from celery import Celery
from celery.signals import worker_ready

from mpr import processing
from mpr.dispatch import QUEUE, TASK_NAME
from mpr.events import publisher
from mpr.logs import service_logger
from mpr.reporting import StoreReporter
from mpr.service import JobService
from mpr.settings import get_settings

logger = service_logger()
settings = get_settings()

app = Celery("mpr", broker=settings.broker_url, set_as_current=True)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    # NOTE: acknowledged after the job, one at a time, so a worker that dies before claiming a job
    # leaves its message to be delivered again; a job it had claimed is failed by the reaper instead.
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 6 * 3600},
    worker_hijack_root_logger=False,
)


@worker_ready.connect
def _clear_scratch(**_kwargs) -> None:
    # No task has started yet: any job folder is left over from a worker that was killed.
    processing.clear_stale_scratch(settings)


@functools.cache
def _service() -> JobService:
    return JobService(settings, on_change=publisher(settings))


@app.task(name=TASK_NAME)
def process_job(job_id: str, attempt: int) -> None:
    """Re-reads the job by id: the message carries no job data, only which attempt to run."""
    logger.append_keys(job_id=job_id)
    service = _service()
    reporter = StoreReporter(service.store, job_id, int(attempt), on_change=service.on_change)
    processing.run(reporter, service.storage, settings)
    logger.remove_keys(["job_id"])
