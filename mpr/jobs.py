"""Job states, the transition table and the Job record. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING, JobStatus.CANCELLED}),
    JobStatus.PROCESSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: JobStatus) -> tuple[JobStatus, ...]:
    """The states a job may be in for a write to `target` to be allowed, in a stable order."""
    return tuple(state for state in JobStatus if target in TRANSITIONS[state])


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass
class Job:
    """A job as the service sees it. `spec` is the validated request, as plain data."""

    id: str
    status: JobStatus
    operation: str
    source: str
    output: str
    preset: str | None = None
    trim: dict[str, Any] | None = None
    progress: int = 0
    attempt: int = 1
    executor: str = "local"
    error: str | None = None
    result: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = field(default_factory=utc_now)
    lease_expires: float | None = None
    dispatched_at: float | None = None
    runner: str | None = None  # which invocation claimed the attempt (lambda executor)
    execution_arn: str | None = None

    def to_api(self, output_url: str | None = None) -> dict[str, Any]:
        """The job as the contract shows it; internal bookkeeping stays out."""
        return {
            "id": self.id,
            "status": self.status.value,
            "operation": self.operation,
            "source": self.source,
            "preset": self.preset,
            "trim": self.trim,
            "output": self.output,
            "output_url": output_url if self.status is JobStatus.COMPLETED else None,
            "progress": self.progress,
            "attempt": self.attempt,
            "executor": self.executor,
            "error": self.error,
            "result": self.result,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "updated_at": iso(self.updated_at),
        }


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def job_from_api(data: dict[str, Any]) -> Job:
    """A Job back from its contract form (what a callback response carries)."""
    return Job(
        id=data["id"], status=JobStatus(data["status"]), operation=data["operation"], source=data["source"],
        output=data["output"], preset=data.get("preset"), trim=data.get("trim"),
        progress=int(data.get("progress") or 0), attempt=int(data.get("attempt") or 1),
        executor=data.get("executor") or "lambda", error=data.get("error"), result=data.get("result"),
        created_at=parse_iso(data.get("created_at")), started_at=parse_iso(data.get("started_at")),
        finished_at=parse_iso(data.get("finished_at")), updated_at=parse_iso(data.get("updated_at")),
    )
