"""The tables, in SQLAlchemy Core, portable between SQLite and PostgreSQL.

Alembic migrations (``store/migrations``) create them; this module is the
one description the queries use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes everywhere; SQLite stores them as sortable text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
Money = Numeric(12, 4, asdecimal=True)
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite rowid aliasing needs INTEGER

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # local | user | anonymous | system
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("monthly_budget", Money),  # the owner's calendar-month (UTC) spend cap; None: no cap
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # api_key | session
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("business_type", String(200), nullable=False),
    Column("location", String(300), nullable=False),
    Column("max_results", Integer, nullable=False),
    Column("budget_limit", Money, nullable=False),
    Column("min_score", Integer, nullable=False),
    Column("tier", String(16), nullable=False),
    Column("include_delivered", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),
    Column("results_count", Integer, nullable=False, default=0),
    Column("total_cost", Money, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Index("ix_campaigns_owner_created", "owner_id", "created_at"),
)

discovery_jobs = Table(
    "discovery_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    # Which handler runs it (prospectpro.jobs.kinds); every job before kinds was a campaign.
    Column("kind", String(32), nullable=False, server_default="campaign"),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), index=True),  # campaign jobs only
    Column("owner_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False, default=0),
    Column("current_stage", String(32), nullable=False),
    Column("config", Json, nullable=False),
    Column("metrics", Json, nullable=False),
    # Which stages finished, and stage-local resume state.
    Column("checkpoint", Json, nullable=False),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("run_after", UTCDateTime, nullable=False),
    Column("lease_owner", String(64)),
    # Bumped on every claim: the fencing token a worker's writes must carry.
    Column("lease_token", Integer, nullable=False, default=0),
    Column("lease_expires_at", UTCDateTime),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("idempotency_key", String(255)),
    Column("request_hash", String(64)),
    Column("event_seq", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("owner_id", "idempotency_key"),
    Index("ix_discovery_jobs_owner_kind_created", "owner_id", "kind", "created_at"),
    Index("ix_discovery_jobs_claim", "status", "run_after"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("discovery_jobs.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("data", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("job_id", "seq"),
)

job_candidates = Table(
    "job_candidates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("discovery_jobs.id"), nullable=False),
    Column("source", String(32), nullable=False),
    Column("source_id", String(200), nullable=False),
    Column("position", Integer, nullable=False),  # discovery order, for stable ties
    Column("fingerprint", String(400), nullable=False),
    Column("business", Json, nullable=False),  # the normalized record as discovered
    Column("score", Integer),
    Column("breakdown", Json),
    Column("qualified", Boolean, nullable=False, default=False),
    Column("selected", Boolean, nullable=False, default=False),
    Column("duplicate_of", BigId),
    Column("delivered_before", Boolean, nullable=False, default=False),
    Column("enrich_state", String(16), nullable=False, default="pending"),  # pending|done
    Column("enrichment", Json),
    Column("cost", Money, nullable=False, default=0),
    UniqueConstraint("job_id", "source", "source_id"),
)

# The gate's ledger (store/ledger.py): one row per external request that costs
# or could cost money, per job — unique on sha256(job id, request hash).
api_calls = Table(
    "api_calls",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("request_hash", String(64), nullable=False),  # sha256 of (provider, operation, key)
    Column("provider", String(32), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("request", Json, nullable=False),  # the normalised request key, redacted
    Column("owner_id", String(36), nullable=False),
    Column("job_id", String(36), nullable=False, index=True),
    Column("campaign_id", String(36)),
    Column("status", String(16), nullable=False),  # reserved | ok | error | reused | over_budget
    Column("cost", Money, nullable=False, default=0),
    Column("saved_cost", Money, nullable=False, default=0),  # reused rows: what the original answer cost
    Column("response", Json),  # the redacted answer body (ok rows; reused rows copy it)
    Column("reused_from", BigId),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Column("reusable_until", UTCDateTime),
    Index("ix_api_calls_reuse", "owner_id", "provider", "operation", "request_hash"),
    Index("ix_api_calls_owner_created", "owner_id", "created_at"),
)

leads = Table(
    "leads",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),
    Column("owner_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("dedup_key", String(400), nullable=False),
    Column("business_name", String(300), nullable=False),
    Column("address", String(500)),
    Column("phone", String(64)),
    Column("website", String(500)),
    Column("email", String(320)),
    Column("email_status", String(32)),
    Column("confidence_score", Integer, nullable=False),
    Column("score_breakdown", Json, nullable=False),
    Column("sources", Json, nullable=False),
    Column("category", String(100)),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("cost", Money, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("rating", Float),
    Column("review_count", Integer),
    Column("field_sources", Json),  # {field: {"source": ref, "fetched_at": iso}}
    # When the first Google-only field value must go (Google's content terms).
    Column("google_expires_at", UTCDateTime, index=True),
    # Contacts (issue 11): where the e-mail came from, how sure it is, and all enrichment found.
    Column("email_source", String(500)),
    Column("email_confidence", Integer),
    Column("enrichment", Json),
    UniqueConstraint("campaign_id", "dedup_key"),
    Index("ix_leads_owner_dedup", "owner_id", "dedup_key"),
)

# Which businesses each owner has received, one row per (owner, business):
# taken in the transaction that stores a campaign's leads, so two campaigns
# of one owner running at once cannot both deliver the same business.
delivered_businesses = Table(
    "delivered_businesses",
    metadata,
    Column("owner_id", String(36), ForeignKey("users.id"), primary_key=True),
    Column("fingerprint", String(400), primary_key=True),  # = leads.dedup_key
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False),  # the first to deliver it
    Column("delivered_at", UTCDateTime, nullable=False),
)

places = Table(
    "places",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("osm_type", String(1), nullable=False),  # n | w | r
    Column("osm_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("category", String(100), nullable=False),  # first of e.g. "amenity=cafe"
    Column("tags", Json, nullable=False),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("dataset", String(200), nullable=False),
    UniqueConstraint("osm_type", "osm_id"),
    Index("ix_places_lat_lon", "latitude", "longitude"),
)

# One row per "key=value" business tag of a place: the discovery index.
place_categories = Table(
    "place_categories",
    metadata,
    Column("place_id", BigId, ForeignKey("places.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Index("ix_place_categories_tag", "tag"),
)

localities = Table(
    "localities",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("osm_type", String(1), nullable=False),
    Column("osm_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("names", Json, nullable=False),  # every spelling: name, name:xx, alt_name …
    Column("kind", String(32), nullable=False),  # city | town | suburb | …
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("radius_m", Float, nullable=False),
    Column("country", String(2)),
    Column("dataset", String(200), nullable=False),
    UniqueConstraint("osm_type", "osm_id"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("places", Integer, nullable=False),
    Column("localities", Integer, nullable=False),
    Column("imported_at", UTCDateTime, nullable=False),
    # The extract's bounds (its header's box, else its objects'): a lat,lon inside is served locally.
    Column("south", Float),
    Column("west", Float),
    Column("north", Float),
    Column("east", Float),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
)

# Webhooks owed for finished jobs (notify_url): written in the same
# transaction as the job's terminal change, so none is lost.
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("discovery_jobs.id"), nullable=False, unique=True),
    Column("url", String(2000), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Index("ix_notifications_due", "status", "next_attempt_at"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(80), primary_key=True),  # e.g. "submit:<owner id>"
    Column("tokens", Float, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Per provider, what the gate's circuit breaker knows, readable by every process (doctor).
provider_state = Table(
    "provider_state",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("breaker_open_until", UTCDateTime),
    Column("reason", Text),
    Column("failures", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Live OpenStreetMap (issue 10, places/coverage.py). What a live query stored into the places
# index: one row per (source, tags asked, area); a fresh one covering a campaign's area serves it.
place_coverage = Table(
    "place_coverage",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),  # overpass
    Column("tags_key", String(1000), nullable=False),  # the tags asked, sorted, "," between
    Column("area_ref", String(64)),  # "relation/62422" when asked by its boundary; else the box
    Column("south", Float, nullable=False),
    Column("west", Float, nullable=False),
    Column("north", Float, nullable=False),
    Column("east", Float, nullable=False),
    Column("label", String(300), nullable=False),
    Column("elements", Integer, nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
    Index("ix_place_coverage_tags_fetched", "tags_key", "fetched_at"),
)

# Nominatim's answers by the location text asked (sha256 of its normalised form).
geocode_cache = Table(
    "geocode_cache",
    metadata,
    Column("query_hash", String(64), primary_key=True),
    Column("query", Text, nullable=False),
    Column("provider", String(32), nullable=False),
    Column("response", Json, nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
)

# A store-held lease: one Overpass query at a time against the public instance, installation-wide.
provider_leases = Table(
    "provider_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Calls per provider per UTC day: the public Overpass instance's daily cap.
provider_usage = Table(
    "provider_usage",
    metadata,
    Column("provider", String(32), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("calls", Integer, nullable=False),
)

# Addresses and domains nobody on this installation may store, export or verify (store/suppression.py).
suppressions = Table(
    "suppressions",
    metadata,
    Column("value", String(320), primary_key=True),  # an address or a domain, lowercased
    Column("kind", String(8), nullable=False),  # email | domain
    Column("reason", Text, nullable=False),  # "added by a user", "hunter 451", "forgotten"
    Column("created_at", UTCDateTime, nullable=False),
)

LOCAL_USER_ID = "00000000-0000-0000-0000-000000000000"
SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000001"
"""The owner of the jobs the system runs for itself: no credential is ever issued for it, so no caller sees them."""
