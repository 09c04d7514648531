"""Every query on ``job_candidates``: the businesses a campaign job works on.

A candidate row belongs to one job, and a job to one owner: every function
here is scoped by ``job_id`` (or by candidate ids the caller read through
it), so whose rows a stage touches is decided by the job it runs.

The life of a row: discovery inserts it (``insert_candidates``), scoring
stores its score and whether it is selected (``store_scores``), enrichment
records what it found (``record_enrichment``), and storing the results reads
the enriched ones (``enriched_for_leads``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from prospectpro.domain.business import Business
from prospectpro.domain.dedup import fingerprint
from prospectpro.store.schema import job_candidates
from prospectpro.store.upsert import insert_ignore

_c = job_candidates.c


@dataclass
class Candidate:
    """A candidate as the scoring stage decides on it (it sets the fields below ``business``)."""

    id: int
    position: int
    fingerprint: str
    business: Business
    score: int = 0
    breakdown: dict[str, int] | None = None
    qualified: bool = False
    selected: bool = False
    duplicate_of: int | None = None
    delivered_before: bool = False


@dataclass(frozen=True, slots=True)
class Enriched:
    """A selected candidate whose enrichment is recorded: what becomes a lead."""

    id: int
    fingerprint: str
    business: Business
    enrichment: dict[str, Any]
    score: int
    breakdown: dict[str, int]


def insert_candidates(conn: Connection, job_id: str, businesses: Sequence[Business]) -> None:
    """Store what discovery found, in its order; a business already stored for the job is kept as it was."""
    rows = [
        {
            "job_id": job_id,
            "source": b.source,
            "source_id": b.source_id,
            "position": position,
            "fingerprint": fingerprint(b),
            "business": b.to_dict(),
        }
        for position, b in enumerate(businesses)
    ]
    if rows:
        insert_ignore(conn, job_candidates, rows, ["job_id", "source", "source_id"])


def load_for_scoring(conn: Connection, job_id: str) -> list[Candidate]:
    """Every candidate of the job, in discovery order."""
    rows = conn.execute(
        select(_c.id, _c.position, _c.fingerprint, _c.business).where(_c.job_id == job_id).order_by(_c.position)
    ).all()
    return [
        Candidate(id=r.id, position=r.position, fingerprint=r.fingerprint, business=Business.from_dict(r.business))
        for r in rows
    ]


_SCORED_COLUMNS = ("business", "score", "breakdown", "qualified", "selected", "duplicate_of", "delivered_before")


def store_scores(conn: Connection, job_id: str, candidates: Iterable[Candidate]) -> None:
    """Write the scoring stage's decisions, one statement for all the job's candidates."""
    params = [
        {
            "cid": c.id,
            "v_business": c.business.to_dict(),
            "v_score": c.score,
            "v_breakdown": c.breakdown,
            "v_qualified": c.qualified,
            "v_selected": c.selected,
            "v_duplicate_of": c.duplicate_of,
            "v_delivered_before": c.delivered_before,
        }
        for c in candidates
    ]
    if not params:
        return
    stmt = (
        update(job_candidates)
        .where(_c.id == bindparam("cid"), _c.job_id == job_id)
        .values({name: bindparam(f"v_{name}") for name in _SCORED_COLUMNS})
    )
    conn.execute(stmt, params)


def pending_enrichment(conn: Connection, job_id: str) -> list[tuple[int, Business]]:
    """The selected candidates not enriched yet, best first: what an enriching attempt still has to do."""
    rows = conn.execute(
        select(_c.id, _c.business)
        .where(_c.job_id == job_id, _c.selected.is_(True), _c.enrich_state == "pending")
        .order_by(_c.score.desc(), _c.position)
    ).all()
    return [(row.id, Business.from_dict(row.business)) for row in rows]


def record_enrichment(
    conn: Connection,
    job_id: str,
    candidate_id: int,
    *,
    enrichment: Mapping[str, Any],
    score: int,
    breakdown: Mapping[str, int],
    cost: Decimal,
) -> None:
    """Mark one candidate enriched; a candidate already done (by an earlier attempt) is left as it is."""
    conn.execute(
        update(job_candidates)
        .where(_c.id == candidate_id, _c.job_id == job_id, _c.enrich_state == "pending")
        .values(enrich_state="done", enrichment=dict(enrichment), score=score, breakdown=dict(breakdown), cost=cost)
    )


def enrichment_progress(conn: Connection, job_id: str) -> tuple[int, int, Decimal]:
    """(selected, enriched, their cost so far) for the job."""
    total, done, cost = conn.execute(
        select(
            func.count(),
            func.count().filter(_c.enrich_state == "done"),
            func.coalesce(func.sum(_c.cost), 0),
        ).where(_c.job_id == job_id, _c.selected.is_(True))
    ).one()
    return total, done, Decimal(str(cost))


def enriched_for_leads(conn: Connection, job_id: str, min_score: int) -> list[Enriched]:
    """The selected, enriched candidates still scoring ``min_score`` or more: the job's leads."""
    rows = conn.execute(
        select(_c.id, _c.fingerprint, _c.business, _c.enrichment, _c.score, _c.breakdown).where(
            _c.job_id == job_id, _c.selected.is_(True), _c.enrich_state == "done", _c.score >= min_score
        )
    ).all()
    return [
        Enriched(
            id=r.id,
            fingerprint=r.fingerprint,
            business=Business.from_dict(r.business),
            enrichment=dict(r.enrichment or {}),
            score=r.score,
            breakdown=dict(r.breakdown or {}),
        )
        for r in rows
    ]


def mark_delivered_before(conn: Connection, job_id: str, candidate_ids: Sequence[int]) -> None:
    """Unselect candidates another campaign of the owner delivered meanwhile."""
    if candidate_ids:
        conn.execute(
            update(job_candidates)
            .where(_c.job_id == job_id, _c.id.in_(list(candidate_ids)))
            .values(selected=False, delivered_before=True)
        )


def total_cost(conn: Connection, job_id: str) -> Decimal:
    """What enriching the job's candidates cost, all of them."""
    cost = conn.execute(select(func.coalesce(func.sum(_c.cost), 0)).where(_c.job_id == job_id)).scalar_one()
    return Decimal(str(cost))
