"""The composition root: the one place that turns settings into a ready
database and a worker with the configured kinds of job."""

from __future__ import annotations

import importlib
import logging

from prospectpro.config import Settings
from prospectpro.gate.core import Gate
from prospectpro.gate.types import ProviderSpec
from prospectpro.jobs.worker import Worker, worker_config
from prospectpro.pipeline.kind import campaign_kind
from prospectpro.pipeline.runner import build_pipeline
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.places.refresh import refresh_kind
from prospectpro.providers import google_refresh
from prospectpro.store import migrate
from prospectpro.store.db import Database

log = logging.getLogger(__name__)

# The modules whose ``spec(settings) -> ProviderSpec | None`` the gate runs (None: not configured).
# A provider joins with one line here; a module not (yet) in this build is skipped.
PROVIDER_MODULES: tuple[str, ...] = (
    "prospectpro.providers.google_places",
    "prospectpro.providers.nominatim",
    "prospectpro.providers.overpass",
    "prospectpro.providers.hunter",
    "prospectpro.providers.neverbounce",
)


def open_database(settings: Settings, *, prepare: bool = True) -> Database:
    """Connect; with ``prepare``, apply migrations and import the bundled places once."""
    db = Database(settings.resolved_database_url(), write_lock_timeout=settings.write_lock_timeout)
    if prepare:
        migrate.upgrade(db)
        if settings.import_bundled_places:
            ensure_bundled_places(db)
    return db


def build_worker(db: Database, settings: Settings, concurrency: int = 1) -> Worker:
    """A worker (not started) running every kind of job this build knows, as configured."""
    gate = build_gate(db, settings)
    kinds = [
        campaign_kind(build_pipeline(db, settings, gate=gate)),
        refresh_kind(db, settings, gate),
        google_refresh.refresh_kind(gate, settings),
    ]
    return Worker(db, kinds, worker_config(settings, concurrency))


def provider_specs(settings: Settings) -> list[ProviderSpec]:
    """Every configured provider's spec, from the provider modules present in this build."""
    specs: list[ProviderSpec] = []
    for name in PROVIDER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists, but something it imports does not: a real error
                raise
            continue
        make = getattr(module, "spec", None)
        if make is None:
            continue
        spec = make(settings)
        if spec is not None:
            specs.append(spec)
    return specs


def build_gate(db: Database, settings: Settings) -> Gate:
    """The process's gate: one HTTP client per configured provider, shared by every job."""
    specs = provider_specs(settings)
    log.debug("gate: providers %s", ", ".join(s.name for s in specs) or "none configured")
    return Gate(db, settings, specs)
