"""Stage 3: score every candidate, merge duplicates, skip what was delivered
before, and select the best ``max_results`` for enrichment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Stage
from prospectpro.domain.scoring import score_business
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.store.schema import delivered_businesses, job_candidates


@dataclass
class Candidate:
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


def load_candidates(conn: Connection, job_id: str) -> list[Candidate]:
    rows = conn.execute(
        select(job_candidates).where(job_candidates.c.job_id == job_id).order_by(job_candidates.c.position)
    ).all()
    return [
        Candidate(id=r.id, position=r.position, fingerprint=r.fingerprint, business=Business.from_dict(r.business))
        for r in rows
    ]


def delivered_keys(conn: Connection, owner_id: str, campaign_id: str, keys: set[str]) -> set[str]:
    """Fingerprints this owner already received from another campaign.

    What a campaign running at the same time delivers after this read is
    caught when the leads are stored (``results.claim_deliveries``).
    """
    found: set[str] = set()
    ordered = sorted(keys)
    table = delivered_businesses
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        found.update(
            conn.execute(
                select(table.c.fingerprint).where(
                    table.c.owner_id == owner_id, table.c.campaign_id != campaign_id, table.c.fingerprint.in_(chunk)
                )
            ).scalars()
        )
    return found


def select_candidates(
    candidates: list[Candidate], *, min_score: int, max_results: int, delivered: set[str]
) -> dict[str, int]:
    """Decide, in memory, which candidates become leads; returns the counts for the metrics."""
    by_key: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_key.setdefault(c.fingerprint, []).append(c)
    primaries: list[Candidate] = []
    for group in by_key.values():
        merged = group[0].business
        for other in group[1:]:
            merged = merged.merged_with(other.business)
        score = score_business(merged)
        primary = group[0]
        primary.business, primary.score, primary.breakdown = merged, score.total, dict(score.breakdown)
        for other in group[1:]:
            other.duplicate_of = primary.id
            other_score = score_business(other.business)
            other.score, other.breakdown = other_score.total, dict(other_score.breakdown)
        primaries.append(primary)
    below = 0
    eligible: list[Candidate] = []
    for c in primaries:
        c.delivered_before = c.fingerprint in delivered
        c.qualified = c.score >= min_score
        if not c.qualified:
            below += 1
        elif not c.delivered_before:
            eligible.append(c)
    eligible.sort(key=lambda c: (-c.score, c.position))
    for c in eligible[:max_results]:
        c.selected = True
    return {
        "qualified_leads": sum(c.qualified for c in primaries),
        "duplicates_merged": len(candidates) - len(primaries),
        "below_min_score": below,
        "delivered_skipped": sum(c.qualified and c.delivered_before for c in primaries),
        "selected_for_enrichment": min(len(eligible), max_results),
    }


_SCORED_COLUMNS = ("business", "score", "breakdown", "qualified", "selected", "duplicate_of", "delivered_before")


def run(run: JobRun) -> None:
    stage.start(run, Stage.scoring_businesses)
    config: dict[str, Any] = run.job.config
    job = run.job
    with run.db.read() as conn:
        candidates = load_candidates(conn, job.id)
        delivered = (
            set()
            if config.get("include_delivered")
            else delivered_keys(conn, job.owner_id, job.campaign_id, {c.fingerprint for c in candidates})
        )
    metrics = select_candidates(
        candidates, min_score=int(config["min_score"]), max_results=int(config["max_results"]), delivered=delivered
    )

    def write(conn: Connection) -> None:
        if not candidates:
            return
        stmt = (
            update(job_candidates)
            .where(job_candidates.c.id == bindparam("cid"))
            .values({name: bindparam(f"v_{name}") for name in _SCORED_COLUMNS})
        )
        conn.execute(
            stmt,
            [
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
            ],
        )

    stage.finish(run, Stage.scoring_businesses, metrics=metrics, write=write)
