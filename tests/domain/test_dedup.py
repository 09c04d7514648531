from __future__ import annotations

from typing import Any

from prospectpro.domain.business import Business
from prospectpro.domain.dedup import MAX_FINGERPRINT_LENGTH, fingerprint


def _b(source_id: str = "node/1", name: str = "Cafe Engel", **fields: Any) -> Business:
    return Business(source="osm", source_id=source_id, name=name, **fields)


def test_node_and_way_of_one_cafe_collide() -> None:
    node = _b("node/60068035", "Cafe Engel", street="Aleksanterinkatu", housenumber="26",
              country="FI", phone="+358 9 652776")  # fmt: skip
    way = _b("way/4242", "Café Engel", street="Aleksanterinkatu", housenumber="26",
             postcode="00170", city="Helsinki", country="FI")  # fmt: skip
    assert fingerprint(node) == fingerprint(way) == "na:cafe engel|aleksanterinkatu 26"


def test_chain_branches_at_different_addresses_differ() -> None:
    a = _b("node/1", "Robert's Coffee", street="Aleksanterinkatu", housenumber="13")
    b = _b("node/2", "Robert's Coffee", street="Kaivokatu", housenumber="8")
    assert fingerprint(a) != fingerprint(b)


def test_same_address_different_businesses_differ() -> None:
    a = _b("node/1", "Cafe Engel", street="Aleksanterinkatu", housenumber="26")
    b = _b("node/2", "Kirjakauppa", street="Aleksanterinkatu", housenumber="26")
    assert fingerprint(a) != fingerprint(b)


def test_name_and_phone_when_no_address() -> None:
    a = _b("node/1", "Cafe Engel", country="FI", phone="09 652776")
    b = _b("way/2", "CAFE ENGEL", country="FI", phone="+358 9 652 776")
    assert fingerprint(a) == fingerprint(b) == "np:cafe engel|+3589652776"


def test_address_beats_phone() -> None:
    b = _b(street="Aleksanterinkatu", housenumber="26", phone="+3589652776", country="FI")
    assert fingerprint(b).startswith("na:")


def test_incomplete_address_falls_through() -> None:
    b = _b(street="Aleksanterinkatu", phone="+3589652776", country="FI")
    assert fingerprint(b) == "np:cafe engel|+3589652776"


def test_website_domain_when_no_address_or_phone() -> None:
    a = _b("node/1", "Teemaa", website="www.teemaa.com")
    b = _b("node/2", "Teemaa Oy", website="https://teemaa.com/shop?x=1")
    assert fingerprint(a) == fingerprint(b) == "w:teemaa.com"


def test_social_website_is_not_an_identity() -> None:
    a = _b("node/1", "Pizza A", website="https://facebook.com/pizza.a")
    b = _b("node/2", "Pizza B", website="https://www.facebook.com/pizza.b")
    assert fingerprint(a) == "src:osm:node/1"
    assert fingerprint(a) != fingerprint(b)


def test_phone_alone_without_a_name() -> None:
    b = _b(name="", phone="+358 9 652776", country="FI", street="Aleksanterinkatu",
           housenumber="26")  # fmt: skip
    assert fingerprint(b) == "p:+3589652776"


def test_invalid_phone_is_ignored() -> None:
    b = _b(phone="12345", country="FI")
    assert fingerprint(b) == "src:osm:node/1"


def test_never_name_alone() -> None:
    a = _b("node/1", "Cafe Engel")
    b = _b("node/2", "Cafe Engel")
    assert fingerprint(a) == "src:osm:node/1"
    assert fingerprint(a) != fingerprint(b)


def test_over_long_keys_stay_bounded_and_distinct() -> None:
    a = _b("node/1", "A" * 500 + " one", street="Aleksanterinkatu", housenumber="26")
    b = _b("node/2", "A" * 500 + " two", street="Aleksanterinkatu", housenumber="26")
    assert len(fingerprint(a)) <= MAX_FINGERPRINT_LENGTH
    assert fingerprint(a).startswith("na#:")
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(a)
