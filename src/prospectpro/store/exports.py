"""The reads an export needs beyond a lead's public columns (services/export.py), and the campaign
listing and id lookup of `prospectpro campaigns list` / `prospectpro export ID|PREFIX`.

A lead stores its address as one line; the CRM columns (street, house
number, postcode, city, country) come from the business record the lead was
made of, which the campaign job keeps in ``job_candidates``. Both reads are
scoped by owner through the campaign.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from prospectpro.store.schema import campaigns, discovery_jobs, job_candidates, leads


def lead_found_at(conn: Connection, owner_id: str, campaign_id: str) -> dict[int, datetime]:
    """{lead id: when it was stored}."""
    rows = conn.execute(
        select(leads.c.id, leads.c.created_at).where(leads.c.campaign_id == campaign_id, leads.c.owner_id == owner_id)
    ).all()
    return {int(r.id): r.created_at for r in rows}


def lead_records(conn: Connection, owner_id: str, campaign_id: str) -> dict[str, dict[str, Any]]:
    """{"osm:node/1": the business record as the scoring stage stored it} for the campaign's selected candidates."""
    rows = conn.execute(
        select(job_candidates.c.source, job_candidates.c.source_id, job_candidates.c.business)
        .join(discovery_jobs, discovery_jobs.c.id == job_candidates.c.job_id)
        .where(
            discovery_jobs.c.campaign_id == campaign_id,
            discovery_jobs.c.owner_id == owner_id,
            job_candidates.c.selected.is_(True),
        )
        .order_by(discovery_jobs.c.created_at)  # a later job's record of the same business wins
    ).all()
    return {f"{r.source}:{r.source_id}": dict(r.business or {}) for r in rows}


def owned_campaigns(conn: Connection, owner_id: str, limit: int) -> tuple[list[Any], int]:
    """(the owner's newest campaigns, how many it has): `prospectpro campaigns list`."""
    rows = conn.execute(
        select(campaigns).where(campaigns.c.owner_id == owner_id).order_by(campaigns.c.created_at.desc()).limit(limit)
    ).all()
    total = conn.execute(select(func.count()).select_from(campaigns).where(campaigns.c.owner_id == owner_id))
    return list(rows), int(total.scalar_one())


def ids_starting_with(conn: Connection, owner_id: str, prefix: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the owner's campaign ids, [(job id, its campaign id)] of campaign jobs) starting with ``prefix``; two of each
    at most, enough to tell a unique prefix from an ambiguous one."""
    found = conn.execute(
        select(campaigns.c.id)
        .where(campaigns.c.owner_id == owner_id, campaigns.c.id.startswith(prefix, autoescape=True))
        .limit(2)
    ).scalars()
    jobs = conn.execute(
        select(discovery_jobs.c.id, discovery_jobs.c.campaign_id)
        .where(
            discovery_jobs.c.owner_id == owner_id,
            discovery_jobs.c.campaign_id.is_not(None),
            discovery_jobs.c.id.startswith(prefix, autoescape=True),
        )
        .limit(2)
    ).all()
    return [str(i) for i in found], [(str(j.id), str(j.campaign_id)) for j in jobs]
