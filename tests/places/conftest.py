from __future__ import annotations

import importlib.resources
from collections.abc import Iterator
from pathlib import Path

import osmium
import pytest
from osmium.filter import KeyFilter

from prospectpro.places.importer import ImportStats, import_pbf
from prospectpro.store import migrate
from prospectpro.store.db import Database

_TYPES = {"n": "node", "w": "way", "r": "relation"}


@pytest.fixture(scope="session")
def bundled_pbf() -> Iterator[Path]:
    resource = importlib.resources.files("prospectpro") / "data" / "helsinki-center.osm.pbf"
    with importlib.resources.as_file(resource) as path:
        yield path


@pytest.fixture(scope="session")
def imported(
    tmp_path_factory: pytest.TempPathFactory, bundled_pbf: Path
) -> Iterator[tuple[Database, ImportStats]]:
    """The bundled extract imported once; tests using it must only read."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('places') / 'places.sqlite3'}")
    migrate.upgrade(database)
    stats = import_pbf(database, bundled_pbf)
    yield database, stats
    database.dispose()


@pytest.fixture(scope="session")
def places_db(imported: tuple[Database, ImportStats]) -> Database:
    return imported[0]


@pytest.fixture(scope="session")
def osm_tags(bundled_pbf: Path) -> dict[str, dict[str, str]]:
    """Tags of every named object in the file, read straight with osmium, keyed "node/123"."""
    found: dict[str, dict[str, str]] = {}
    for obj in osmium.FileProcessor(str(bundled_pbf)).with_filter(KeyFilter("name")):
        found[f"{_TYPES[obj.type_str()]}/{obj.id}"] = dict(obj.tags)
    return found
