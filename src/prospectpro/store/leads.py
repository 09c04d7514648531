"""Every query on ``leads`` and ``delivered_businesses``, and THE list of a lead's columns.

Each function takes the ``owner_id`` whose rows it reads or writes, and
filters on it: a lead, or a delivery record, is only ever seen through its
owner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from prospectpro.store.schema import delivered_businesses, leads
from prospectpro.store.upsert import insert_ignore_returning, upsert

# What a lead says about its business, in the order an export shows it. The
# storing step writes these (a lead stored again is overwritten with them);
# the API, the JSON export and the CSV export read them back.
LEAD_COLUMNS = (
    "business_name",
    "address",
    "phone",
    "website",
    "email",
    "email_status",
    "confidence_score",
    "category",
    "latitude",
    "longitude",
    "sources",
    "score_breakdown",
    "cost",
    "rating",
    "review_count",
    "field_sources",  # {column: {"source": ref, "fetched_at": iso}}
    "google_expires_at",  # when the first Google-only value must go (clear_expired_google_fields)
    "email_source",  # "website:https://…/contact", "hunter", "osm"
    "email_confidence",  # 0-100
    "enrichment",  # every address, phone and social link found, with sources; steps run and skipped
)

_CHUNK = 500  # keys per statement: 2,000 parameters at most, well inside SQLite's limit


def store_leads(
    conn: Connection, owner_id: str, campaign_id: str, rows: Sequence[Mapping[str, Any]], now: datetime
) -> None:
    """Insert the campaign's leads (``dedup_key`` plus ``LEAD_COLUMNS`` each); one stored before is updated."""
    if not rows:
        return
    values = [
        {
            "campaign_id": campaign_id,
            "owner_id": owner_id,
            "created_at": now,
            "dedup_key": row["dedup_key"],
            **{column: row[column] for column in LEAD_COLUMNS},
        }
        for row in rows
    ]
    upsert(conn, leads, values, ["campaign_id", "dedup_key"], LEAD_COLUMNS)


def lead_stats(conn: Connection, owner_id: str, campaign_id: str) -> tuple[int, float | None]:
    """(how many leads the campaign has, their average confidence score or None)."""
    count, avg = conn.execute(
        select(func.count(), func.avg(leads.c.confidence_score)).where(
            leads.c.campaign_id == campaign_id, leads.c.owner_id == owner_id
        )
    ).one()
    return count, (float(avg) if avg is not None else None)


def list_leads(
    conn: Connection, owner_id: str, campaign_id: str, *, limit: int | None = None, offset: int = 0
) -> tuple[list[Row[Any]], int]:
    """A page of the campaign's leads, best first, and how many there are in all."""
    where = (leads.c.campaign_id == campaign_id, leads.c.owner_id == owner_id)
    query = select(leads).where(*where).order_by(leads.c.confidence_score.desc(), leads.c.business_name, leads.c.id)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    rows = list(conn.execute(query).all())
    total = conn.execute(select(func.count()).select_from(leads).where(*where)).scalar_one()
    return rows, total


def delivered_keys(conn: Connection, owner_id: str, campaign_id: str, keys: set[str]) -> set[str]:
    """Of these fingerprints, the ones the owner already received from another campaign."""
    found: set[str] = set()
    ordered = sorted(keys)
    table = delivered_businesses
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i : i + _CHUNK]
        found.update(
            conn.execute(
                select(table.c.fingerprint).where(
                    table.c.owner_id == owner_id, table.c.campaign_id != campaign_id, table.c.fingerprint.in_(chunk)
                )
            ).scalars()
        )
    return found


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
    for i in range(0, len(ordered), _CHUNK):
        rows = [
            {"owner_id": owner_id, "fingerprint": key, "campaign_id": campaign_id, "delivered_at": now}
            for key in ordered[i : i + _CHUNK]
        ]
        keys = ["owner_id", "fingerprint"]
        won.update(insert_ignore_returning(conn, delivered_businesses, rows, keys, "fingerprint"))
    return won


# The columns a Google-only value may be in; the place id (in ``sources``) stays for good.
GOOGLE_CLEARABLE = ("address", "phone", "website", "category", "latitude", "longitude", "rating", "review_count")


def clear_expired_google_fields(conn: Connection, now: datetime) -> int:
    """Google's content terms: past ``google_expires_at``, a lead's values that only Google gave are cleared.

    The place id and the other sources' values stay (``prospectpro leads
    refresh`` fetches Google's again). The name is emptied too when only
    Google gave it (the column cannot be null). Every owner's leads; returns
    how many leads were cleared.
    """
    rows = conn.execute(
        select(leads.c.id, leads.c.field_sources).where(
            leads.c.google_expires_at.is_not(None), leads.c.google_expires_at <= now
        )
    ).all()
    for row in rows:
        kept = dict(row.field_sources or {})
        values: dict[str, Any] = {"google_expires_at": None}
        for column, source in list(kept.items()):
            if str((source or {}).get("source") or "").startswith("google:"):
                if column in GOOGLE_CLEARABLE:
                    values[column] = None
                elif column == "business_name":
                    values[column] = ""
                else:
                    continue
                del kept[column]
        values["field_sources"] = kept
        conn.execute(update(leads).where(leads.c.id == row.id).values(**values))
    return len(rows)


def forget_email(conn: Connection, address: str, owner_id: str | None = None) -> int:
    """Remove an address from every lead (of ``owner_id``, or of everyone): the column and the enrichment data.

    Returns how many leads changed. Exports are built from the leads, so they lose it too.
    """
    from sqlalchemy import String, cast

    from prospectpro.store.suppression import contains_pattern, scrub

    address = address.lower()
    query = select(leads.c.id, leads.c.email, leads.c.enrichment, leads.c.field_sources).where(
        (func.lower(leads.c.email) == address)
        | cast(leads.c.enrichment, String).ilike(contains_pattern(address), escape="\\")
    )
    if owner_id is not None:
        query = query.where(leads.c.owner_id == owner_id)
    rows = conn.execute(query).all()
    for row in rows:
        values: dict[str, Any] = {"enrichment": scrub(row.enrichment, address)}
        if (row.email or "").lower() == address:
            values.update(email=None, email_status=None, email_source=None, email_confidence=None)
            kept = dict(row.field_sources or {})
            kept.pop("email", None)
            values["field_sources"] = kept
        conn.execute(update(leads).where(leads.c.id == row.id).values(**values))
    return len(rows)


def delivered_source_refs(conn: Connection, owner_id: str, campaign_id: str, refs: set[str]) -> set[str]:
    """Of these source refs ("osm:node/1", "overture:08f…"), the ones on a lead the owner got from another campaign.

    Fuzzy identity (domain/identity.py) is no unique key, so a business is
    "delivered" when any of its source ids was, not only its fingerprint.
    """
    if not refs:
        return set()
    query = select(leads.c.sources).where(leads.c.owner_id == owner_id, leads.c.campaign_id != campaign_id)
    found: set[str] = set()
    for (sources,) in conn.execute(query):
        found.update(r for r in sources or () if r in refs)
    return found
