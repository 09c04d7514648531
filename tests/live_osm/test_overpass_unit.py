"""The Overpass query as written, and its answers as read."""

from __future__ import annotations

import json

import httpx
import pytest

from prospectpro.domain.area import Area
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.providers import overpass


def test_the_query_asks_every_tag_in_the_boundary_with_centres() -> None:
    area = Area(30.27, -97.74, 25000, "Austin", "US", (30.1, -97.9, 30.5, -97.5), "relation/113314")
    query = overpass.build_query(
        ["amenity=dentist", "healthcare=dentist", "amenity=dentist"], area, timeout=60, maxsize=1024
    )
    assert query == (
        "[out:json][timeout:60][maxsize:1024];area(id:3600113314)->.a;"
        '(nwr["amenity"="dentist"](area.a);nwr["healthcare"="dentist"](area.a););out center tags;'
    )


def test_a_place_without_a_boundary_is_asked_by_its_box() -> None:
    node_place = Area(30.27, -97.74, 900, "x", None, (30.26, -97.75, 30.28, -97.73), "node/5")
    assert "(30.2600000,-97.7500000,30.2800000,-97.7300000);" in overpass.build_query(["shop=bakery"], node_place)
    circle = overpass.build_query(["shop=bakery"], Area(0.0, 0.0, 1000, "c", None))
    assert 'nwr["shop"="bakery"](-0.00899' in circle and "area(" not in circle


def test_a_tag_that_is_no_tag_is_refused() -> None:
    with pytest.raises(ValueError):
        overpass.build_query(['amenity=cafe"];out;'], Area(0, 0, 100, "x", None))
    with pytest.raises(ValueError):
        overpass.build_query([], Area(0, 0, 100, "x", None))


def test_the_answer_keeps_named_located_objects() -> None:
    body = json.dumps(
        {
            "osm3s": {"timestamp_osm_base": "2026-12-01T00:00:00Z"},
            "elements": [
                {"type": "node", "id": 1, "lat": 1.5, "lon": 2.5, "tags": {"name": "A", "amenity": "cafe"}},
                {"type": "way", "id": 2, "center": {"lat": 1.0, "lon": 2.0}, "tags": {"name": "B", "shop": "x"}},
                {"type": "relation", "id": 3, "center": {"lat": 1.0, "lon": 2.0}, "tags": {"name": "C"}},
                {"type": "way", "id": 4, "tags": {"name": "no centre"}},
                {"type": "node", "id": 5, "lat": 1, "lon": 2, "tags": {"amenity": "cafe"}},
                {"type": "node", "id": 6, "lat": 1, "lon": 2},
                {"type": "area", "id": 7, "tags": {"name": "an area"}},
                {"type": "node", "id": 8, "lat": 95, "lon": 2, "tags": {"name": "off the map"}},
                "junk",
            ],
        }
    ).encode()
    elements, meta = overpass.parse(body)
    assert [(e.osm_type, e.osm_id, e.latitude, e.longitude) for e in elements] == [
        ("n", 1, 1.5, 2.5), ("w", 2, 1.0, 2.0), ("r", 3, 1.0, 2.0)
    ]  # fmt: skip
    assert meta["osm3s"]["timestamp_osm_base"] == "2026-12-01T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"elements": [], "remark": "runtime error: Query timed out in \\"query\\""}', ProviderErrorKind.timeout),
        (b'{"elements": [], "remark": "runtime error: Query run out of memory"}', ProviderErrorKind.unavailable),
        (b"<html>", ProviderErrorKind.malformed),
        (b"[1, 2]", ProviderErrorKind.malformed),
        (b'{"version": 0.6}', ProviderErrorKind.malformed),
    ],
)
def test_an_answer_that_is_no_answer(body: bytes, kind: ProviderErrorKind) -> None:
    with pytest.raises(ProviderError) as err:
        overpass.parse(body)
    assert err.value.kind == kind and err.value.provider == "overpass"


def test_the_status_page_says_when_a_slot_is_free() -> None:
    assert overpass.slot_wait("Rate limit: 2\n2 slots available now.\n") == 0
    text = "Slot available after: 2026-12-02T00:00:09Z, in 9 seconds.\nSlot available after: 2026-12-02T00:00:30Z, in 30 seconds."
    assert overpass.slot_wait(text) == 9
    assert overpass.slot_wait("something else") is None


@pytest.mark.parametrize(
    ("status", "retry", "kind"),
    [
        (200, False, None),
        (429, False, ProviderErrorKind.rate_limited),  # fetch asks /api/status first
        (504, True, ProviderErrorKind.unavailable),
        (400, False, ProviderErrorKind.bad_request),
    ],
)
def test_how_an_http_answer_is_read(status: int, retry: bool, kind: ProviderErrorKind | None) -> None:
    verdict = overpass.classify(httpx.Response(status, text="<p>Error: x</p>"))
    assert verdict.ok == (status == 200) and verdict.retry == retry and verdict.kind == kind
