"""Settings, read from ``PROSPECTPRO_*`` environment variables.

Zero configuration gives the embedded default: one SQLite file in a data
directory that is created on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
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

    # Durable queue.
    lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    poll_interval: float = Field(default=0.2, gt=0, le=60)
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_base_seconds: float = Field(default=2.0, ge=0)
    retry_max_seconds: float = Field(default=300.0, ge=0)

    # Pipeline.
    enrich_concurrency: int = Field(default=4, ge=1, le=64)
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
    # Webhooks (notify_url) must point at public addresses; tests and local
    # development may allow loopback and private ones.
    allow_private_notify_urls: bool = False
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_retry_base_seconds: float = Field(default=5.0, ge=0)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'prospectpro.sqlite3'}"

