"""Cross-source identity: pairs that must merge and pairs that must not."""

from __future__ import annotations

import pytest

from prospectpro.domain.business import Business
from prospectpro.domain.dedup import fingerprint
from prospectpro.domain.identity import THRESHOLDS, group, name_key, names_close, same_business

M = 1 / 111_195  # one metre of latitude, in degrees


def b(source: str, ident: str, name: str, lat: float = 60.1689, lon: float = 24.9517, **kw: object) -> Business:
    return Business(source=source, source_id=ident, name=name, latitude=lat, longitude=lon, country="FI", **kw)  # type: ignore[arg-type]


def test_name_key() -> None:
    assert name_key("Café Engel Oy") == "cafe engel"
    assert name_key("Congress Ave. Dental, LLC") == name_key("congress avenue dental")
    assert name_key("Smith & Sons GmbH") == "smith sons"


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        # The same café in OSM and Overture, spelt differently, 25 m apart.
        (b("osm", "node/1", "Cafe Engel"), b("overture", "08a", "Café Engel Oy", 60.1689 + 25 * M), True),
        # A phone match with names written differently (Google's long name), 90 m apart.
        (b("osm", "node/2", "Hammaslääkäri Virtanen", phone="+358 9 123 4567"),
         b("google", "ChIJ2", "Dental Clinic Dr. Virtanen Helsinki", 60.1689 + 90 * M, phone="09 1234567"), True),
        # A website domain match (www. and paths aside).
        (b("osm", "node/3", "HPS", website="https://www.hydeparksmiles.example/"),
         b("overture", "08c", "Hyde Park Smiles", 60.1689 + 60 * M, website="http://hydeparksmiles.example/contact"),
         True),
        # The same phone but too far apart for one place.
        (b("osm", "node/4", "A", phone="+358 9 123 4567"), b("overture", "08d", "B", 60.1689 + 400 * M,
                                                             phone="+358 9 123 4567"), False),
        # A shared platform is no identity (both on facebook.com).
        (b("osm", "node/5", "Pizza One", website="https://facebook.com/pizzaone"),
         b("overture", "08e", "Kebab Two", 60.1689 + 10 * M, website="https://facebook.com/kebabtwo"), False),
        # Two different businesses in one building: same address, different names, no shared contact.
        (b("osm", "node/6", "Smith Dental", street="Main St", housenumber="5"),
         b("overture", "08f", "Smith Law Office", 60.1689 + 2 * M, street="Main St", housenumber="5"), False),
        # A chain's two branches 300 m apart: the same name and head-office domain, two businesses.
        (b("osm", "node/7", "Starbucks", website="https://www.starbucks.com"),
         b("overture", "08g", "Starbucks", 60.1689 + 300 * M, website="https://starbucks.com/store/1"), False),
        # One source's own two records are two places, even side by side.
        (b("overture", "08h", "Starbucks"), b("overture", "08i", "Starbucks", 60.1689 + 20 * M), False),
        # A shared source id is the same business wherever the coordinates are.
        (b("osm", "node/8", "X"), b("google", "ChIJ8", "Y", 61.0, also_from=("osm:node/8",)), True),
        # Close names too far apart (beyond name_m) do not merge.
        (b("osm", "node/9", "Cafe Regatta"), b("overture", "08j", "Café Regatta", 60.1689 + 150 * M), False),
    ],
)  # fmt: skip
def test_pairs(left: Business, right: Business, same: bool) -> None:
    assert same_business(left, right) is same
    assert (len(group([left, right])) == 1) is same


def test_a_chains_domain_shared_by_far_apart_branches_identifies_none() -> None:
    # Three Starbucks from OSM and Overture; the domain links branches a km apart, so it is ignored,
    # and the one pair close by with the same name merges by name.
    items = [
        b("osm", "node/1", "Starbucks", website="https://starbucks.com"),
        b("overture", "08a", "Starbucks Coffee", 60.1689 + 140 * M, website="https://starbucks.com"),
        b("overture", "08b", "Starbucks", 60.1689 + 2000 * M, website="https://starbucks.com"),
        b("overture", "08c", "Starbucks", 60.1689 + 10 * M, website="https://starbucks.com"),
    ]
    assert group(items) == [[0, 3], [1], [2]]


def test_names_close_threshold_in_one_place() -> None:
    assert THRESHOLDS.name_score == 88.0
    assert names_close("South Lamar Dentistry", "South Lamar Dentistry PLLC")
    assert not names_close("Smile Dental", "Smile Law")
    assert not names_close("", "x")


def test_the_exact_fingerprint_still_merges() -> None:
    a = b("osm", "node/1", "Cafe Engel", street="Aleksanterinkatu", housenumber="26")
    c = b("osm", "way/2", "Cafe Engel", 61.0, street="Aleksanterinkatu", housenumber="26")
    assert group([a, c], [fingerprint(a), fingerprint(c)]) == [[0, 1]]
    assert group([a, c]) == [[0], [1]]
