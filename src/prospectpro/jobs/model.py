"""Plain records of the queue: a job, one of its events, a lease, a change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prospectpro.domain.clock import iso
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.kinds import stage_label


class LeaseLost(Exception):
    """This worker no longer holds the job: another worker took it over."""


class JobFinished(Exception):
    """The job is in a terminal state; nothing may change it any more."""


class DatabaseUnavailable(Exception):
    """The database stayed unreachable until this worker's lease could have run out.

    Not the job's failure: the worker charges no attempt for it (see
    ``prospectpro.jobs.run.database_outage``).
    """


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    worker_id: str
    token: int


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str  # which handler runs it (``prospectpro.jobs.kinds``)
    campaign_id: str | None  # set for campaign jobs only
    owner_id: str
    status: JobStatus
    progress: int
    current_stage: str  # as the kind's handler reported it
    config: dict[str, Any]
    metrics: dict[str, Any]
    checkpoint: dict[str, Any]
    error: str | None
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_owner: str | None
    lease_token: int
    lease_expires_at: datetime | None
    cancel_requested: bool
    idempotency_key: str | None
    request_hash: str | None
    event_seq: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Job:
        m = row._mapping
        return cls(
            **{
                **{k: m[k] for k in cls.__slots__},
                "status": JobStatus(m["status"]),
                "config": dict(m["config"] or {}),
                "metrics": dict(m["metrics"] or {}),
                "checkpoint": dict(m["checkpoint"] or {}),
                "cancel_requested": bool(m["cancel_requested"]),
            }
        )

    def to_row(self) -> dict[str, Any]:
        """The job as the discovery_jobs row stores it."""
        row = {name: getattr(self, name) for name in self.__slots__}
        row["status"] = self.status.value
        return row

    def stage_done(self, stage: str) -> bool:
        return self.checkpoint.get(str(stage)) == "done"

    @property
    def stage_label(self) -> str:
        """What a progress display shows: the stage while running, the outcome once ended."""
        if self.status.terminal:
            return self.status.value.capitalize()
        return self.running_label

    @property
    def running_label(self) -> str:
        """The words for the stage it is at, as its kind names them."""
        return stage_label(self.kind, self.current_stage)

    def snapshot(self) -> dict[str, Any]:
        """What a client needs to draw the job: also the payload of every event."""
        return {
            "job_id": self.id,
            "campaign_id": self.campaign_id,
            "status": self.status.value,
            "progress": self.progress,
            "current_stage": self.current_stage,
            "stage_label": self.stage_label,
            "event_seq": self.event_seq,
            "metrics": self.metrics,
            "error": self.error,
            "attempts": self.attempts,
            "cancel_requested": self.cancel_requested,
        }

    def to_public(self) -> dict[str, Any]:
        config = {k: v for k, v in self.config.items() if k != "notify"}  # the webhook secret stays private
        if "notify" in self.config:
            config["notify_url"] = self.config["notify"].get("url")
        return {
            **self.snapshot(),
            "id": self.id,
            "kind": self.kind,
            "config": config,
            "max_attempts": self.max_attempts,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class JobEvent:
    job_id: str
    seq: int
    kind: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> JobEvent:
        m = row._mapping
        return cls(job_id=m["job_id"], seq=m["seq"], kind=m["kind"], data=dict(m["data"]), created_at=m["created_at"])

    def to_public(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "data": self.data, "created_at": iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a job: becomes one row update and one event."""

    kind: str
    status: JobStatus | None = None
    stage: str | None = None  # the handler's own stage name (a campaign's: domain.campaign.Stage)
    progress: int | None = None  # never lowers the job's progress
    metrics: Mapping[str, Any] | None = None  # merged into the job's metrics
    checkpoint: Mapping[str, Any] | None = None  # merged into the job's checkpoint
    error: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)  # extra event payload
