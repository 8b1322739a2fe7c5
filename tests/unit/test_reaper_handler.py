"""The reaper Lambda: one scheduled call of the job service's reap, answered with its counts."""

from __future__ import annotations

import pytest

import functions.api
from functions import reaper


class FakeReapingService:
    """Stands in for JobService: reap answers fixed counts and records that it ran."""

    def __init__(self, counts: dict | None = None, error: Exception | None = None):
        self.counts = counts or {"failed": 0, "resent": 0}
        self.error = error
        self.reaps = 0

    def reap(self, now: float | None = None) -> dict:
        self.reaps += 1
        if self.error is not None:
            raise self.error
        return self.counts


class LambdaContextStub:
    function_name = "mpr-reaper-test"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:mpr-reaper-test"
    aws_request_id = "test-request"


# What EventBridge sends for a scheduled rule; the handler reads nothing from it.
SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_handler_reaps_once_and_returns_the_counts(monkeypatch):
    # Given a service with one expired lease and two lost dispatches
    fake = FakeReapingService({"failed": 1, "resent": 2})
    monkeypatch.setattr(reaper, "service", lambda: fake)

    # When the schedule fires
    outcome = reaper.handler(SCHEDULED_EVENT, LambdaContextStub())

    # Then reap ran once and its counts are the answer
    assert fake.reaps == 1
    assert outcome == {"failed": 1, "resent": 2}


def test_a_failed_reap_fails_the_invocation(monkeypatch):
    # Given a service whose table read fails
    fake = FakeReapingService(error=RuntimeError("table unavailable"))
    monkeypatch.setattr(reaper, "service", lambda: fake)

    # When the schedule fires, then the error is raised, so Lambda counts the run as failed
    with pytest.raises(RuntimeError, match="table unavailable"):
        reaper.handler(SCHEDULED_EVENT, LambdaContextStub())
    assert fake.reaps == 1


def test_reaper_uses_the_api_service_builder():
    # One builder for both Lambdas: the reaper's service is configured exactly like the API's.
    assert reaper.service is functions.api.service
