from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from prospectpro.places.importer import ensure_bundled_places, import_pbf
from prospectpro.places.locations import resolve_location
from prospectpro.providers.osm import OsmPlacesSource
from prospectpro.store.db import Database
from prospectpro.store.schema import place_categories, places

pytestmark = pytest.mark.postgres


def test_import_and_discover_on_postgres(pg_db: Database, bundled_pbf: Path) -> None:
    first = ensure_bundled_places(pg_db)
    assert first is not None and first.localities == 7
    assert ensure_bundled_places(pg_db) is None
    again = import_pbf(pg_db, bundled_pbf)  # a forced re-import replaces, never duplicates
    assert again.places == first.places
    with pg_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(places)).scalar_one() == first.places
        tags = conn.execute(select(func.count()).select_from(place_categories)).scalar_one()
        pairs = select(place_categories.c.place_id, place_categories.c.tag).distinct().subquery()
        distinct = conn.execute(select(func.count()).select_from(pairs)).scalar_one()
    assert tags == distinct

    area = resolve_location(pg_db, "Kluuvi, Helsingfors, FI")
    assert (area.radius_m, area.country) == (1500, "FI")
    cafes = OsmPlacesSource(pg_db).search(["amenity=cafe"], resolve_location(pg_db, "helsinki"))
    engel = next(b for b in cafes if b.name == "Cafe Engel")
    assert (engel.phone, engel.street, engel.housenumber) == ("+3589652776", "Aleksanterinkatu", "26")
