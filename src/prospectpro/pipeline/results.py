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

from typing import Any

from sqlalchemy import Connection

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Stage
from prospectpro.domain.clock import utcnow
from prospectpro.domain.normalize import format_phone, normalize_website, phone_e164
from prospectpro.domain.status import JobStatus
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers.protocols import Enrichment
from prospectpro.store.campaigns import record_results
from prospectpro.store.candidates import enriched_for_leads, mark_delivered_before, total_cost
from prospectpro.store.leads import claim_deliveries, lead_stats, store_leads


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
    campaign = stage.config(run)
    campaign_id = stage.campaign_id(run)
    requested = campaign.max_results

    def build(conn: Connection) -> Change:
        enriched = enriched_for_leads(conn, job.id, campaign.min_score)
        now = utcnow()
        fingerprints = {c.fingerprint for c in enriched}
        # Looked up in this module when called, so a test can hold every job here.
        won = claim_deliveries(conn, job.owner_id, campaign_id, fingerprints, now)
        taken = set() if campaign.include_delivered else fingerprints - won
        if taken:  # another campaign of this owner delivered these meanwhile
            mark_delivered_before(conn, job.id, [c.id for c in enriched if c.fingerprint in taken])
            enriched = [c for c in enriched if c.fingerprint not in taken]
        store_leads(
            conn,
            job.owner_id,
            campaign_id,
            [
                {
                    "dedup_key": c.fingerprint,
                    **lead_row(c.business, Enrichment.from_dict(c.enrichment), c.score, c.breakdown),
                }
                for c in enriched
            ],
            now,
        )
        count, avg = lead_stats(conn, job.owner_id, campaign_id)
        cost = total_cost(conn, job.id)
        record_results(conn, campaign_id, count, cost, now)
        metrics = {
            "leads": count,
            "avg_confidence": round(avg, 1) if avg is not None else None,
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
