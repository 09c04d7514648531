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

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from prospectpro.domain.business import Business, lead_provenance
from prospectpro.domain.campaign import Stage
from prospectpro.domain.clock import utcnow
from prospectpro.domain.normalize import format_phone, normalize_website, phone_e164
from prospectpro.domain.status import JobStatus
from prospectpro.domain.tiers import money_text
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers.protocols import Enrichment
from prospectpro.store.campaigns import record_results
from prospectpro.store.candidates import enriched_for_leads, mark_delivered_before
from prospectpro.store.leads import claim_deliveries, lead_stats, store_leads
from prospectpro.store.ledger import job_budget_exhausted, job_provider_stats, job_spent

COST_PER_LEAD_STEP = Decimal("0.000001")  # a millionth of a dollar: Google's per-place cost is about $0.00175


def lead_row(business: Business, enrichment: Enrichment, score: int, breakdown: dict[str, int]) -> dict[str, Any]:
    e164 = phone_e164(business.phone, business.country)
    sources = list(business.sources)
    if enrichment.email_source and enrichment.email_source not in ("osm",):
        sources.append(enrichment.email_source)
    field_sources, google_expires_at = lead_provenance(business)  # every value names its source
    if enrichment.email and enrichment.email_source:
        field_sources["email"] = {"source": enrichment.email_source, "fetched_at": None}
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
        "rating": business.rating,
        "review_count": business.review_count,
        "field_sources": field_sources,
        "google_expires_at": google_expires_at,
        "email_source": enrichment.email_source if enrichment.email else None,
        "email_confidence": enrichment.email_confidence if enrichment.email else None,
        # Every address, phone and social link found (with sources), the steps run and skipped.
        "enrichment": enrichment.to_dict(),
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
        # What the job spent is what the ledger holds for it: every paid call goes through the gate.
        cost = job_spent(conn, job.id)
        record_results(conn, campaign_id, count, cost, now)
        metrics = money_metrics(
            job.metrics,
            leads=count,
            requested=requested,
            cost=cost,
            budget_exhausted=job_budget_exhausted(conn, job.id) or bool(job.metrics.get("budget_exhausted")),
            providers=job_provider_stats(conn, job.id),
            taken=len(taken),
        )
        metrics["avg_confidence"] = round(avg, 1) if avg is not None else None
        if taken:  # on top of those the scoring stage skipped
            metrics["delivered_skipped"] = int(job.metrics.get("delivered_skipped", 0)) + len(taken)
        if final_status == JobStatus.cancelled:
            return Change(kind="cancelled", status=JobStatus.cancelled, metrics=metrics)
        return Change(
            kind="completed",
            status=JobStatus.completed,
            stage=Stage.finished,
            progress=100,
            metrics={
                **metrics,
                "summary": summary(
                    count,
                    requested,
                    taken=len(taken),
                    budget=campaign.budget_limit if metrics["budget_exhausted"] else None,
                    skipped=metrics["skipped"],
                    businesses_found=_count(job.metrics.get("businesses_found")),
                    sources_asked=sources_asked(job.config, job.metrics),
                    failed_sources=metrics["failed_sources"],
                    min_score=campaign.min_score,
                ),
            },
            checkpoint={Stage.storing_results.value: "done"},
        )

    run.change(build)


def sources_asked(config: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[str]:
    """The sources a campaign asked: those it named, else those that answered or failed."""
    named = [str(s) for s in config.get("sources") or ()]
    counted = [str(s) for s in metrics.get("source_counts") or {}]
    failed = [str(f.get("source")) for f in metrics.get("failed_sources") or () if isinstance(f, Mapping)]
    return list(dict.fromkeys(named or [*counted, *failed]))


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _stage_count(metrics: Mapping[str, Any], name: str) -> int:
    """A count an earlier stage reported under ``skipped`` ({closed: 3}) or as ``{name}_skipped`` / ``{name}``."""
    skipped = metrics.get("skipped")
    if isinstance(skipped, Mapping) and name in skipped:
        return _count(skipped[name])
    return _count(metrics.get(f"{name}_skipped", metrics.get(name)))


def _stats_out(providers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ledger's per-provider counts, money as decimal strings."""
    return {
        name: {
            key: money_text(value) if isinstance(value, Decimal) or key in ("cost", "saved_cost") else value
            for key, value in stats.items()
        }
        for name, stats in providers.items()
    }


def money_metrics(
    earlier: Mapping[str, Any],
    *,
    leads: int,
    requested: int,
    cost: Decimal,
    budget_exhausted: bool,
    providers: Mapping[str, Mapping[str, Any]],
    taken: int = 0,
) -> dict[str, Any]:
    """The job's final metrics of money and of what was left out (their names: README, "Job metrics").

    ``earlier`` is the job's metrics as the earlier stages left them
    (discovery: failed_sources and its skipped counts; scoring: below_min_score,
    delivered_skipped).
    """
    skipped = {
        "delivered": _count(earlier.get("delivered_skipped")) + taken,
        "below_min_score": _count(earlier.get("below_min_score")),
        "closed": _stage_count(earlier, "closed"),
        # Candidates not enriched or not taken because of the budget (the contact steps count them).
        "over_budget": _stage_count(earlier, "over_budget"),
        "outside_area": _stage_count(earlier, "outside_area"),
    }
    return {
        "leads": leads,
        "total_cost": money_text(cost),
        "cost_per_lead": money_text((cost / leads).quantize(COST_PER_LEAD_STEP)) if leads else None,
        "budget_exhausted": budget_exhausted,
        "exhausted": leads < requested,
        "skipped": skipped,
        "providers": _stats_out(providers),
        "failed_sources": list(earlier.get("failed_sources") or []),
    }


def summary(
    found: int,
    requested: int,
    *,
    taken: int = 0,
    budget: Decimal | None = None,
    skipped: Mapping[str, Any] | None = None,
    businesses_found: int | None = None,
    sources_asked: Sequence[str] = (),
    failed_sources: Sequence[Mapping[str, Any]] = (),
    min_score: int | None = None,
) -> str:
    """The sentence a completed job ends with; ``budget``: the budget that stopped its paid calls.

    Given the job's ``skipped`` counts, a job with fewer leads than asked says
    what left the others out, with the counts and what to do about it; given
    ``businesses_found`` = 0, that no source has data for the area at all
    (which ones were asked and which of them failed, and why).
    """
    stopped = f"the budget of ${budget:,.2f} was reached" if budget is not None else ""
    failed = "; ".join(f"{f.get('source')} failed: {f.get('reason')}" for f in failed_sources)
    if found >= requested:
        return f"Found {found} leads" + (f"; {stopped}." if stopped else ".")
    head = f"Found {found} of {requested} requested leads"
    if businesses_found == 0 and skipped is not None:
        asked = ", ".join(sources_asked) or "the local places data"
        text = f"{head}: no data covers this area — none of the sources asked ({asked}) has such a business in it"
        return text + (f"; {failed}." if failed else ".")
    if skipped is None:
        if taken:
            return (
                f"{head}: {taken} more went to another of your campaigns "
                "running at the same time" + (f", and {stopped}." if stopped else ".")
            )
        if stopped:
            return f"{head}: {stopped}."
        return f"{head}: the sources have no more that qualify."
    reasons_order = ("delivered", "below_min_score", "closed", "over_budget", "outside_area")
    counts = {name: _count(skipped.get(name)) for name in reasons_order}
    below = f"scoring below the minimum of {min_score}" if min_score is not None else "scoring below the minimum"
    words = {
        "delivered": "already delivered to you by an earlier campaign",
        "below_min_score": below,
        "closed": "closed",
        "over_budget": "not enriched within the budget",
        "outside_area": "outside the area",
    }
    reasons = []
    for name, n in counts.items():
        if name == "delivered" and taken:  # these went to a campaign of the owner running at the same time
            earlier = n - taken
            if earlier > 0:
                reasons.append(f"{earlier} {words[name]}")
            reasons.append(f"{taken} went to another of your campaigns running at the same time")
        elif n:
            reasons.append(f"{n} {words[name]}")
    text = f"{head}: " + (stopped if stopped else "the sources have no more that qualify")
    if reasons:
        text += "; left out: " + ", ".join(reasons)
    text += "."  # a source that failed here is in failed_sources (and `jobs show`); the leads came from the others
    if counts["delivered"]:
        text += " To get the delivered ones again, run with --include-delivered (API: include_delivered)."
    if counts["below_min_score"] and min_score:
        text += " A lower --min-score (API: min_score) takes more of those below it."
    return text
