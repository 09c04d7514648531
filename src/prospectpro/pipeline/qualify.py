"""Stage 3: score every candidate, merge duplicates, skip what was delivered
before, and select the best ``max_results`` for enrichment."""

from __future__ import annotations

from sqlalchemy import Connection

from prospectpro.domain import identity
from prospectpro.domain.campaign import Stage
from prospectpro.domain.scoring import score_business
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.store.candidates import Candidate, load_for_scoring, store_scores
from prospectpro.store.leads import delivered_keys, delivered_source_refs


def select_candidates(
    candidates: list[Candidate], *, min_score: int, max_results: int, delivered: set[str]
) -> dict[str, int]:
    """Decide, in memory, which candidates become leads; returns the counts for the metrics."""
    # One business once across sources (domain/identity.py): a shared source id or fingerprint, or nearby
    # contact/name evidence between different sources.
    groups = identity.group([c.business for c in candidates], [c.fingerprint for c in candidates])
    primaries: list[Candidate] = []
    keys_of: dict[int, set[str]] = {}  # a primary's group: every fingerprint and source ref, for "delivered"
    for group in ([candidates[i] for i in g] for g in groups):
        keys_of[id(group[0])] = {k for c in group for k in (c.fingerprint, *c.business.sources)}
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
        c.delivered_before = not delivered.isdisjoint(keys_of[id(c)])
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


def run(run: JobRun) -> None:
    stage.start(run, Stage.scoring_businesses)
    campaign = stage.config(run)
    job = run.job
    with run.db.read() as conn:
        candidates = load_for_scoring(conn, job.id)
        # What a campaign running at the same time delivers after this read is
        # caught when the leads are stored (``results.claim_deliveries``).
        delivered = (
            set()
            if campaign.include_delivered
            else delivered_keys(conn, job.owner_id, stage.campaign_id(run), {c.fingerprint for c in candidates})
            | delivered_source_refs(
                conn, job.owner_id, stage.campaign_id(run), {r for c in candidates for r in c.business.sources}
            )
        )
    metrics = select_candidates(
        candidates, min_score=campaign.min_score, max_results=campaign.max_results, delivered=delivered
    )

    def write(conn: Connection) -> None:
        store_scores(conn, job.id, candidates)

    stage.finish(run, Stage.scoring_businesses, metrics=metrics, write=write)
