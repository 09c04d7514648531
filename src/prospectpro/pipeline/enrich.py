"""Stage 4: enrich each selected candidate, concurrently, one checkpoint per candidate.

Enrichers run in a thread pool (the providers' own clients enforce their
rate limits); results are written one transaction per candidate as they
complete, so a resumed attempt skips every candidate already written.
Cancellation is checked between candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from decimal import Decimal

from sqlalchemy import Connection, and_, func, select, update

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Stage
from prospectpro.domain.scoring import score_business
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers.protocols import Enricher, Enrichment
from prospectpro.store.schema import job_candidates


def enrich_business(business: Business, enrichers: Sequence[Enricher]) -> Enrichment:
    found = Enrichment()
    for enricher in enrichers:
        found = enricher.enrich(business, found)
    return found


def _progress(conn: Connection, job_id: str) -> tuple[int, int, Decimal]:
    selected = and_(job_candidates.c.job_id == job_id, job_candidates.c.selected.is_(True))
    total, done, cost = conn.execute(
        select(
            func.count(),
            func.count().filter(job_candidates.c.enrich_state == "done"),
            func.coalesce(func.sum(job_candidates.c.cost), 0),
        ).where(selected)
    ).one()
    return total, done, Decimal(str(cost))


def run(run: JobRun, enrichers: Sequence[Enricher], concurrency: int) -> None:
    stage.start(run, Stage.enriching_contacts)
    job_id = run.lease.job_id
    with run.db.read() as conn:
        pending = conn.execute(
            select(job_candidates.c.id, job_candidates.c.business)
            .where(
                job_candidates.c.job_id == job_id,
                job_candidates.c.selected.is_(True),
                job_candidates.c.enrich_state == "pending",
            )
            .order_by(job_candidates.c.score.desc(), job_candidates.c.position)
        ).all()
    todo = [(row.id, Business.from_dict(row.business)) for row in pending]
    _enrich_all(run, todo, enrichers, concurrency)
    with run.db.read() as conn:
        total, done, cost = _progress(conn, job_id)
    stage.finish(
        run, Stage.enriching_contacts, metrics={"leads_enriched": done, "total_cost": float(cost)}
    )


def _enrich_all(
    run: JobRun, todo: list[tuple[int, Business]], enrichers: Sequence[Enricher], concurrency: int
) -> None:
    queue = iter(todo)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="enrich") as pool:
        running: dict[Future[Enrichment], tuple[int, Business]] = {}
        try:
            for candidate_id, business in _take(queue, concurrency):
                running[pool.submit(enrich_business, business, enrichers)] = (candidate_id, business)
            while running:
                completed, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in completed:
                    candidate_id, business = running.pop(future)
                    _record(run, candidate_id, business, future.result())
                run.checkpoint()
                for candidate_id, business in _take(queue, len(completed)):
                    running[pool.submit(enrich_business, business, enrichers)] = (candidate_id, business)
        finally:
            for future in running:
                future.cancel()


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
        conn.execute(
            update(job_candidates)
            .where(job_candidates.c.id == candidate_id, job_candidates.c.enrich_state == "pending")
            .values(
                enrich_state="done",
                enrichment=found.to_dict(),
                score=score.total,
                breakdown=dict(score.breakdown),
                cost=found.cost,
            )
        )
        total, done, cost = _progress(conn, job_id)
        return Change(
            kind="lead_enriched",
            stage=Stage.enriching_contacts,
            progress=Stage.enriching_contacts.progress_at(done / total if total else 1.0),
            metrics={"leads_enriched": done, "total_cost": float(cost)},
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
