from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from prospectpro.errors import InvalidInput
from prospectpro.places.importer import (
    BUSINESS_KEYS,
    ImportStats,
    ensure_bundled_places,
    file_sha256,
    import_pbf,
)
from prospectpro.store.db import Database
from prospectpro.store.schema import datasets, localities, place_categories, places

_TYPES = {"n": "node", "w": "way", "r": "relation"}


def _count(db: Database, table: object, *where: object) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _snapshot(db: Database) -> dict[str, object]:
    with db.read() as conn:
        return {
            "places": sorted(conn.execute(select(places.c.id, places.c.osm_type, places.c.osm_id)).all()),
            "categories": sorted(conn.execute(select(place_categories)).all()),
            "localities": sorted(conn.execute(select(localities.c.osm_type, localities.c.osm_id)).all()),
            "datasets": conn.execute(select(datasets.c.name, datasets.c.places)).all(),
        }


# --- the bundled extract ------------------------------------------------------


def test_import_counts(imported: tuple[Database, ImportStats], bundled_pbf: Path) -> None:
    db, stats = imported
    assert stats.dataset == "helsinki-center.osm.pbf"
    assert 1300 <= stats.places <= 1600
    assert stats.localities == 7
    assert stats.seconds < 5
    assert _count(db, places) == stats.places
    assert _count(db, place_categories, place_categories.c.tag == "amenity=cafe") >= 80
    assert _count(db, place_categories, place_categories.c.tag == "amenity=restaurant") >= 150
    with db.read() as conn:
        row = conn.execute(select(datasets)).one()
    assert (row.name, row.sha256, row.places, row.localities) == (
        stats.dataset,
        file_sha256(bundled_pbf),
        stats.places,
        7,
    )


def test_every_place_is_a_real_named_business(
    places_db: Database, osm_tags: dict[str, dict[str, str]]
) -> None:
    with places_db.read() as conn:
        rows = conn.execute(select(places)).all()
        cats = conn.execute(select(place_categories.c.place_id, place_categories.c.tag)).all()
    by_place: dict[int, set[str]] = {}
    for place_id, tag in cats:
        by_place.setdefault(place_id, set()).add(tag)
    for row in rows:
        # The stored id is the OSM object's own, not the area id osmium derives from it.
        tags = osm_tags[f"{_TYPES[row.osm_type]}/{row.osm_id}"]
        assert row.tags == tags
        assert row.name == tags["name"]
        expected = {f"{k}={tags[k]}" for k in BUSINESS_KEYS if k in tags}
        assert by_place[row.id] == expected
        assert row.category == next(f"{k}={tags[k]}" for k in BUSINESS_KEYS if k in tags)


def test_ways_and_relations_get_real_coordinates(places_db: Database) -> None:
    with places_db.read() as conn:
        rows = conn.execute(select(places).where(places.c.osm_type != "n")).all()
    kinds = {r.osm_type for r in rows}
    assert kinds == {"w", "r"}
    assert sum(r.osm_type == "w" for r in rows) >= 40
    for row in rows:
        assert 60.164 <= row.latitude <= 60.180, row
        assert 24.935 <= row.longitude <= 24.954, row


def test_localities(places_db: Database) -> None:
    with places_db.read() as conn:
        rows = {r.name: r for r in conn.execute(select(localities))}
    assert set(rows) == {
        "Helsinki", "Kaartinkaupunki", "Siltasaari", "Hakaniemi", "Kluuvi", "Kaisaniemi", "Keskusta",
    }  # fmt: skip
    helsinki = rows["Helsinki"]
    assert (helsinki.kind, helsinki.radius_m, helsinki.country) == ("city", 15000, "FI")
    assert "Helsingfors" in helsinki.names and helsinki.names[0] == "Helsinki"
    assert (rows["Kluuvi"].kind, rows["Kluuvi"].radius_m) == ("suburb", 1500)
    assert "Gloet" in rows["Kluuvi"].names
    assert (rows["Keskusta"].kind, rows["Keskusta"].radius_m) == ("neighbourhood", 700)
    assert {"Kaupungin keskusta", "Centrum"} <= set(rows["Keskusta"].names)
    # Suburbs carry no country tag: it comes from the addresses of businesses around them.
    assert {r.country for r in rows.values()} == {"FI"}


def test_reimport_is_idempotent(db: Database, bundled_pbf: Path) -> None:
    first = import_pbf(db, bundled_pbf)
    before = _snapshot(db)
    second = import_pbf(db, bundled_pbf)
    assert (second.places, second.localities) == (first.places, first.localities)
    assert _snapshot(db) == before  # same rows, same ids, no duplicate categories


def test_ensure_bundled_places_imports_once(db: Database) -> None:
    stats = ensure_bundled_places(db)
    assert stats is not None and stats.places > 1000
    assert ensure_bundled_places(db) is None
    assert _count(db, datasets) == 1
    assert _count(db, places) == stats.places


def test_missing_or_broken_file(db: Database, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        import_pbf(db, tmp_path / "nope.osm.pbf")
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"not a pbf")
    with pytest.raises(InvalidInput, match="cannot read OSM file"):
        import_pbf(db, broken)


# --- a small hand-made file ---------------------------------------------------


def _osm_xml(*objects: str) -> str:
    body = "\n".join(objects)
    return f"<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='test'>\n{body}\n</osm>\n"


def _node(node_id: int, lat: float, lon: float, **tags: str) -> str:
    tag_xml = "".join(f"<tag k='{k.replace('__', ':')}' v='{v}'/>" for k, v in tags.items())
    return f"<node id='{node_id}' version='1' lat='{lat}' lon='{lon}'>{tag_xml}</node>"


def _way(way_id: int, refs: list[int], **tags: str) -> str:
    nds = "".join(f"<nd ref='{r}'/>" for r in refs)
    tag_xml = "".join(f"<tag k='{k.replace('__', ':')}' v='{v}'/>" for k, v in tags.items())
    return f"<way id='{way_id}' version='1'>{nds}{tag_xml}</way>"


_CORNERS = [
    _node(10, 60.010, 25.010), _node(11, 60.010, 25.014),
    _node(12, 60.012, 25.014), _node(13, 60.012, 25.010),
    _node(20, 60.020, 25.020), _node(21, 60.020, 25.030),
    _node(22, 60.030, 25.030), _node(23, 60.030, 25.020),
]  # fmt: skip
_SHOP_WAY = _way(100, [10, 11, 12, 13, 10], name="Square Books", shop="books")
_MARKET = (
    _way(200, [20, 21, 22, 23, 20])
    + "<relation id='300' version='1'><member type='way' ref='200' role='outer'/>"
    "<tag k='type' v='multipolygon'/><tag k='name' v='Market'/><tag k='amenity' v='marketplace'/></relation>"
)
_TOWN = _node(1, 60.0, 25.0, name="Testtown", place="town", name__sv="Teststad")
_NOT_BUSINESSES = [
    _node(4, 60.003, 25.003, amenity="cafe"),  # no name
    _node(5, 60.004, 25.004, name="Just a name"),
]


def _write(path: Path, *objects: str) -> Path:
    path.write_text(_osm_xml(*objects), encoding="utf-8")
    return path


def test_small_file_geometry_and_updates(db: Database, tmp_path: Path) -> None:
    original = _write(
        tmp_path / "a.osm",
        _TOWN,
        _node(2, 60.001, 25.001, name="Cafe One", amenity="cafe", shop="bakery", addr__country="EE"),
        _node(3, 60.002, 25.002, name="Cafe Two", amenity="cafe"),
        *_NOT_BUSINESSES,
        *_CORNERS,
        _SHOP_WAY,
        _MARKET,
    )
    stats = import_pbf(db, original, dataset="test")
    assert (stats.dataset, stats.places, stats.localities) == ("test", 4, 1)
    with db.read() as conn:
        rows = {(r.osm_type, r.osm_id): r for r in conn.execute(select(places))}
        town = conn.execute(select(localities)).one()
        cats = set(conn.execute(select(place_categories.c.place_id, place_categories.c.tag)))
    assert set(rows) == {("n", 2), ("n", 3), ("w", 100), ("r", 300)}
    assert rows[("w", 100)].latitude == pytest.approx(60.011)
    assert rows[("w", 100)].longitude == pytest.approx(25.012)
    assert rows[("r", 300)].latitude == pytest.approx(60.025)
    assert rows[("r", 300)].longitude == pytest.approx(25.025)
    cafe_one = rows[("n", 2)]
    assert cafe_one.category == "amenity=cafe"
    assert {(cafe_one.id, "amenity=cafe"), (cafe_one.id, "shop=bakery")} <= cats
    assert (town.name, town.kind, town.radius_m) == ("Testtown", "town", 6000)
    assert town.names == ["Testtown", "Teststad"]
    assert town.country == "EE"  # the only addressed business within the town's radius

    updated = _write(
        tmp_path / "b.osm",
        _TOWN,
        _node(2, 60.001, 25.001, name="Cafe Uno", amenity="cafe"),
        *_CORNERS,
        _SHOP_WAY,
        _MARKET,
    )
    stats = import_pbf(db, updated, dataset="test")
    assert stats.places == 3
    with db.read() as conn:
        after = {(r.osm_type, r.osm_id): r for r in conn.execute(select(places))}
        cats = set(conn.execute(select(place_categories.c.place_id, place_categories.c.tag)))
        town = conn.execute(select(localities)).one()
        recorded = conn.execute(select(datasets)).all()
    assert set(after) == {("n", 2), ("w", 100), ("r", 300)}  # Cafe Two closed
    assert after[("n", 2)].name == "Cafe Uno"
    assert after[("n", 2)].id == cafe_one.id
    assert {t for pid, t in cats if pid == cafe_one.id} == {"amenity=cafe"}
    assert town.country is None  # no addressed business left, no country tag
    assert [(r.name, r.places, r.sha256) for r in recorded] == [("test", 3, file_sha256(updated))]
