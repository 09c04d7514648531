"""A job being run by a worker: the handle a job handler writes through."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from prospectpro.domain.clock import utcnow
from prospectpro.jobs.model import Change, DatabaseUnavailable, Job, JobFinished, Lease, LeaseLost
from prospectpro.jobs.queue import apply_change, cancel_is_requested, fenced_change, lock_job
from prospectpro.store.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")

# Other workers judge a lease by their own clocks: stop counting on it a little early.
CLOCK_MARGIN_SECONDS = 0.5
_RETRY_FIRST_SECONDS = 0.05
_RETRY_MAX_SECONDS = 1.0


class CancelRequested(Exception):
    """The owner asked to cancel; the handler stops at a checkpoint."""


class WorkerStopping(Exception):
    """The worker is shutting down; the job goes back to the queue."""


def database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (restarting, connection
    dropped, SQLite locked): the database's failure, not the job's, so worth retrying."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig  # type: ignore[assignment]
    if isinstance(exc, sqlite3.OperationalError):  # also "no such table", which is no outage
        message = str(exc).lower()
        return "locked" in message or "busy" in message
    # Connection refused or lost, server shut down or terminating this backend,
    # deadlock or serialization failure: all psycopg.OperationalError.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


@dataclass(eq=False)  # identity semantics: a worker keeps its runs in a set
class JobRun:
    db: Database
    lease: Lease
    job: Job
    cancel_seen: threading.Event = field(default_factory=threading.Event)
    lease_lost: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    # time.monotonic() until which no other worker can have taken the job over:
    # while it lasts, a write the database refused is worth retrying.
    lease_valid_until: float = 0.0

    def __post_init__(self) -> None:
        if not self.lease_valid_until and self.job.lease_expires_at is not None:
            left = (self.job.lease_expires_at - utcnow()).total_seconds()
            self.lease_valid_until = time.monotonic() + left - CLOCK_MARGIN_SECONDS
        if self.job.cancel_requested:  # asked before this attempt began
            self.cancel_seen.set()

    def lease_renewed(self, valid_until: float) -> None:
        self.lease_valid_until = max(self.lease_valid_until, valid_until)

    def persist(self, write: Callable[[], T]) -> T:
        """Run ``write``; while the database is unreachable, retry it with backoff until the lease could run out.

        Then DatabaseUnavailable: the job is neither given up as failed nor
        charged an attempt (the worker waits for the database, see Worker).
        """
        delay = _RETRY_FIRST_SECONDS
        while True:
            try:
                return write()
            except Exception as exc:
                if not database_outage(exc) or isinstance(exc, DatabaseUnavailable):
                    raise
                left = self.lease_valid_until - time.monotonic()
                if left <= 0:
                    raise DatabaseUnavailable(f"job {self.lease.job_id}: database unreachable: {exc}") from exc
                log.warning("job %s: database unreachable, retrying in %.2fs: %s", self.lease.job_id, delay, exc)
                if self.lease_lost.wait(min(delay, left)):
                    raise LeaseLost(f"job {self.lease.job_id}: lease lost") from exc
                delay = min(2 * delay, _RETRY_MAX_SECONDS)

    def change(
        self, change: Change | Callable[[Connection], Change], write: Callable[[Connection], Any] | None = None
    ) -> Job:
        """One fenced transaction: ``write`` (the stage's checkpoint rows), then the job change and its event.

        ``change`` may be a function of the connection, for a change that
        depends on what this transaction wrote (progress counted from rows).
        If this worker lost its lease, nothing of it is written. A database
        outage is waited out (``persist``): the transaction is simply run again.
        """

        def transaction() -> Job:
            if write is None and isinstance(change, Change):
                # Nothing to write before the change: the fenced update against the row as
                # this run last saw it; lock and read it only if it moved on.
                done = fenced_change(self.db, self.job, self.lease, change)
                if done is not None:
                    return done
            with self.db.write() as conn:
                job = lock_job(conn, self.lease.job_id, self.lease)
                if write is not None:
                    write(conn)
                made = change if isinstance(change, Change) else change(conn)
                return apply_change(conn, job, made)[0]

        try:
            self.job = self.persist(transaction)
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

    def cancel_requested_now(self) -> bool:
        """Whether the owner has asked to cancel, asking the database: the heartbeat may not have seen it yet."""
        if not self.cancel_seen.is_set():
            try:
                if cancel_is_requested(self.db, self.lease.job_id):
                    self.cancel_seen.set()
            except Exception:  # unknown is "no": the caller goes on as it would have
                log.warning("job %s: could not read the cancel flag", self.lease.job_id, exc_info=True)
        return self.cancel_seen.is_set()


def ends_in_cancel(run: JobRun, exc: BaseException) -> bool:
    """An attempt failed with ``exc``: does a cancel request win over its retry?

    Only for the job's own failures: a lost lease, a stopping worker or an
    unreachable database are not failures of the job, and are handled by the worker.
    """
    if isinstance(exc, LeaseLost | JobFinished | WorkerStopping | CancelRequested) or database_outage(exc):
        return False
    return run.cancel_requested_now()


Handler = Callable[[JobRun], None]
