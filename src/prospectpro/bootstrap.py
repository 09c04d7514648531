"""The composition root: the one place that turns settings into a ready
database and a worker with the configured kinds of job."""

from __future__ import annotations

from prospectpro.config import Settings
from prospectpro.jobs.worker import Worker, worker_config
from prospectpro.pipeline.kind import campaign_kind
from prospectpro.pipeline.runner import build_pipeline
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.store import migrate
from prospectpro.store.db import Database


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
    kinds = [campaign_kind(build_pipeline(db, settings))]
    return Worker(db, kinds, worker_config(settings, concurrency))
