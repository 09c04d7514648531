from __future__ import annotations

from typing import Any

import pytest

from prospectpro.domain.business import Business
from prospectpro.domain.scoring import MAX_SCORE, SCORE_COMPONENTS, Score, score_business

ENGEL = Business(
    source="osm",
    source_id="node/60068035",
    name="Cafe Engel",
    street="Aleksanterinkatu",
    housenumber="26",
    postcode="00170",
    city="Helsinki",
    country="FI",
    phone="+3589652776",
)


def _b(**fields: Any) -> Business:
    return Business(source="osm", source_id="node/1", **fields)


def test_components_add_up() -> None:
    assert list(SCORE_COMPONENTS) == [
        "name", "address", "phone", "website", "email", "email_verified",
    ]  # fmt: skip
    assert sum(SCORE_COMPONENTS.values()) == MAX_SCORE == 100


def test_cafe_engel() -> None:
    score = score_business(ENGEL)
    assert score == Score(
        total=55,
        breakdown={"name": 10, "address": 25, "phone": 20, "website": 0, "email": 0,
                   "email_verified": 0},
    )  # fmt: skip


def test_complete_verified_record_scores_100() -> None:
    b = Business.from_dict({**ENGEL.to_dict(), "website": "www.cafeengel.fi"})
    score = score_business(b, email="info@cafeengel.fi", email_status="valid")
    assert score.total == 100
    assert score.breakdown == SCORE_COMPONENTS


def test_empty_record_scores_zero() -> None:
    score = score_business(_b(name=""))
    assert score.total == 0
    assert set(score.breakdown) == set(SCORE_COMPONENTS)
    assert all(v == 0 for v in score.breakdown.values())


@pytest.mark.parametrize(
    ("fields", "points"),
    [
        ({"street": "Aleksanterinkatu", "housenumber": "26", "city": "Helsinki"}, 25),
        ({"street": "Aleksanterinkatu", "housenumber": "26", "postcode": "00170"}, 25),
        ({"street": "Aleksanterinkatu", "housenumber": "26"}, 10),
        ({"city": "Helsinki"}, 10),
        ({"street": "Aleksanterinkatu", "housenumber": " ", "city": "Helsinki"}, 10),
        ({}, 0),
    ],
)
def test_address_points(fields: dict[str, str], points: int) -> None:
    assert score_business(_b(name="X", **fields)).breakdown["address"] == points


@pytest.mark.parametrize(
    ("website", "points"),
    [
        ("https://www.cafeengel.fi", 20),
        ("https://www.facebook.com/cafeengel", 10),
        ("cafeengel.business.site", 10),
        ("javascript:alert(1)", 0),
        (None, 0),
    ],
)
def test_website_points(website: str | None, points: int) -> None:
    assert score_business(_b(name="X", website=website)).breakdown["website"] == points


def test_phone_needs_a_valid_number_in_the_country() -> None:
    assert score_business(_b(name="X", phone="09 652776", country="FI")).breakdown["phone"] == 20
    assert score_business(_b(name="X", phone="09 652776")).breakdown["phone"] == 0
    assert score_business(_b(name="X", phone="garbage", country="FI")).breakdown["phone"] == 0


def test_email_from_record_or_from_enrichment() -> None:
    assert score_business(_b(name="X", email="info@cafeengel.fi")).breakdown["email"] == 15
    found = score_business(_b(name="X"), email="info@cafeengel.fi")
    assert found.breakdown["email"] == 15
    bad = score_business(_b(name="X", email="logo@2x.png"))
    assert bad.breakdown["email"] == 0


@pytest.mark.parametrize(
    ("status", "points"),
    [
        ("valid", 10),
        ("accept_all", 5),
        ("catchall", 5),
        ("invalid", 0),
        ("unknown", 0),
        (None, 0),
    ],
)
def test_email_verified_points(status: str | None, points: int) -> None:
    score = score_business(_b(name="X"), email="info@cafeengel.fi", email_status=status)
    assert score.breakdown["email_verified"] == points
    assert score.total == 10 + 15 + points


def test_verification_without_a_usable_email_counts_nothing() -> None:
    score = score_business(_b(name="X"), email_status="valid")
    assert score.breakdown["email"] == 0
    assert score.breakdown["email_verified"] == 0


def test_realistic_partial_record() -> None:
    b = _b(
        name="Robert's Coffee",
        street="Kaivokatu",
        city="Helsinki",
        country="FI",
        phone="+358 40 1234567; 09 652776",
        website="https://www.instagram.com/robertscoffee",
    )
    score = score_business(b, email="mailto:info@robertscoffee.com", email_status="accept_all")
    assert score.breakdown == {
        "name": 10, "address": 10, "phone": 20, "website": 10, "email": 15, "email_verified": 5,
    }  # fmt: skip
    assert score.total == 70
