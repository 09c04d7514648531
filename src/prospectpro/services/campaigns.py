"""Campaigns as the edges (CLI, API, web) use them: submit, look up, list leads.

Every read is scoped by owner: another owner's id is "not found", exactly
like an id that does not exist.
"""

from __future__ import annotations

import hashlib
import secrets
import math
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from prospectpro.config import Settings
from prospectpro.domain.business_types import BusinessType, resolve_business_type
from prospectpro.domain.campaign import CampaignRequest, JobStatus
from prospectpro.errors import Conflict, NotFound, RateLimited
from prospectpro.jobs.model import Job, iso, utcnow
from prospectpro.jobs.queue import insert_job
from prospectpro.places.locations import Area, resolve_location
from prospectpro.store.db import Database
from prospectpro.store.schema import campaigns, discovery_jobs, leads


_INSERT_CAMPAIGN = campaigns.insert()


@dataclass(frozen=True)
class Submission:
    job: Job
    campaign_id: str
    created: bool  # False when an idempotency key returned an earlier job


@dataclass(frozen=True)
class PreparedCampaign:
    """A request whose type and location resolved: it can be enqueued."""

    request: CampaignRequest
    business_type: BusinessType
    area: Area
    notify_url: str | None = None

    @property
    def digest(self) -> str:
        """What an Idempotency-Key must be reused with."""
        body = {
            **self.request.model_dump(mode="json"),
            "budget_limit": f"{self.request.budget_limit:.4f}",  # 5 and 5.00 are the same request
            "notify_url": self.notify_url,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def prepare_campaign(db: Database, request: CampaignRequest, *, notify_url: str | None = None) -> PreparedCampaign:
    """Everything that can reject a campaign, before anything is written."""
    return PreparedCampaign(
        request=request,
        business_type=resolve_business_type(request.business_type),
        area=resolve_location(db, request.location),
        notify_url=notify_url,
    )


def submit_campaign(
    db: Database,
    settings: Settings,
    owner_id: str,
    campaign: CampaignRequest | PreparedCampaign,
    *,
    idempotency_key: str | None = None,
    per_minute: int | None = None,
) -> Submission:
    """One short transaction: campaign + pending job + its first event.

    No provider is called here; resolving the type and location reads only
    the local places index.
    """
    prepared = campaign if isinstance(campaign, PreparedCampaign) else prepare_campaign(db, campaign)
    try:
        return _enqueue(db, settings, owner_id, prepared, idempotency_key, per_minute)
    except IntegrityError:
        # Two requests with one Idempotency-Key raced (PostgreSQL lets both
        # look before either inserts): the loser answers with the winner's job.
        if not idempotency_key:
            raise
        with db.read() as conn:
            earlier = _earlier(conn, owner_id, idempotency_key, prepared.digest)
        if earlier is None:
            raise
        return earlier


def _earlier(conn: Connection, owner_id: str, key: str, digest: str) -> Submission | None:
    row = conn.execute(
        select(discovery_jobs).where(discovery_jobs.c.owner_id == owner_id, discovery_jobs.c.idempotency_key == key)
    ).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise Conflict("this Idempotency-Key was already used with a different request")
    job = Job.from_row(row)
    return Submission(job=job, campaign_id=job.campaign_id, created=False)


def _enqueue(
    db: Database,
    settings: Settings,
    owner_id: str,
    prepared: PreparedCampaign,
    idempotency_key: str | None,
    per_minute: int | None,
) -> Submission:
    request, business_type, area = prepared.request, prepared.business_type, prepared.area
    digest = prepared.digest
    now = utcnow()
    with db.write() as conn:
        if idempotency_key:
            earlier = _earlier(conn, owner_id, idempotency_key, digest)
            if earlier is not None:
                return earlier
        if per_minute is not None:
            _check_rate(conn, owner_id, per_minute, now)
        campaign_id = str(uuid.uuid4())
        conn.execute(
            _INSERT_CAMPAIGN,
            {
                "id": campaign_id,
                "owner_id": owner_id,
                "business_type": business_type.name,
                "location": area.label,
                "max_results": request.max_results,
                "budget_limit": request.budget_limit,
                "min_score": request.min_score,
                "tier": request.tier.value,
                "include_delivered": request.include_delivered,
                "status": JobStatus.pending.value,
                "results_count": 0,
                "total_cost": 0,
                "created_at": now,
                "updated_at": now,
            },
        )
        config = {
            "business_type": business_type.name,
            "business_type_label": business_type.label,
            "tags": list(business_type.tags),
            "location": request.location,
            "area": area.to_dict(),
            "max_results": request.max_results,
            "budget_limit": str(request.budget_limit),
            "min_score": request.min_score,
            "tier": request.tier.value,
            "include_delivered": request.include_delivered,
        }
        if prepared.notify_url:
            config["notify"] = {"url": prepared.notify_url, "secret": secrets.token_hex(32)}
        job, _ = insert_job(
            conn,
            campaign_id=campaign_id,
            owner_id=owner_id,
            config=config,
            max_attempts=settings.max_attempts,
            idempotency_key=idempotency_key,
            request_hash=digest,
            now=now,
        )
    return Submission(job=job, campaign_id=campaign_id, created=True)


def _check_rate(conn: Connection, owner_id: str, per_minute: int, now: datetime) -> None:
    """Counted in the database, so the limit holds across API processes.

    One indexed probe for the per_minute-th newest job of the last minute:
    if it exists the limit is reached, and it says when a slot frees up.
    """
    since = now - timedelta(minutes=1)
    oldest_in_window = conn.execute(
        select(discovery_jobs.c.created_at)
        .where(discovery_jobs.c.owner_id == owner_id, discovery_jobs.c.created_at > since)
        .order_by(discovery_jobs.c.created_at.desc())
        .limit(1)
        .offset(per_minute - 1)
    ).scalar()
    if oldest_in_window is not None:
        retry_after = max(1, math.ceil((oldest_in_window + timedelta(minutes=1) - now).total_seconds()))
        raise RateLimited(f"at most {per_minute} campaigns per minute; try again later", retry_after=retry_after)


def get_campaign(db: Database, campaign_id: str, owner_id: str) -> dict[str, Any]:
    with db.read() as conn:
        row = conn.execute(
            select(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.owner_id == owner_id)
        ).first()
        if row is None:
            raise NotFound(f"campaign {campaign_id} not found")
        job_id = conn.execute(
            select(discovery_jobs.c.id)
            .where(discovery_jobs.c.campaign_id == campaign_id)
            .order_by(discovery_jobs.c.created_at.desc())
            .limit(1)
        ).scalar()
    m = row._mapping
    return {
        "id": m["id"],
        "job_id": job_id,
        "business_type": m["business_type"],
        "location": m["location"],
        "max_results": m["max_results"],
        "budget_limit": str(m["budget_limit"]),
        "min_score": m["min_score"],
        "tier": m["tier"],
        "include_delivered": bool(m["include_delivered"]),
        "status": m["status"],
        "results_count": m["results_count"],
        "total_cost": str(m["total_cost"]),
        "created_at": iso(m["created_at"]),
        "updated_at": iso(m["updated_at"]),
        "completed_at": iso(m["completed_at"]),
    }


def lead_to_public(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "business_name": m["business_name"],
        "address": m["address"],
        "phone": m["phone"],
        "website": m["website"],
        "email": m["email"],
        "email_status": m["email_status"],
        "confidence_score": m["confidence_score"],
        "score_breakdown": m["score_breakdown"],
        "sources": m["sources"],
        "category": m["category"],
        "latitude": m["latitude"],
        "longitude": m["longitude"],
        "cost": str(m["cost"]),
    }


def list_leads(
    db: Database, campaign_id: str, owner_id: str, *, limit: int | None = None, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A campaign's leads, best first (404 for another owner's campaign)."""
    get_campaign(db, campaign_id, owner_id)
    where = (leads.c.campaign_id == campaign_id, leads.c.owner_id == owner_id)
    with db.read() as conn:
        query = select(leads).where(*where).order_by(leads.c.confidence_score.desc(), leads.c.business_name, leads.c.id)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        rows = conn.execute(query).all()
        total = conn.execute(select(func.count()).select_from(leads).where(*where)).scalar_one()
    return [lead_to_public(r) for r in rows], total
