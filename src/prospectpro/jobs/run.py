"""A job being run by a worker: the handle a job handler writes through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from prospectpro.jobs.model import Change, Job, Lease, LeaseLost
from prospectpro.jobs.queue import apply_change, lock_job
from prospectpro.store.db import Database


class CancelRequested(Exception):
    """The owner asked to cancel; the handler stops at a checkpoint."""


class WorkerStopping(Exception):
    """The worker is shutting down; the job goes back to the queue."""


@dataclass(eq=False)  # identity semantics: a worker keeps its runs in a set
class JobRun:
    db: Database
    lease: Lease
    job: Job
    cancel_seen: threading.Event = field(default_factory=threading.Event)
    lease_lost: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def change(
        self, change: Change | Callable[[Connection], Change], write: Callable[[Connection], Any] | None = None
    ) -> Job:
        """One fenced transaction: ``write`` (the stage's checkpoint rows), then the job change and its event.

        ``change`` may be a function of the connection, for a change that
        depends on what this transaction wrote (progress counted from rows).
        If this worker lost its lease, nothing of it is written.
        """
        try:
            with self.db.write() as conn:
                job = lock_job(conn, self.lease.job_id, self.lease)
                if write is not None:
                    write(conn)
                if not isinstance(change, Change):
                    change = change(conn)
                self.job, _ = apply_change(conn, job, change)
        except LeaseLost:
            self.lease_lost.set()
            raise
        if self.job.cancel_requested:
            self.cancel_seen.set()
        return self.job

    def checkpoint(self) -> None:
        """Where a handler may stop: raises when it must."""
        if self.lease_lost.is_set():
            raise LeaseLost(f"job {self.lease.job_id}: lease lost")
        if self.stopping.is_set():
            raise WorkerStopping()
        if self.cancel_seen.is_set():
            raise CancelRequested()


Handler = Callable[[JobRun], None]
