"""Workers: claim jobs, hold their leases by heartbeat, run each one's kind's handler.

A worker is N slot threads, one lease heartbeat and a registry heartbeat.
A slot that comes free claims for itself and for every other idle slot in one
transaction (``claim_many``: each job still gets its own lease, token and
event), so a worker never holds more jobs than its slots can start. The lease
heartbeat renews every lease the worker holds in one statement, every third
of the lease's length; if a renewal finds a lease taken over, that job's run
is marked lost, and every later write is refused by the fence anyway.

A worker that loses its database keeps its jobs: writes are retried while the
lease lasts (``JobRun.persist``), and an attempt the database broke resumes in
place once the database answers again, without being charged as a failure.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select

from prospectpro.config import Settings
from prospectpro.domain.clock import utcnow
from prospectpro.jobs.kinds import JobKind, kind_registry
from prospectpro.jobs.model import Job, JobFinished, Lease, LeaseLost
from prospectpro.jobs.notify import Deliveries, NotifyConfig
from prospectpro.jobs.queue import (
    claim_many,
    has_claimable,
    next_claimable_at,
    reap_spent,
    record_failure,
    release,
    renew_lease,
    renew_leases,
)
from prospectpro.jobs.run import CLOCK_MARGIN_SECONDS, JobRun, WorkerStopping, database_outage
from prospectpro.store import listen
from prospectpro.store.db import Database
from prospectpro.store.prune import prune
from prospectpro.store.schema import workers

log = logging.getLogger(__name__)

# An attempt the database keeps breaking although the lease renews (so not an
# outage after all, e.g. a statement timeout) is charged as a failure after this
# many resumptions that made no progress.
MAX_STALLED_RESUMES = 3


@dataclass(frozen=True)
class WorkerConfig:
    lease_seconds: float = 30.0
    poll_interval: float = 0.2
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    concurrency: int = 1
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    # PostgreSQL, while the LISTEN connection is up: an enqueue anywhere wakes an idle
    # worker at once, so the poll is only a safety net (and a wait until the next retry
    # or lease expiry the worker knows of, which no notification announces).
    safety_poll_seconds: float = 1.0
    listen: bool = True  # False: poll only, as on SQLite (the bench compares the two)
    # Retention (store/prune.py): this often, one process of all at a time; 0: never (the CLI's ``prune``).
    prune_interval_seconds: float = 0.0
    prune_after_days: float = 30.0
    prune_batch_size: int = 500


def worker_config(settings: Settings, concurrency: int = 1) -> WorkerConfig:
    return WorkerConfig(
        lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval,
        retry_base_seconds=settings.retry_base_seconds,
        retry_max_seconds=settings.retry_max_seconds,
        concurrency=concurrency,
        prune_interval_seconds=settings.prune_interval_seconds,
        prune_after_days=settings.prune_after_days,
        prune_batch_size=settings.prune_batch_size,
        notify=NotifyConfig(
            allow_private=settings.allow_private_notify_urls,
            max_attempts=settings.notify_max_attempts,
            retry_base_seconds=settings.notify_retry_base_seconds,
        ),
    )


def _log_failure(what: str, exc: Exception) -> None:
    """An outage is one line per try (it is expected, and retried); anything else, the traceback."""
    if database_outage(exc):
        log.warning("%s: database unreachable: %s", what, exc)
    else:
        log.exception(what)


def describe_error(exc: BaseException, stage: str) -> str:
    """The readable one-liner stored on the job ('enriching_contacts: TimeoutError: …')."""
    text = str(exc).strip() or type(exc).__name__
    return f"{stage}: {type(exc).__name__}: {text}"[:2000]


@dataclass
class Worker:
    """Runs the jobs of ``kinds`` (and only those: it claims no job it has no handler for).

    Assembled with the configured kinds by ``prospectpro.bootstrap.build_worker``.
    """

    db: Database
    kinds: Iterable[JobKind] | Mapping[str, JobKind]
    config: WorkerConfig = field(default_factory=WorkerConfig)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self._kinds = kind_registry(self.kinds)
        self._kind_names = frozenset(self._kinds)
        self._stop = threading.Event()
        self._leases_end = threading.Event()  # set by ``stop`` once no slot runs a job any more
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._runs: set[JobRun] = set()  # claimed and not yet given back: running, or ready to start
        self._runs_lock = threading.Lock()
        # Slots hand claimed jobs to each other here: claimed for an idle slot, not yet started.
        self._slots = threading.Condition()
        self._ready: deque[JobRun] = deque()
        self._idle = 0  # slots not running a job
        self._claiming = False  # one slot claims for all idle ones at a time
        self._found_none = False  # the last claim came back empty: ask the cheap read first
        self._unsubscribe = self.db.notifier.subscribe(lambda _job_id: self._wake.set())
        self._listener: listen.PgListener | None = None
        self._unlisten: list[object] = []

    # -- lifecycle -------------------------------------------------------
    def start(self) -> Worker:
        self._register()
        self._listener = listen.acquire(self.db) if self.config.listen else None
        if self._listener is not None:
            wake = self._wake.set
            self._unlisten = [self._listener.on_job(lambda _job_id: wake()), self._listener.on_connect(wake)]
        self._idle = self.config.concurrency
        for slot in range(self.config.concurrency):
            self._spawn(self._slot_loop, f"worker-slot-{slot}")
        self._spawn(self._lease_loop, "lease-heartbeat")
        self._spawn(self._registry_loop, "worker-registry")
        self._spawn(self._notify_loop, "worker-webhooks")
        if self.config.prune_interval_seconds > 0:
            self._spawn(self._prune_loop, "worker-prune")
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop claiming; running jobs go back to the queue at their next checkpoint."""
        self._stop.set()
        self._wake.set()
        with self._runs_lock:
            for run in self._runs:
                run.stopping.set()
        with self._slots:
            self._slots.notify_all()
        self._give_back_unstarted()  # now, while the heartbeat still holds their leases
        slots = self._threads[: self.config.concurrency]  # started first (``start``)
        for thread in slots:
            thread.join(timeout)
        self._give_back_unstarted()  # any a claim in flight brought in meanwhile
        # The leases are renewed until the last job has been given back or ended.
        self._leases_end.set()
        for thread in self._threads[len(slots) :]:
            thread.join(timeout)
        self._unsubscribe()
        for unlisten in self._unlisten:
            unlisten()  # type: ignore[operator]
        listen.release(self.db, self._listener)
        self._listener = None
        self._unregister()

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    # -- registry (who is alive: /healthz, the CLI's "is a worker running?") --
    def _register(self) -> None:
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(delete(workers).where(workers.c.id == self.worker_id))
            conn.execute(
                workers.insert().values(
                    id=self.worker_id,
                    hostname=socket.gethostname(),
                    pid=os.getpid(),
                    concurrency=self.config.concurrency,
                    started_at=now,
                    last_seen=now,
                )
            )

    def _unregister(self) -> None:
        try:
            with self.db.write() as conn:
                conn.execute(delete(workers).where(workers.c.id == self.worker_id))
        except Exception:  # a stopping worker must not fail on its way out
            log.exception("could not unregister worker %s", self.worker_id)

    def _registry_loop(self) -> None:
        interval = max(0.5, self.config.lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                with self.db.write() as conn:
                    conn.execute(workers.update().where(workers.c.id == self.worker_id).values(last_seen=utcnow()))
            except Exception as exc:
                _log_failure("worker heartbeat failed", exc)

    def _notify_loop(self) -> None:
        deliveries = Deliveries(self.db, self.config.notify)  # its own threads: a slow receiver holds up no one
        try:
            while not self._stop.wait(max(self.config.poll_interval, 0.2)):
                try:
                    deliveries.poll()
                except Exception as exc:
                    _log_failure("webhook delivery failed; will retry", exc)
        finally:
            deliveries.close()  # lets the deliveries in flight finish (each is bounded by its timeout)

    def _prune_loop(self) -> None:
        while not self._stop.wait(self.config.prune_interval_seconds):
            try:
                prune(self.db, older_than_days=self.config.prune_after_days, batch_size=self.config.prune_batch_size)
            except Exception as exc:
                _log_failure("pruning failed; will try again next interval", exc)

    # -- running jobs ----------------------------------------------------
    def _slot_loop(self) -> None:
        while not self._stop.is_set():
            run = self._next_run()
            if run is None:
                continue
            try:
                self._run(run)
            except Exception:  # a slot must outlive any job; the lease expiry recovers the job
                log.exception("job %s: worker error", run.lease.job_id)
            finally:
                with self._runs_lock:
                    self._runs.discard(run)
                with self._slots:
                    self._idle += 1

    def _next_run(self) -> JobRun | None:
        """A job for this slot: one another slot claimed for it, or one it claims (with any for the other idle slots).

        None after waiting for work (the caller looks again).
        """
        with self._slots:
            while self._claiming and not self._ready and not self._stop.is_set():
                self._slots.wait(1.0)  # the claiming slot brings one for this slot too, if it finds enough
            if self._stop.is_set():
                return None
            if self._ready:
                self._idle -= 1
                return self._ready.popleft()
            self._claiming = True
            want = self._idle  # nothing is ready: every idle slot, this one included, can start a job now
        claimed: list[tuple[Lease, Job]] = []
        try:
            claimed = self._claim(want)
            if not claimed:
                # Still the claiming slot: the other idle slots wait for this one instead of
                # each asking the database. A job submitted in this process wakes it at once.
                self._wake.wait(self._idle_wait())
                self._wake.clear()
        finally:
            with self._slots:
                self._claiming = False
                runs = [JobRun(db=self.db, lease=lease, job=job) for lease, job in claimed]
                with self._runs_lock:
                    self._runs.update(runs)
                    if self._stop.is_set():
                        for run in runs:
                            run.stopping.set()
                mine = runs[0] if runs else None
                if mine is not None:
                    self._idle -= 1
                self._ready.extend(runs[1:])
                self._slots.notify_all()
        return mine

    def _claim(self, limit: int) -> list[tuple[Lease, Job]]:
        """Claim up to ``limit`` jobs; [] when there are none or the claim failed (after a pause)."""
        try:
            if self.db.is_sqlite and self._found_none and not has_claimable(self.db, kinds=self._kind_names):
                # An idle worker reads first, so that it does not queue on SQLite's
                # write lock; one that just found work claims straight away.
                return []
            claimed = claim_many(self.db, self.worker_id, self.config.lease_seconds, limit, kinds=self._kind_names)
        except Exception as exc:
            _log_failure("claim failed; retrying", exc)
            self._stop.wait(min(5.0, self.config.lease_seconds / 3))
            return []
        self._found_none = not claimed
        return claimed

    def _idle_wait(self) -> float:
        """How long an idle claiming slot sleeps unless woken: the poll, or, while listening, until work is known due."""
        listener = self._listener
        if listener is None or not listener.connected.is_set():
            return self.config.poll_interval
        try:
            due = next_claimable_at(self.db, kinds=self._kind_names)
        except Exception as exc:
            _log_failure("could not read when work is due", exc)
            return self.config.poll_interval
        wait = self.config.safety_poll_seconds
        if due is not None:
            wait = min(wait, max(0.0, (due - utcnow()).total_seconds()) + 0.005)
        # Never busier than the plain poll, even if the clock says a job is due right now
        # (another worker may hold its row without having claimed it yet).
        return max(wait, min(self.config.poll_interval, 0.05))

    def _give_back_unstarted(self) -> None:
        """Jobs claimed for a slot that never started them go back to the queue (the attempt uncounted)."""
        with self._slots:
            ready, self._ready = list(self._ready), deque()
        for run in ready:
            with self._runs_lock:
                self._runs.discard(run)
            self._quietly(run, functools.partial(release, self.db, run.lease))

    def _run(self, run: JobRun) -> None:
        if self._stop.is_set():
            run.stopping.set()
        self._attempt(run)

    def _attempt(self, run: JobRun) -> None:
        stalled, seq = 0, run.job.event_seq  # resumptions since the job last changed
        handler = self._kinds[run.job.kind].handler  # claimed by kind: it has one
        while True:
            try:
                handler(run)
                return
            except (LeaseLost, JobFinished) as exc:
                log.warning("job %s: stopped writing: %s", run.lease.job_id, exc)
                return
            except WorkerStopping:
                self._quietly(run, lambda: release(self.db, run.lease))
                return
            except Exception as exc:
                if database_outage(exc):
                    stalled = stalled + 1 if run.job.event_seq == seq else 1
                    seq = run.job.event_seq
                    if stalled <= MAX_STALLED_RESUMES:
                        # The database's failure, not the job's: wait until it
                        # answers, then go on from the last checkpoint.
                        log.warning("job %s: database unreachable (%s); waiting to resume", run.lease.job_id, exc)
                        if not self._reconnect(run):
                            return
                        log.warning("job %s: database is back; resuming the attempt", run.lease.job_id)
                        continue
                self._record_failure(run, exc)
                return

    def _record_failure(self, run: JobRun, exc: Exception) -> None:
        log.warning("job %s attempt failed:\n%s", run.lease.job_id, traceback.format_exc())
        error = describe_error(exc, run.job.current_stage)
        self._quietly(
            run,
            lambda: record_failure(
                self.db,
                run.lease,
                error,
                base=self.config.retry_base_seconds,
                cap=self.config.retry_max_seconds,
            ),
        )

    def _quietly(self, run: JobRun, action: object) -> None:
        """Record an attempt's outcome, retrying while the database is away and the lease lasts."""
        try:
            run.persist(action)  # type: ignore[arg-type]
        except (LeaseLost, JobFinished) as exc:
            log.warning("could not record the outcome: %s", exc)
        except Exception as exc:
            if not database_outage(exc):
                raise
            log.warning("job %s: could not record the outcome, the database is unreachable: %s", run.lease.job_id, exc)

    def _renew(self, run: JobRun) -> bool:
        """Extend the lease; False when it was taken over. Raises when the database does not answer."""
        started = time.monotonic()
        cancel = renew_lease(self.db, run.lease, self.config.lease_seconds)
        if cancel is None:
            run.lease_lost.set()
            return False
        run.lease_renewed(started + self.config.lease_seconds - CLOCK_MARGIN_SECONDS)
        if cancel:
            run.cancel_seen.set()
        return True

    def _reconnect(self, run: JobRun) -> bool:
        """Wait until the database renews the lease; False when the lease is gone or the worker is stopping.

        A renewal that succeeds, even after the lease could have expired,
        proves no other worker took the job: it is still this worker's.
        """
        delay = 0.05
        while True:
            try:
                return self._renew(run)
            except Exception as exc:
                if not database_outage(exc):
                    raise
            if run.stopping.is_set() and time.monotonic() > run.lease_valid_until:
                return False  # nothing to hand back to: the lease has run out anyway
            if run.lease_lost.wait(delay):
                return False
            delay = min(2 * delay, 1.0)

    def _reap(self) -> None:
        """PostgreSQL: end the jobs whose worker died in their last attempt, which claims there skip.

        (A claim that finds fewer jobs than it asked for ends them too; this is for a queue that stays busy.)
        """
        if self.db.is_sqlite:  # there a claim ends them itself
            return
        try:
            reap_spent(self.db, kinds=self._kind_names)
        except Exception as exc:
            _log_failure("could not end the jobs of dead workers; will retry", exc)

    def _lease_loop(self) -> None:
        """Renew every lease this worker holds, in one statement, every third of the lease's length."""
        interval = self.config.lease_seconds / 3
        wait = interval
        while not self._leases_end.wait(wait):
            self._reap()
            with self._runs_lock:
                runs = [run for run in self._runs if not run.lease_lost.is_set()]
            if not runs:
                wait = interval
                continue
            started = time.monotonic()
            try:
                held = renew_leases(self.db, [run.lease for run in runs], self.config.lease_seconds)
            except Exception as exc:
                # Try again soon: the leases must be renewed as soon as the database is back.
                log.warning("lease renewal failed; retrying: %s", exc)
                wait = min(interval, 0.5)
                continue
            wait = interval
            for run in runs:
                cancel = held.get(run.lease)
                if cancel is None:
                    run.lease_lost.set()
                    continue
                run.lease_renewed(started + self.config.lease_seconds - CLOCK_MARGIN_SECONDS)
                if cancel:
                    run.cancel_seen.set()


def live_workers(db: Database, within_seconds: float) -> list[dict[str, object]]:
    cutoff = utcnow() - timedelta(seconds=within_seconds)
    with db.read() as conn:
        rows = conn.execute(select(workers).where(workers.c.last_seen >= cutoff)).all()
    return [dict(r._mapping) for r in rows]
