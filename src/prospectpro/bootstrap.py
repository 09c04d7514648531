"""Opening the store: the one place that turns settings into a ready database."""

from __future__ import annotations

from prospectpro.config import Settings
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
