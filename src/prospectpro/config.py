"""Settings, read from ``PROSPECTPRO_*`` environment variables.

Zero configuration gives the embedded default: one SQLite file in a data
directory that is created on first use.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "prospectpro"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROSPECTPRO_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    # Empty means: a SQLite file inside data_dir.
    database_url: str = ""

    # SQLite: the longest a write waits for the write lock before it fails
    # (503 with Retry-After on the API); a writer holding it longer shows in /healthz.
    write_lock_timeout: float = Field(default=10.0, gt=0, le=600)

    # Durable queue.
    lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    poll_interval: float = Field(default=0.2, gt=0, le=60)
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_base_seconds: float = Field(default=2.0, ge=0)
    retry_max_seconds: float = Field(default=300.0, ge=0)

    # Pipeline.
    enrich_concurrency: int = Field(default=4, ge=1, le=64)
    # Seconds one enrichment step may take for one lead; past it the attempt fails (and is retried).
    enrich_step_timeout: float = Field(default=120.0, gt=0, le=3600)
    # Extra enrichment steps as "module:attribute" import paths; each names a
    # callable returning an Enricher (see prospectpro.providers.protocols).
    extra_enrichers: list[str] = Field(default_factory=list)

    # Discovery data shipped with the package, imported on first start.
    import_bundled_places: bool = True

    # HTTP API.
    submissions_per_minute: int = Field(default=60, ge=1)  # per owner
    sessions_per_minute: int = Field(default=30, ge=1)  # new anonymous sessions per client address
    streams_per_owner: int = Field(default=20, ge=1)  # open event streams per owner, per process
    sse_keepalive_seconds: float = Field(default=15.0, gt=0, le=15.0)
    sse_poll_interval: float = Field(default=0.1, gt=0, le=5)  # seeing other processes' events
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    serve_workers: int = Field(default=2, ge=0, le=64)  # in-process workers of each `serve` process
    cookie_secure: bool = False  # set behind HTTPS
    # The URLs the API returns (urls, realtimeChannel) start with this when it is set, e.g.
    # "https://leads.example.com"; otherwise with the request's Host only when it is one of
    # allowed_hosts (or the address the connection reached), else they are relative.
    public_base_url: str = ""
    allowed_hosts: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1", "::1"])
    # /metrics and the detailed /healthz: for callers with "Authorization: Bearer <this>";
    # when empty, for callers on this machine only.
    operator_token: str = ""
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    # (uvicorn's forwarded_allow_ips, e.g. ["127.0.0.1"]); empty: none, the peer is the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Webhooks (notify_url) must point at public addresses; tests and local
    # development may allow loopback and private ones.
    allow_private_notify_urls: bool = False
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_retry_base_seconds: float = Field(default=5.0, ge=0)

    # -- the gate: every external call (prospectpro.gate) ------------------------------
    # How long a recorded paid answer serves the same owner's later campaigns (a
    # provider's own terms may cap it lower: Google's content days).
    answer_cache_days: float = Field(default=30.0, ge=0, le=3650)
    # Anonymous sessions use the base tier (free sources) only unless this is set.
    anonymous_paid: bool = False
    # Price overrides, USD per request: {"google.text_search_enterprise": "0.035"} (see gate/prices.py).
    prices: dict[str, Decimal] = Field(default_factory=dict)
    # Per-lead cost caps by tier, USD: {"professional": "0.05"} (see domain/tiers.py).
    tier_lead_caps: dict[str, Decimal] = Field(default_factory=dict)
    # The User-Agent of every outbound request; empty: "ProspectPro/<version>" plus contact_email.
    user_agent: str = ""
    contact_email: str = ""

    # Google Places (New): a paid discovery source, used by tiers that allow it when a key is set.
    google_places_api_key: str = ""
    google_places_base_url: str = "https://places.googleapis.com"
    google_places_rate_per_second: float = Field(default=10.0, gt=0)
    # Google-only field values are kept this long after their fetch (Google's content terms).
    google_content_days: int = Field(default=30, ge=1, le=30)

    # Live OpenStreetMap (Nominatim geocoding, Overpass queries).
    nominatim_base_url: str = "https://nominatim.openstreetmap.org"
    overpass_base_url: str = "https://overpass-api.de"
    overpass_daily_limit: int = Field(default=1000, ge=0)  # against the public instance only
    discovery_cache_days: float = Field(default=7.0, ge=0)
    geocode_cache_days: float = Field(default=30.0, ge=0)
    max_area_km2: float = Field(default=2500.0, gt=0)
    ambiguity_importance_gap: float = Field(default=0.1, ge=0, le=1)

    # -- the web pages' map ----------------------------------------------------------------
    # The tile server of the campaign map: OpenStreetMap's standard tiles by default (a campaign page is
    # light use; mind their usage policy and run your own for heavy use). Empty: markers and the area on a
    # blank background, nothing fetched (the tests set it empty: the browser must not reach the internet).
    map_tiles_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    map_tiles_attribution: str = "© OpenStreetMap contributors"

    # -- contacts: the business's own website ($0, every tier) -----------------------------
    # Tests and local development may reach loopback and private addresses (any port).
    allow_private_websites: bool = False
    website_max_pages: int = Field(default=4, ge=1, le=20)  # per site, the homepage included
    website_page_timeout: float = Field(default=10.0, gt=0, le=120)
    website_site_timeout: float = Field(default=30.0, gt=0, le=600)
    website_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    website_max_redirects: int = Field(default=5, ge=0, le=20)
    website_host_delay: float = Field(default=0.5, ge=0, le=30)  # between two requests to one host
    website_cache_days: float = Field(default=30.0, ge=0)

    # -- contacts: Hunter.io and NeverBounce (paid; professional tier and above) ------------
    hunter_api_key: str = ""
    hunter_base_url: str = "https://api.hunter.io"
    hunter_rate_per_second: float = Field(default=15.0, gt=0)
    hunter_verified_days: int = Field(default=90, ge=0)
    neverbounce_api_key: str = ""
    neverbounce_base_url: str = "https://api.neverbounce.com"
    neverbounce_rate_per_second: float = Field(default=10.0, gt=0)
    neverbounce_bulk_min: int = Field(default=25, ge=1)
    # Hunter answered 429 (credits used up): not called again by this installation for this long.
    hunter_credits_reset_hours: float = Field(default=24.0, gt=0)
    neverbounce_poll_seconds: float = Field(default=1.0, gt=0, le=60)  # between two polls of a bulk job

    # -- Overture Maps places (free discovery source "overture", issue 12) ------------------
    # The places data of one release: a local folder or file of GeoParquet, or
    # s3://bucket/release/<R>/theme=places/type=place/ (anonymous). Empty or "off": the source is off.
    overture_path: str = ""
    overture_release: str = ""  # empty: taken from the path's "release/<R>/", else "local"
    overture_s3_endpoint: str = ""  # an S3-compatible endpoint (pyarrow endpoint_override), e.g. http://127.0.0.1:9000
    overture_s3_region: str = "us-west-2"
    overture_connect_timeout: float = Field(default=5.0, gt=0, le=120)  # an unreachable store fails fast
    overture_min_confidence: float = Field(default=0.5, ge=0, le=1)

    # -- Retention (issue 13: ``prospectpro prune``, store/prune.py) ----------------------------
    prune_after_days: float = Field(default=30.0, gt=0)  # finished jobs' events/candidates, expired answers
    prune_batch_size: int = Field(default=500, ge=1, le=100_000)  # rows per short transaction
    prune_interval_seconds: float = Field(default=3600.0, ge=0)  # workers prune this often; 0: only the CLI

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment):
            raise ValueError("PROSPECTPRO_PUBLIC_BASE_URL must look like https://leads.example.com (or …/a/path)")
        return value.rstrip("/")

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'prospectpro.sqlite3'}"

