from __future__ import annotations

import math
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest

from prospectpro.domain.area import Area
from prospectpro.domain.business import Business
from prospectpro.domain.campaign import Tier
from prospectpro.places.importer import import_pbf
from prospectpro.places.locations import METERS_PER_DEGREE, distance_m, resolve_location
from prospectpro.providers.osm import OsmPlacesSource
from prospectpro.providers.protocols import CallContext, DiscoveryQuery
from prospectpro.store.db import Database

# Business field → the OSM tags it may come from.
_FROM_TAGS = {
    "name": ("name",),
    "street": ("addr:street",),
    "housenumber": ("addr:housenumber",),
    "postcode": ("addr:postcode",),
    "city": ("addr:city",),
    "phone": ("phone", "contact:phone", "contact:mobile"),
    "website": ("website", "contact:website", "url"),
    "email": ("email", "contact:email"),
    "opening_hours": ("opening_hours",),
}


@pytest.fixture(scope="module")
def source(places_db: Database) -> OsmPlacesSource:
    return OsmPlacesSource(places_db)


@pytest.fixture(scope="module")
def helsinki(places_db: Database) -> Area:
    return resolve_location(places_db, "Helsinki")


def test_cafes_in_helsinki(source: OsmPlacesSource, helsinki: Area) -> None:
    cafes = source.search(["amenity=cafe"], helsinki)
    assert len(cafes) >= 80
    assert source.name == "osm"
    assert all(b.source == "osm" and b.category == "amenity=cafe" for b in cafes)
    assert len({b.source_id for b in cafes}) == len(cafes)
    engel = next(b for b in cafes if b.name == "Cafe Engel")
    assert engel.source_id == "node/307465178"
    assert engel.source_url == "https://www.openstreetmap.org/node/307465178"
    assert engel.phone == "+3589652776"
    assert (engel.street, engel.housenumber, engel.postcode, engel.city) == (
        "Aleksanterinkatu", "26", "00170", "Helsinki",
    )  # fmt: skip
    assert engel.country == "FI"
    assert engel.latitude == pytest.approx(60.168913)
    assert engel.longitude == pytest.approx(24.951745)


def test_fields_come_only_from_osm_tags(
    source: OsmPlacesSource, helsinki: Area, osm_tags: dict[str, dict[str, str]]
) -> None:
    found = source.search(["amenity=cafe", "amenity=restaurant", "shop=clothes"], helsinki)
    assert len(found) > 300
    for business in found:
        tags = osm_tags[business.source_id]
        for name, keys in _FROM_TAGS.items():
            value = getattr(business, name)
            present = [tags[k] for k in keys if k in tags]
            if value is None:
                assert not any(v.strip() for v in present), (business.source_id, name)
            else:
                # Exactly the first tag present, or its first ";"-value.
                assert present and value in (present[0], present[0].split(";")[0].strip()), (
                    business.source_id, name, value, present,
                )  # fmt: skip
        key, _, tag_value = (business.category or "").partition("=")
        assert tags.get(key) == tag_value
        if "addr:country" in tags:
            assert business.country == tags["addr:country"]
        else:
            assert business.country == helsinki.country


def test_missing_tags_stay_none(source: OsmPlacesSource, helsinki: Area) -> None:
    cafes = source.search(["amenity=cafe"], helsinki)
    # The data really has gaps; they must show as gaps, not as made-up values.
    assert any(b.phone is None for b in cafes)
    assert any(b.website is None for b in cafes)
    assert any(b.email is None for b in cafes)
    assert any(b.street is None for b in cafes)


def test_limit_returns_the_nearest_in_order(source: OsmPlacesSource) -> None:
    centre = Area(60.1699, 24.9384, 5000, "centre", "FI")
    everything = source.search(["amenity=cafe", "amenity=restaurant"], centre)
    nearest = source.search(["amenity=cafe", "amenity=restaurant"], centre, limit=10)
    assert len(nearest) == 10
    assert nearest == everything[:10]
    distances = [distance_m(centre.latitude, centre.longitude, b.latitude, b.longitude) for b in everything]
    assert distances == sorted(distances)


def test_smaller_radius_returns_fewer(source: OsmPlacesSource) -> None:
    wide = Area(60.1699, 24.9384, 2000, "wide", "FI")
    narrow = Area(60.1699, 24.9384, 250, "narrow", "FI")
    all_cafes = source.search(["amenity=cafe"], wide)
    near_cafes = source.search(["amenity=cafe"], narrow)
    assert 0 < len(near_cafes) < len(all_cafes)
    assert {b.source_id for b in near_cafes} <= {b.source_id for b in all_cafes}
    for b in near_cafes:
        assert distance_m(narrow.latitude, narrow.longitude, b.latitude, b.longitude) <= 250


def test_category_is_the_first_requested_tag_the_place_has(source: OsmPlacesSource, helsinki: Area) -> None:
    found = source.search(["shop=bakery", "amenity=cafe"], helsinki)
    assert {b.category for b in found} == {"shop=bakery", "amenity=cafe"}


def test_nothing_outside_the_data_or_for_unknown_tags(source: OsmPlacesSource, helsinki: Area) -> None:
    assert source.search(["amenity=cafe"], Area(51.5, -0.12, 5000, "London", "GB")) == []
    assert source.search(["amenity=no_such_thing"], helsinki) == []
    assert source.search([], helsinki) == []
    assert source.search(["amenity=cafe"], helsinki, limit=0) == []


def test_ways_are_found_with_their_osm_type(source: OsmPlacesSource, helsinki: Area) -> None:
    tags = ["amenity=place_of_worship", "tourism=museum", "shop=department_store", "amenity=theatre"]
    found = source.search(tags, helsinki)
    ways = [b for b in found if b.source_id.startswith("way/")]
    assert ways
    assert all(b.source_url == f"https://www.openstreetmap.org/{b.source_id}" for b in ways)


def test_pipeline_protocol_call(source: OsmPlacesSource, helsinki: Area) -> None:
    query = DiscoveryQuery(tags=("amenity=cafe",), type_name="cafe", area=helsinki, wanted=5)
    ctx = CallContext(job_id="job", owner_id="owner", tier=Tier.base, wanted=5, budget_limit=Decimal(5))
    assert source.discover(query, ctx) == source.search(["amenity=cafe"], helsinki)


def test_business_round_trips(source: OsmPlacesSource, helsinki: Area) -> None:
    for business in source.search(["amenity=cafe"], helsinki, limit=5):
        assert Business.from_dict(business.to_dict()) == business
        assert {f.name for f in fields(business)} >= set(_FROM_TAGS)


@pytest.mark.parametrize(("lat", "lon"), [(0.0, 0.0), (70.0, 25.0), (-45.0, 179.995)])
def test_circle_edge_is_not_cut_by_the_bounding_box(
    db: Database, tmp_path: Path, lat: float, lon: float
) -> None:
    # Points just inside the radius due north, east and west (across the antimeridian at 180°).
    radius = 1000.0
    dlat = 999.0 / METERS_PER_DEGREE
    dlon = dlat / math.cos(math.radians(lat))
    points = [(lat + dlat, lon), (lat, lon + dlon), (lat, lon - dlon), (lat + 2 * dlat, lon)]
    nodes = "".join(
        f"<node id='{i}' version='1' lat='{p_lat:.7f}' lon='{(p_lon + 180) % 360 - 180:.7f}'>"
        f"<tag k='name' v='Cafe {i}'/><tag k='amenity' v='cafe'/></node>"
        for i, (p_lat, p_lon) in enumerate(points, start=1)
    )
    path = tmp_path / "edge.osm"
    path.write_text(f"<?xml version='1.0'?><osm version='0.6'>{nodes}</osm>", encoding="utf-8")
    import_pbf(db, path)
    found = OsmPlacesSource(db).search(["amenity=cafe"], Area(lat, lon, radius, "edge", None))
    assert sorted(b.name for b in found) == ["Cafe 1", "Cafe 2", "Cafe 3"]
