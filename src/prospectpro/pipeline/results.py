"""Stage 5: turn enriched candidates into leads and finish the job, in one
transaction, so a job is never "completed" with half of its leads stored.

The same step ends a cancelled job: the leads enriched so far are kept.
"""

from __future__ import annotations

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
from prospectpro.store.schema import campaigns, job_candidates, leads
from prospectpro.store.upsert import upsert

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
        if final_status == JobStatus.cancelled:
            return Change(kind="cancelled", status=JobStatus.cancelled, metrics=metrics)
        return Change(
            kind="completed",
            status=JobStatus.completed,
            stage=Stage.finished,
            progress=100,
            metrics={**metrics, "summary": summary(count, requested)},
            checkpoint={Stage.storing_results.value: "done"},
        )

    run.change(build)


def summary(found: int, requested: int) -> str:
    if found >= requested:
        return f"Found {found} leads."
    return f"Found {found} of {requested} requested leads: the sources have no more that qualify."
