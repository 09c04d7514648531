"""The SQL of the campaigns table, in one place: who may read a campaign is decided here (by owner)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, select, update

from prospectpro.store.schema import campaigns, discovery_jobs

_INSERT = campaigns.insert()  # compiled once, sent as one executemany per group of submissions


def insert_campaigns(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT, list(rows))


def owned_campaign(conn: Connection, campaign_id: str, owner_id: str) -> tuple[Row[Any], str | None] | None:
    """The owner's campaign and its latest job's id; None when there is no such campaign of this owner."""
    row = conn.execute(
        select(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.owner_id == owner_id)
    ).first()
    if row is None:
        return None
    job_id = conn.execute(
        select(discovery_jobs.c.id)
        .where(discovery_jobs.c.campaign_id == campaign_id, discovery_jobs.c.owner_id == owner_id)
        .order_by(discovery_jobs.c.created_at.desc())
        .limit(1)
    ).scalar()
    return row, job_id


def mirror_status(conn: Connection, campaign_id: str, status: str, now: datetime, *, terminal: bool) -> None:
    """The campaign shows its job's status (called in the job's own transaction)."""
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if terminal:
        values["completed_at"] = now
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(**values))


def record_results(conn: Connection, campaign_id: str, count: int, cost: Decimal, now: datetime) -> None:
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id)
        .values(results_count=count, total_cost=cost, updated_at=now)
    )
