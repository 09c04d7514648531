"""Stage 2: find candidate businesses in every source the campaign uses, and store them for this job.

The sources used are the tier's, narrowed to those the campaign asked for
and those this pipeline has configured (``domain.tiers.choose_sources``): the
``base`` tier never reaches a paid source, whatever its budget.

A source that fails (a ``ProviderError``: bad key, breaker open, retries
used up) is named with its reason in ``failed_sources`` and in a
``source_failed`` event, and the campaign goes on with the others; what it
found before it failed is kept. A paid source stopped by the budget keeps
what it found, and the stage says ``budget_exhausted``.

The stage's metrics: ``businesses_found``, ``source_counts`` ({source:
businesses}), ``failed_sources`` ([{source, reason}]), ``budget_exhausted``
and ``skipped.closed`` / ``skipped.outside_area`` (what the sources dropped).
A source reports the last three through attributes of what it returns
(``providers.google_places.Discovered``); a plain list reports none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from prospectpro.domain.business import Business
from prospectpro.domain.campaign import CampaignConfig, Stage
from prospectpro.domain.clock import utcnow
from prospectpro.domain.tiers import DISCOVERY_SOURCES, SOURCE_NAMES, TIERS, money_text
from prospectpro.gate.errors import OverBudget, ProviderError
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.pipeline import stage
from prospectpro.providers.protocols import PASS_THROUGH, DiscoveryQuery, DiscoverySource, Gate
from prospectpro.store.candidates import insert_candidates
from prospectpro.store.leads import clear_expired_google_fields
from prospectpro.store.ledger import clear_expired_answers, job_spent

log = logging.getLogger(__name__)

SKIP_KEYS = ("closed", "outside_area")


def chosen_sources(
    campaign: CampaignConfig, sources: Sequence[DiscoverySource]
) -> tuple[list[DiscoverySource], list[dict[str, str]]]:
    """(the pipeline's sources this campaign uses, in the pipeline's order; the asked-for ones it cannot use).

    Submission already refused what the tier does not allow or the
    installation lacks; a worker configured differently (no key) names the
    source in ``failed_sources`` instead of failing the campaign.
    """
    allowed = TIERS[campaign.tier].sources
    # Sources named are all the campaign uses (domain.tiers.choose_sources made sure one discovers).
    asked = [s for s in campaign.sources if s in DISCOVERY_SOURCES] if campaign.sources is not None else None
    configured = {s.name for s in sources}
    use = [s for s in sources if _may_use(s, campaign, allowed, asked)]
    missing = [
        {"source": name, "reason": "not allowed by the tier" if name not in allowed else "not configured"}
        for name in asked or ()
        if name not in configured or name not in allowed
    ]
    return use, missing


def _may_use(
    source: DiscoverySource, campaign: CampaignConfig, allowed: Sequence[str], asked: Sequence[str] | None
) -> bool:
    if source.name in SOURCE_NAMES:
        return source.name in allowed and (asked is None or source.name in asked)
    # A source outside the shared names (a plug-in, a test's): free ones always run, paid ones as paid tiers do.
    return not getattr(source, "paid", False) or TIERS[campaign.tier].paid


def run(run: JobRun, sources: Sequence[DiscoverySource], gate: Gate = PASS_THROUGH) -> None:
    stage.start(run, Stage.discovering_businesses)
    housekeeping(run)
    campaign = stage.config(run)
    query = DiscoveryQuery(
        tags=campaign.tags, type_name=campaign.business_type, area=campaign.area, wanted=campaign.max_results
    )
    # Every source is told the whole need: what one found is not yet scored,
    # merged or checked against earlier deliveries, so it does not lower it.
    ctx = stage.call_context(run, campaign, wanted=campaign.max_results, gate=gate)
    use, failed = chosen_sources(campaign, sources)
    found: list[Business] = []
    per_source: dict[str, int] = {}
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    budget_exhausted = False
    for source in use:
        run.checkpoint()
        failure: ProviderError | None = None
        try:
            result: Sequence[Business] = source.discover(query, ctx)
        except OverBudget:
            result, budget_exhausted = [], True
        except ProviderError as exc:
            result, failure = [], exc
        businesses = list(result)
        per_source[source.name] = len(businesses)
        found.extend(businesses)
        for key, count in (getattr(result, "skipped", None) or {}).items():
            skipped[key] = skipped.get(key, 0) + int(count)
        if getattr(result, "budget_exhausted", False):
            budget_exhausted = True
        failure = failure or getattr(result, "failure", None)
        if failure is not None:
            failed.append({"source": source.name, "reason": failure.reason})
            run.change(
                Change(kind="source_failed", data={"source": source.name, "reason": failure.reason, "found": len(businesses)})
            )
    if budget_exhausted:
        run.change(Change(kind="budget_exhausted", data={"stage": Stage.discovering_businesses.value}))

    job_id = run.lease.job_id

    def write(conn: Connection) -> None:
        insert_candidates(conn, job_id, found)

    metrics: Mapping[str, Any] = {
        "businesses_found": len(found),
        "total_found": len(found),
        "source_counts": per_source,
        "failed_sources": failed,
        "budget_exhausted": budget_exhausted,
        "skipped": skipped,
    }
    with run.db.read() as conn:  # what the paid sources spent, shown as "cost so far" from here on
        metrics = {**metrics, "total_cost": money_text(job_spent(conn, job_id))}
    stage.finish(run, Stage.discovering_businesses, metrics=metrics, write=write)


def housekeeping(run: JobRun) -> None:
    """Clear Google-only lead values past their content-terms time (every owner's): each campaign job
    starts with it, so no worker keeps them longer than a campaign's start apart. Never fails the job."""
    try:
        with run.db.write() as conn:
            cleared = clear_expired_google_fields(conn, utcnow())
            clear_expired_answers(conn, "google", utcnow())
        if cleared:
            log.info("cleared the expired Google values of %d leads", cleared)
    except Exception:
        log.warning("could not clear expired Google values", exc_info=True)
