"""Stage 5: turn enriched candidates into leads and finish the job, in one
transaction, so a job is never "completed" with half of its leads stored.

The same step ends a cancelled job: the leads enriched so far are kept.

It is also where a business becomes delivered to its owner: the transaction
takes a ``delivered_businesses`` row for each lead, and a campaign that finds
the row already taken (another campaign of the same owner, running at the
same time, stored that business first) skips the business. The scoring
stage skipped what was delivered before it ran; this closes the gap between
the two. Such a campaign ends with fewer leads than it selected, counted in
``delivered_skipped`` (and ``exhausted`` when below the requested number).
With ``include_delivered`` the campaign keeps every business and only
records the ones nobody had delivered yet.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import JobStatus, Stage
from prospectpro.domain.normalize import format_phone, normalize_website, phone_e164
from prospectpro.jobs.model import Change, utcnow
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers.protocols import Enrichment
from prospectpro.store.schema import campaigns, delivered_businesses, job_candidates, leads
from prospectpro.store.upsert import insert_ignore_returning, upsert

_LEAD_COLUMNS = (
    "business_name",
    "address",
    "phone",
    "website",
    "email",
    "email_status",
    "confidence_score",
    "score_breakdown",
    "sources",
    "category",
    "latitude",
    "longitude",
    "cost",
)


def lead_row(business: Business, enrichment: Enrichment, score: int, breakdown: dict[str, int]) -> dict[str, Any]:
    e164 = phone_e164(business.phone, business.country)
    sources = list(business.sources)
    if enrichment.email_source and enrichment.email_source not in ("osm",):
        sources.append(enrichment.email_source)
    return {
        "business_name": business.name,
        "address": business.address,
        "phone": format_phone(e164) if e164 else business.phone,
        "website": normalize_website(business.website) or business.website,
        "email": enrichment.email,
        "email_status": enrichment.email_status,
        "confidence_score": score,
        "score_breakdown": breakdown,
        "sources": sources,
        "category": business.category,
        "latitude": business.latitude,
        "longitude": business.longitude,
        "cost": enrichment.cost,
    }


_CLAIM_CHUNK = 500  # rows per INSERT: 2,000 parameters, well inside SQLite's limit


def claim_deliveries(
    conn: Connection, owner_id: str, campaign_id: str, fingerprints: set[str], now: datetime
) -> set[str]:
    """Record these businesses as delivered to the owner by this campaign; returns the ones nobody had before.

    On PostgreSQL a concurrent transaction inserting the same key waits for
    this one and then skips it (ON CONFLICT DO NOTHING), so of two campaigns
    exactly one gets each business. Keys go in sorted order, so two such
    transactions only ever wait for each other in one direction: no deadlock.
    """
    won: set[str] = set()
    ordered = sorted(fingerprints)
    for i in range(0, len(ordered), _CLAIM_CHUNK):
        rows = [
            {"owner_id": owner_id, "fingerprint": key, "campaign_id": campaign_id, "delivered_at": now}
            for key in ordered[i : i + _CLAIM_CHUNK]
        ]
        keys = ["owner_id", "fingerprint"]
        won.update(insert_ignore_returning(conn, delivered_businesses, rows, keys, "fingerprint"))
    return won


def store(run: JobRun, *, final_status: JobStatus) -> None:
    if final_status == JobStatus.completed:
        stage.start(run, Stage.storing_results)
    job = run.job
    min_score = int(job.config["min_score"])
    requested = int(job.config["max_results"])

    def build(conn: Connection) -> Change:
        rows = conn.execute(
            select(job_candidates).where(
                job_candidates.c.job_id == job.id,
                job_candidates.c.selected.is_(True),
                job_candidates.c.enrich_state == "done",
                job_candidates.c.score >= min_score,
            )
        ).all()
        now = utcnow()
        fingerprints = {r.fingerprint for r in rows}
        won = claim_deliveries(conn, job.owner_id, job.campaign_id, fingerprints, now)
        taken = set() if job.config.get("include_delivered") else fingerprints - won
        if taken:  # another campaign of this owner delivered these meanwhile
            conn.execute(
                update(job_candidates)
                .where(job_candidates.c.id.in_([r.id for r in rows if r.fingerprint in taken]))
                .values(selected=False, delivered_before=True)
            )
            rows = [r for r in rows if r.fingerprint not in taken]
        lead_rows = [
            {
                "campaign_id": job.campaign_id,
                "owner_id": job.owner_id,
                "dedup_key": r.fingerprint,
                "created_at": now,
                **lead_row(Business.from_dict(r.business), Enrichment.from_dict(r.enrichment), r.score, r.breakdown),
            }
            for r in rows
        ]
        if lead_rows:
            upsert(conn, leads, lead_rows, ["campaign_id", "dedup_key"], _LEAD_COLUMNS)
        count, avg = conn.execute(
            select(func.count(), func.avg(leads.c.confidence_score)).where(leads.c.campaign_id == job.campaign_id)
        ).one()
        cost = Decimal(
            str(
                conn.execute(
                    select(func.coalesce(func.sum(job_candidates.c.cost), 0)).where(
                        and_(job_candidates.c.job_id == job.id)
                    )
                ).scalar_one()
            )
        )
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == job.campaign_id)
            .values(results_count=count, total_cost=cost, updated_at=now)
        )
        metrics = {
            "leads": count,
            "avg_confidence": round(float(avg), 1) if avg is not None else None,
            "total_cost": float(cost),
            "exhausted": count < requested,
        }
        if taken:  # on top of those the scoring stage skipped
            metrics["delivered_skipped"] = int(job.metrics.get("delivered_skipped", 0)) + len(taken)
        if final_status == JobStatus.cancelled:
            return Change(kind="cancelled", status=JobStatus.cancelled, metrics=metrics)
        return Change(
            kind="completed",
            status=JobStatus.completed,
            stage=Stage.finished,
            progress=100,
            metrics={**metrics, "summary": summary(count, requested, taken=len(taken))},
            checkpoint={Stage.storing_results.value: "done"},
        )

    run.change(build)


def summary(found: int, requested: int, *, taken: int = 0) -> str:
    if found >= requested:
        return f"Found {found} leads."
    if taken:
        return (
            f"Found {found} of {requested} requested leads: {taken} more went to another of your campaigns "
            "running at the same time."
        )
    return f"Found {found} of {requested} requested leads: the sources have no more that qualify."
