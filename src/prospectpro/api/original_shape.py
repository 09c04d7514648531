"""Our rows in the original product's columns: the one place that maps them (issue 17).

The original product (Supabase) had three tables its clients read: ``discovery_jobs``,
``campaigns`` and ``leads``. Each original column here names its PostgreSQL type (what
PostgREST and Realtime report), the SQL expression over our tables that filters and
orders by it (None: a JSON column, not comparable), and how its JSON value is made
from one row of ours. Money is Decimal in our store and a decimal string in our own
API; the original's clients do arithmetic on it (``metrics.total_cost.toFixed(2)``),
so here it becomes a JSON number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, FromClause, case, literal
from sqlalchemy.sql.elements import Label

from prospectpro.store.schema import campaigns, discovery_jobs, leads, users

Row = Mapping[Any, Any]  # a dict, or an SQLAlchemy RowMapping

# Money keys anywhere in a job's metrics (ours: decimal strings, or floats from older jobs).
MONEY_KEYS = frozenset({"total_cost", "cost_per_lead", "cost", "saved_cost", "budget_limit", "spent"})


def money_number(value: Any) -> float | None:
    """A money value (Decimal, decimal string, int or float) as a JSON number; None stays None.
    Through str(): a float such as 0.1 stays 0.1 instead of its binary expansion."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def original_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The job's metrics with the names they already share with the original (businesses_found,
    qualified_leads, leads_enriched, total_cost, avg_confidence, total_found, …), every money
    value a number, at any depth (providers: {name: {cost, saved_cost}})."""

    def convert(key: str | None, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): convert(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(None, v) for v in value]
        if key in MONEY_KEYS and not isinstance(value, bool) and value is not None:
            number = money_number(value)
            return value if number is None else number
        return value

    out = convert(None, dict(metrics or {}))
    assert isinstance(out, dict)
    out.setdefault("total_cost", 0.0)  # the hook calls total_cost.toFixed(2) from the first update on
    return out


def original_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The campaign as the original's request named it (businessType, maxResults, …)."""
    return {
        "businessType": config.get("business_type"),
        "location": config.get("location"),
        "maxResults": config.get("max_results"),
        "budgetLimit": money_number(config.get("budget_limit")),
        "minConfidenceScore": config.get("min_score"),
        "tierKey": config.get("tier"),
    }


def timestamp(value: datetime | None) -> str | None:
    """As PostgREST writes a timestamptz: ISO 8601 with the +00:00 offset."""
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the original's PostgreSQL type: uuid, text, int4, numeric, jsonb, timestamptz
    sql: ColumnElement[Any] | None  # filter/order expression; None: jsonb (no comparison)
    value: Callable[[Row], Any]


@dataclass(frozen=True)
class OriginalTable:
    name: str
    source: FromClause  # our tables, joined
    owner: ColumnElement[Any]  # whose row it is
    fetch: tuple[Label[Any], ...]  # what a row of ours must carry
    columns: dict[str, Column]
    key: ColumnElement[Any]  # a stable order when none is asked for

    def column(self, name: str) -> Column | None:
        return self.columns.get(name)


def _get(name: str) -> Callable[[Row], Any]:
    return lambda row: row[name]


def _session_user_id(owner_kind: ColumnElement[Any], owner_name: ColumnElement[Any]) -> ColumnElement[Any]:
    """The original client's sessionUserId, kept as the anonymous session's name (a label, never
    an identity); None for a signed-in user and for a session opened without one."""
    return case((owner_kind == "anonymous", case((owner_name != "anonymous", owner_name))), else_=literal(None))


def _table(
    name: str,
    source: FromClause,
    owner: ColumnElement[Any],
    key: ColumnElement[Any],
    fetch: dict[str, ColumnElement[Any]],
    columns: list[tuple[str, str, str | None, Callable[[Row], Any] | None]],
) -> OriginalTable:
    """``columns``: (original name, type, the fetched value it filters on or None, its value or None = that fetched value)."""
    labels = {k: v.label(k) for k, v in fetch.items()}
    out: dict[str, Column] = {}
    for col_name, pg_type, filter_on, value in columns:
        sql = fetch[filter_on] if filter_on is not None else None
        out[col_name] = Column(col_name, pg_type, sql, value or _get(filter_on or col_name))
    return OriginalTable(name, source, owner, tuple(labels.values()), out, key)


_job_users = users.alias("job_owner")
DISCOVERY_JOBS = _table(
    "discovery_jobs",
    discovery_jobs.outerjoin(_job_users, _job_users.c.id == discovery_jobs.c.owner_id),
    discovery_jobs.c.owner_id,
    discovery_jobs.c.created_at,
    {
        "id": discovery_jobs.c.id,
        "campaign_id": discovery_jobs.c.campaign_id,
        "user_id": discovery_jobs.c.owner_id,
        "session_user_id": _session_user_id(_job_users.c.kind, _job_users.c.name),
        "status": discovery_jobs.c.status,
        "progress": discovery_jobs.c.progress,
        "current_stage": discovery_jobs.c.current_stage,
        "config": discovery_jobs.c.config,
        "metrics": discovery_jobs.c.metrics,
        "error": discovery_jobs.c.error,
        "created_at": discovery_jobs.c.created_at,
        "started_at": discovery_jobs.c.started_at,
        "completed_at": discovery_jobs.c.completed_at,
        "updated_at": discovery_jobs.c.updated_at,
    },
    [
        ("id", "uuid", "id", None),
        ("campaign_id", "text", "campaign_id", None),
        ("user_id", "uuid", "user_id", None),
        ("session_user_id", "text", "session_user_id", None),
        ("status", "text", "status", None),
        ("progress", "int4", "progress", None),
        ("current_stage", "text", "current_stage", None),
        ("config", "jsonb", None, lambda r: original_config(r["config"] or {})),
        # The original kept the found leads here; ours are rows of /rest/v1/leads (nothing is copied).
        ("results", "jsonb", None, lambda r: None),
        ("metrics", "jsonb", None, lambda r: original_metrics(r["metrics"])),
        ("error", "text", "error", None),
        ("created_at", "timestamptz", "created_at", lambda r: timestamp(r["created_at"])),
        ("started_at", "timestamptz", "started_at", lambda r: timestamp(r["started_at"])),
        ("completed_at", "timestamptz", "completed_at", lambda r: timestamp(r["completed_at"])),
        ("updated_at", "timestamptz", "updated_at", lambda r: timestamp(r["updated_at"])),
    ],
)

_campaign_users = users.alias("campaign_owner")
CAMPAIGNS = _table(
    "campaigns",
    campaigns.outerjoin(_campaign_users, _campaign_users.c.id == campaigns.c.owner_id),
    campaigns.c.owner_id,
    campaigns.c.created_at,
    {
        "id": campaigns.c.id,
        "business_type": campaigns.c.business_type,
        "location": campaigns.c.location,
        "target_count": campaigns.c.max_results,
        "results_count": campaigns.c.results_count,
        "total_cost": campaigns.c.total_cost,
        "status": campaigns.c.status,
        "user_id": campaigns.c.owner_id,
        "session_user_id": _session_user_id(_campaign_users.c.kind, _campaign_users.c.name),
        "created_at": campaigns.c.created_at,
    },
    [
        ("id", "uuid", "id", None),
        ("business_type", "text", "business_type", None),
        ("location", "text", "location", None),
        ("target_count", "int4", "target_count", None),
        ("results_count", "int4", "results_count", None),
        ("total_cost", "numeric", "total_cost", lambda r: money_number(r["total_cost"])),
        ("status", "text", "status", None),
        ("user_id", "uuid", "user_id", None),
        ("session_user_id", "text", "session_user_id", None),
        ("created_at", "timestamptz", "created_at", lambda r: timestamp(r["created_at"])),
    ],
)


def _enrichment(row: Row) -> dict[str, Any]:
    """What the original kept in enrichment_data, from what our lead records (each value names its source)."""
    return {
        "email_status": row["email_status"],
        "sources": row["sources"],
        "score_breakdown": row["score_breakdown"],
        "category": row["category"],
        "latitude": row["latitude"],
        "longitude": row["longitude"],
        "rating": row["rating"],
        "review_count": row["review_count"],
        "field_sources": row["field_sources"],
    }


_lead_users = users.alias("lead_owner")
LEADS = _table(
    "leads",
    leads.outerjoin(_lead_users, _lead_users.c.id == leads.c.owner_id),
    leads.c.owner_id,
    leads.c.id,
    {
        "campaign_id": leads.c.campaign_id,
        "business_name": leads.c.business_name,
        "address": leads.c.address,
        "phone": leads.c.phone,
        "website": leads.c.website,
        "email": leads.c.email,
        "confidence_score": leads.c.confidence_score,
        "validation_cost": leads.c.cost,
        "user_id": leads.c.owner_id,
        "session_user_id": _session_user_id(_lead_users.c.kind, _lead_users.c.name),
        "email_status": leads.c.email_status,
        "sources": leads.c.sources,
        "score_breakdown": leads.c.score_breakdown,
        "category": leads.c.category,
        "latitude": leads.c.latitude,
        "longitude": leads.c.longitude,
        "rating": leads.c.rating,
        "review_count": leads.c.review_count,
        "field_sources": leads.c.field_sources,
    },
    [
        ("campaign_id", "text", "campaign_id", None),
        ("business_name", "text", "business_name", None),
        ("address", "text", "address", None),
        ("phone", "text", "phone", None),
        ("website", "text", "website", None),
        ("email", "text", "email", None),
        ("confidence_score", "int4", "confidence_score", None),
        ("enrichment_data", "jsonb", None, _enrichment),
        ("validation_cost", "numeric", "validation_cost", lambda r: money_number(r["validation_cost"])),
        ("user_id", "uuid", "user_id", None),
        ("session_user_id", "text", "session_user_id", None),
    ],
)

TABLES: dict[str, OriginalTable] = {t.name: t for t in (DISCOVERY_JOBS, CAMPAIGNS, LEADS)}


def record(table: OriginalTable, row: Row, names: list[str] | None = None) -> dict[str, Any]:
    """One row in the original's columns (all of them, or ``names`` in that order)."""
    return {name: table.columns[name].value(row) for name in (names or list(table.columns))}


def job_row(job: Any, session_user_id: str | None = None) -> dict[str, Any]:
    """A ``prospectpro.jobs.model.Job`` as the row DISCOVERY_JOBS maps (``record`` turns it into the
    original's discovery_jobs row: what Realtime sends as ``new``)."""
    return {
        "id": job.id,
        "campaign_id": job.campaign_id,
        "user_id": job.owner_id,
        "session_user_id": session_user_id,
        "status": str(job.status),
        "progress": job.progress,
        "current_stage": job.current_stage,
        "config": job.config,
        "metrics": job.metrics,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "updated_at": job.updated_at,
    }


def session_user_id(kind: str, name: str) -> str | None:
    """As ``_session_user_id`` computes it in SQL, for a principal already known."""
    return name if kind == "anonymous" and name != "anonymous" else None


def job_columns() -> list[dict[str, str]]:
    """The columns list Realtime sends with a change (the client converts values by these types)."""
    return [{"name": c.name, "type": c.type} for c in DISCOVERY_JOBS.columns.values()]
