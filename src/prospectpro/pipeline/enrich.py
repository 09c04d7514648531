"""Stage 4: enrich each selected candidate, concurrently, one checkpoint per candidate.

Enrichers run in threads, at most ``concurrency`` candidates at once (the
providers' own clients enforce their rate limits); results are written one
transaction per candidate as they complete, so a resumed attempt skips every
candidate already written. Cancellation is checked between candidates and
while waiting for them.

Each step has a deadline: a provider call that hangs fails the attempt (a
TimeoutError, retried like any failing step) instead of holding the job, and
its lease, forever. A thread cannot be killed, so the hung one is abandoned:
each candidate runs in its own daemon thread, which nothing ever joins (a
ThreadPoolExecutor's threads are joined at interpreter exit, so one hung call
would keep a stopping worker from exiting).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import TypeVar

from sqlalchemy import Connection

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Stage
from prospectpro.domain.scoring import score_business
from prospectpro.domain.tiers import money_text
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers.protocols import PASS_THROUGH, CallContext, Enricher, Enrichment, Gate
from prospectpro.store.candidates import enrichment_progress, pending_enrichment, record_enrichment
from prospectpro.store.ledger import job_spent

T = TypeVar("T")
_CHECK_SECONDS = 0.5  # how often a wait for slow steps looks for a cancel or a stop


class StepClock:
    """Which step a candidate's thread is in and since when: what the step deadline measures."""

    def __init__(self) -> None:
        self.step: tuple[str, float] = ("start", time.monotonic())  # replaced whole: read without a lock

    def enter(self, name: str) -> None:
        self.step = (name, time.monotonic())


def enrich_business(
    business: Business, enrichers: Sequence[Enricher], ctx: CallContext, clock: StepClock | None = None
) -> Enrichment:
    found = Enrichment()
    for enricher in enrichers:
        if clock is not None:
            clock.enter(enricher.name)
        found = enricher.enrich(business, found, ctx)
    return found


def _in_thread(fn: Callable[[], T]) -> Future[T]:
    """``fn()`` in a daemon thread of its own: if it hangs, it is abandoned, never joined."""
    future: Future[T] = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the waiting stage
            future.set_exception(exc)

    threading.Thread(target=target, name="enrich", daemon=True).start()
    return future


def run(
    run: JobRun,
    enrichers: Sequence[Enricher],
    concurrency: int,
    *,
    step_timeout: float = 120.0,
    gate: Gate = PASS_THROUGH,
) -> None:
    stage.start(run, Stage.enriching_contacts)
    job_id = run.lease.job_id
    with run.db.read() as conn:
        todo = pending_enrichment(conn, job_id)
    # The need as this attempt starts: the selected leads an earlier attempt did not enrich.
    ctx = stage.call_context(run, stage.config(run), wanted=len(todo), gate=gate)
    _enrich_all(run, todo, enrichers, ctx, concurrency, step_timeout)
    with run.db.read() as conn:
        _, done, _ = enrichment_progress(conn, job_id)
        spent = job_spent(conn, job_id)  # the job's whole spend so far (discovery's too), as the ledger has it
    stage.finish(
        run, Stage.enriching_contacts, metrics={"leads_enriched": done, "total_cost": money_text(spent)}
    )


def _enrich_all(
    run: JobRun,
    todo: list[tuple[int, Business]],
    enrichers: Sequence[Enricher],
    ctx: CallContext,
    concurrency: int,
    step_timeout: float,
) -> None:
    queue = iter(todo)
    running: dict[Future[Enrichment], tuple[int, Business, StepClock]] = {}

    def start(items: list[tuple[int, Business]]) -> None:
        for candidate_id, business in items:
            clock = StepClock()
            future = _in_thread(partial(enrich_business, business, enrichers, ctx, clock))
            running[future] = (candidate_id, business, clock)

    start(_take(queue, concurrency))
    while running:
        now = time.monotonic()
        first_deadline = min(clock.step[1] for _, _, clock in running.values()) + step_timeout
        timeout = max(0.0, min(first_deadline - now, _CHECK_SECONDS))
        completed, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in completed:
            candidate_id, business, _ = running.pop(future)
            _record(run, candidate_id, business, future.result())
        _check_deadlines(running.values(), step_timeout)
        run.checkpoint()
        start(_take(queue, len(completed)))


def _check_deadlines(running: Iterable[tuple[int, Business, StepClock]], step_timeout: float) -> None:
    now = time.monotonic()
    for _, business, clock in running:
        step, since = clock.step
        if now - since > step_timeout:
            raise TimeoutError(f"enrichment step {step!r} took over {step_timeout:g}s for {business.name!r}")


def _take(queue: object, n: int) -> list[tuple[int, Business]]:
    taken = []
    for _ in range(n):
        item = next(queue, None)  # type: ignore[call-overload]
        if item is None:
            break
        taken.append(item)
    return taken


def _record(run: JobRun, candidate_id: int, business: Business, found: Enrichment) -> None:
    score = score_business(business, email=found.email, email_status=found.email_status)
    job_id = run.lease.job_id

    def build(conn: Connection) -> Change:
        record_enrichment(
            conn,
            job_id,
            candidate_id,
            enrichment=found.to_dict(),
            score=score.total,
            breakdown=score.breakdown,
            cost=found.cost,
        )
        total, done, _ = enrichment_progress(conn, job_id)
        return Change(
            kind="lead_enriched",
            stage=Stage.enriching_contacts,
            progress=Stage.enriching_contacts.progress_at(done / total if total else 1.0),
            metrics={"leads_enriched": done, "total_cost": money_text(job_spent(conn, job_id))},
            data={
                "lead": {
                    "candidate_id": candidate_id,
                    "business_name": business.name,
                    "confidence_score": score.total,
                    "email_found": found.email is not None,
                },
                "done": done,
                "total": total,
            },
        )

    run.change(build)
