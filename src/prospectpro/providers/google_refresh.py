"""Google's content terms, the other half: clear Google-only values when they expire, re-fetch them on request.

``store.leads.clear_expired_google_fields`` empties a lead's values that only
Google gave once they are ``google_content_days`` old (each campaign job
starts with it, and ``prospectpro leads purge-expired``). ``prospectpro
leads refresh CAMPAIGN`` brings them back: a durable job of its own kind
(``google_refresh``) that asks Place Details (New) for each lead's place id
through the gate — quoted first (one request per lead, at the price table's
Place Details Enterprise price), budgeted, ledgered (a worker that dies
mid-way is taken over and pays for no place twice) — and writes Google's
values into the columns no lasting source (OSM, Overture) holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from prospectpro.config import Settings
from prospectpro.domain.business import LEAD_FIELDS, Business
from prospectpro.domain.campaign import Tier
from prospectpro.domain.normalize import format_phone, normalize_website, phone_e164
from prospectpro.domain.status import JobStatus
from prospectpro.gate.errors import OverBudget, ProviderError, ProviderErrorKind
from prospectpro.gate.prices import price
from prospectpro.jobs.kinds import JobKind
from prospectpro.jobs.model import Change, Job
from prospectpro.jobs.queue import NewJob, insert_job
from prospectpro.jobs.run import JobRun
from prospectpro.providers.google_places import DETAILS_PRICE, NAME, GooglePlacesSource, to_business
from prospectpro.providers.protocols import CallContext, Gate
from prospectpro.store.db import Database
from prospectpro.store.schema import leads

REFRESH_KIND = "google_refresh"


@dataclass(frozen=True)
class RefreshQuote:
    leads: int  # leads of the campaign with a Google place id: one Place Details request each
    unit: Decimal
    max_cost: Decimal


def google_place_id(sources: Sequence[str] | None) -> str | None:
    """The lead's Google place id, from its source references ("google:ChIJ…")."""
    for ref in sources or ():
        if str(ref).startswith(f"{NAME}:"):
            return str(ref).split(":", 1)[1]
    return None


def _google_leads(conn: Connection, owner_id: str, campaign_id: str) -> list[Any]:
    rows = conn.execute(
        select(leads.c.id, leads.c.sources, leads.c.field_sources)
        .where(leads.c.owner_id == owner_id, leads.c.campaign_id == campaign_id)
        .order_by(leads.c.id)
    ).all()
    return [r for r in rows if google_place_id(r.sources)]


def refresh_quote(db: Database, settings: Settings, owner_id: str, campaign_id: str) -> RefreshQuote:
    with db.read() as conn:
        count = len(_google_leads(conn, owner_id, campaign_id))
    unit = price(DETAILS_PRICE, settings.prices)
    return RefreshQuote(count, unit, unit * count)


def enqueue_refresh(db: Database, settings: Settings, owner_id: str, campaign_id: str, budget: Decimal) -> Job:
    """Queue the refresh of a campaign's Google values, spending at most ``budget``."""
    config = {"campaign_id": campaign_id, "budget_limit": str(budget)}
    with db.write() as conn:
        # Not a campaign job (campaign_id stays None): the campaign's own job and status are unchanged.
        return insert_job(conn, NewJob(owner_id=owner_id, config=config, max_attempts=settings.max_attempts,
                                       kind=REFRESH_KIND))


def lead_values(business: Business, column: str) -> Any:
    """A lead column's value from a Google record, as the storing stage writes it (pipeline.results.lead_row)."""
    if column == "business_name":
        return business.name
    if column == "address":
        return business.address
    if column == "phone":
        e164 = phone_e164(business.phone, business.country)
        return format_phone(e164) if e164 else business.phone
    if column == "website":
        return normalize_website(business.website) or business.website
    return getattr(business, LEAD_FIELDS[column][0])


def refreshed_columns(
    current: dict[str, Any], business: Business, fetched_at: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the column values to write, the lead's new field_sources): Google's value wherever no lasting
    source gave one — a column another source holds keeps it."""
    sources = dict(current)
    values: dict[str, Any] = {}
    stamp = business.fetched_at or fetched_at.isoformat()
    for column in LEAD_FIELDS:
        held = sources.get(column)
        if held and not str(held.get("source") or "").startswith(f"{NAME}:"):
            continue
        value = lead_values(business, column)
        if value in (None, ""):
            continue
        values[column] = value
        sources[column] = {"source": business.ref, "fetched_at": stamp}
    return values, sources


def run_refresh(run: JobRun, gate: Gate, settings: Settings) -> None:
    job = run.job
    campaign_id = str(job.config["campaign_id"])
    budget = Decimal(str(job.config.get("budget_limit", "0")))
    with run.db.read() as conn:
        rows = _google_leads(conn, job.owner_id, campaign_id)
    if job.status == JobStatus.processing and not job.checkpoint.get("started"):
        run.change(Change(kind="stage_started", stage="refreshing", progress=1, checkpoint={"started": True},
                          metrics={"leads": len(rows)}))
    ctx = CallContext(job_id=job.id, owner_id=job.owner_id, tier=Tier.professional, wanted=len(rows),
                      budget_limit=budget, gate=gate, campaign_id=campaign_id, lease_token=run.lease.token)
    source = GooglePlacesSource(settings)
    refreshed = gone = 0
    budget_exhausted = False
    failed: list[dict[str, str]] = []
    for n, row in enumerate(rows, start=1):
        run.checkpoint()
        place_id = google_place_id(row.sources)
        assert place_id is not None
        try:
            answer, fetched_at = source.details(ctx, place_id)
        except OverBudget:
            budget_exhausted = True
            break
        except ProviderError as exc:
            if exc.kind == ProviderErrorKind.bad_request:  # NOT_FOUND: the place is gone from Google
                gone += 1
                continue
            failed.append({"source": NAME, "reason": exc.reason})
            break
        expires = fetched_at + timedelta(days=settings.google_content_days)
        business = to_business(answer, fetched_at, expires)
        if business is None:
            gone += 1
            continue
        values, sources = refreshed_columns(dict(row.field_sources or {}), business, fetched_at)
        refreshed += 1

        def write(conn: Connection, lead_id: int = row.id, values: dict[str, Any] = values,
                  sources: dict[str, Any] = sources, expires: datetime = expires) -> None:
            google = any(str(s.get("source") or "").startswith(f"{NAME}:") for s in sources.values())
            conn.execute(
                update(leads)
                .where(leads.c.id == lead_id)
                .values(**values, field_sources=sources, google_expires_at=expires if google else None)
            )

        run.change(
            Change(kind="lead_refreshed", progress=min(99, math.floor(100 * n / max(len(rows), 1))),
                   data={"lead_id": row.id, "place_id": place_id}),
            write=write,
        )
    metrics = {"refreshed": refreshed, "gone": gone, "budget_exhausted": budget_exhausted, "failed_sources": failed}
    run.change(Change(kind="completed", status=JobStatus.completed, stage="finished", progress=100, metrics=metrics))


def refresh_kind(gate: Gate, settings: Settings) -> JobKind:
    return JobKind(REFRESH_KIND, lambda run: run_refresh(run, gate, settings))
