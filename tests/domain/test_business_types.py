from __future__ import annotations

import pytest

from prospectpro.domain.business_types import (
    MAX_TYPE_LENGTH,
    BusinessType,
    all_business_types,
    resolve_business_type,
    suggest,
)
from prospectpro.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "name", "tags"),
    [
        ("cafe", "cafe", ("amenity=cafe",)),
        ("coffee shop", "cafe", ("amenity=cafe",)),
        ("Coffee Shops", "cafe", ("amenity=cafe",)),
        ("café", "cafe", ("amenity=cafe",)),
        ("  CAFES ", "cafe", ("amenity=cafe",)),
        ("dentist", "dentist", ("amenity=dentist", "healthcare=dentist")),
        ("dentists", "dentist", ("amenity=dentist", "healthcare=dentist")),
        ("doctor", "doctor", ("amenity=doctors", "healthcare=doctor")),
        ("hair salon", "hairdresser", ("shop=hairdresser",)),
        ("hairdresser", "hairdresser", ("shop=hairdresser",)),
        ("barbers", "hairdresser", ("shop=hairdresser",)),
        ("plumber", "plumber", ("craft=plumber",)),
        ("electricians", "electrician", ("craft=electrician",)),
        ("vet", "veterinary", ("amenity=veterinary",)),
        ("attorneys", "lawyer", ("office=lawyer",)),
        ("real estate agent", "real_estate_agent", ("office=estate_agent",)),
        ("hotel", "hotel", ("tourism=hotel",)),
        ("gym", "gym", ("leisure=fitness_centre",)),
        ("fitness", "gym", ("leisure=fitness_centre",)),
        ("beauty salon", "beauty_salon", ("shop=beauty",)),
        ("mechanic", "car_repair", ("shop=car_repair",)),
        ("car repair", "car_repair", ("shop=car_repair",)),
        ("physiotherapist", "physiotherapist", ("healthcare=physiotherapist",)),
        ("architect", "architect", ("office=architect",)),
        ("software company", "it_company", ("office=it",)),
        ("company", "company", ("office=company",)),
        ("bakeries", "bakery", ("shop=bakery",)),
        ("pharmacies", "pharmacy", ("amenity=pharmacy", "healthcare=pharmacy")),
        ("fast food", "fast_food", ("amenity=fast_food",)),
        ("fast_food", "fast_food", ("amenity=fast_food",)),
        ("grocery", "supermarket", ("shop=supermarket",)),
        ("jeweller", "jewelry", ("shop=jewelry",)),
        ("clothing store", "clothes", ("shop=clothes",)),
        ("b&b", "guest_house", ("tourism=guest_house",)),
    ],
)
def test_resolves(text: str, name: str, tags: tuple[str, ...]) -> None:
    bt = resolve_business_type(text)
    assert (bt.name, bt.tags) == (name, tags)


def test_wine_and_liquor_store_uses_shop_alcohol() -> None:
    assert "shop=alcohol" in resolve_business_type("liquor store").tags
    assert resolve_business_type("wine store") == resolve_business_type("alcohol")


def test_raw_known_tag_resolves_to_its_type() -> None:
    assert resolve_business_type("amenity=cafe").name == "cafe"
    assert resolve_business_type("Healthcare = Dentist").name == "dentist"


def test_raw_unknown_tag_is_ad_hoc_and_round_trips() -> None:
    bt = resolve_business_type("craft=winery")
    assert bt == BusinessType("craft=winery", "Winery", ("craft=winery",), ())
    assert resolve_business_type(bt.name) == bt


def test_raw_tag_on_non_business_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unsupported OSM key 'building'"):
        resolve_business_type("building=yes")


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty(text: str) -> None:
    with pytest.raises(InvalidInput, match="business type is empty"):
        resolve_business_type(text)


def test_too_long() -> None:
    with pytest.raises(InvalidInput, match=str(MAX_TYPE_LENGTH)) as exc:
        resolve_business_type("cafe" * 125)
    assert exc.value.details == {"max_length": MAX_TYPE_LENGTH}


def test_unknown_with_suggestions() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_business_type("resturant")
    assert exc.value.message == "unknown business type 'resturant'. Did you mean: restaurant?"
    assert exc.value.details == {"suggestions": ["restaurant"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("dentits", "dentist"), ("plumbrs", "plumber"), ("hotle", "hotel"), ("hair", "hairdresser")],
)
def test_suggestions_contain_the_meant_type(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_business_type(text)
    suggestions = exc.value.details["suggestions"]
    assert expected in suggestions
    assert len(suggestions) == len(set(suggestions)) <= 5
    assert f"Did you mean: {', '.join(suggestions)}?" in exc.value.message


def test_unknown_without_suggestions_points_to_the_list() -> None:
    with pytest.raises(InvalidInput) as exc:
        resolve_business_type("xyzzy")
    assert exc.value.details == {"suggestions": []}
    assert "unknown business type 'xyzzy'" in exc.value.message
    assert "cafe" in exc.value.message
    assert "`prospectpro types` lists them all" in exc.value.message


def test_catalogue() -> None:
    types = all_business_types()
    names = [bt.name for bt in types]
    assert len(types) >= 45
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    keys = {"amenity", "craft", "healthcare", "leisure", "office", "shop", "tourism"}
    for bt in types:
        assert bt.label and bt.tags
        assert all(tag.split("=")[0] in keys for tag in bt.tags)
        # Every name and synonym resolves back to its own type.
        for phrase in (bt.name, bt.label, *bt.synonyms):
            assert resolve_business_type(phrase) is bt, phrase


def test_suggest() -> None:
    assert suggest("cof") == ["coffee", "coffee bar", "coffee house", "coffee shop", "coffeehouse"]
    assert suggest("DENT", limit=3) == ["dentist", "dental clinic", "dental office"]
    assert "hair salon" in suggest("salon")  # contained, not only prefixed
    assert suggest("zzzz") == []
    assert suggest("cafe", limit=0) == []
    assert len(suggest("", limit=3)) == 3
    for phrase in suggest("shop", limit=50):
        resolve_business_type(phrase)
