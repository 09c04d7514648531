from __future__ import annotations

import pytest

from prospectpro.domain.area import Area
from prospectpro.errors import InvalidInput
from prospectpro.places.locations import known_localities, resolve_location
from prospectpro.store.db import Database


@pytest.mark.parametrize("text", ["Helsinki", "helsingfors", "  HELSINKI ", "Stadi", "Helsingfors, FI"])
def test_city_in_any_spelling(places_db: Database, text: str) -> None:
    area = resolve_location(places_db, text)
    assert area.latitude == pytest.approx(60.1674, abs=1e-3)
    assert area.longitude == pytest.approx(24.9426, abs=1e-3)
    assert (area.radius_m, area.country) == (15000, "FI")
    assert area.label.startswith("Helsinki")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Kluuvi", "Kluuvi"),
        ("KLUUVI", "Kluuvi"),
        ("gloet", "Kluuvi"),
        ("Kluuvi, Helsinki", "Kluuvi, Helsinki"),
        ("Kluuvi, Helsingfors", "Kluuvi, Helsinki"),
        ("Kluuvi, Helsinki, Finland", "Kluuvi, Helsinki, Finland"),
        ("Kluuvi,Helsinki,fi", "Kluuvi, Helsinki, Finland"),
    ],
)
def test_suburb_with_qualifiers(places_db: Database, text: str, label: str) -> None:
    area = resolve_location(places_db, text)
    assert area.latitude == pytest.approx(60.1708, abs=1e-3)
    assert area.longitude == pytest.approx(24.9473, abs=1e-3)
    assert (area.radius_m, area.country, area.label) == (1500, "FI", label)


def test_coordinates(places_db: Database) -> None:
    area = resolve_location(places_db, "60.17,24.94")
    assert area == Area(60.17, 24.94, 1000, "60.1700, 24.9400 (r=1000 m)", None)
    area = resolve_location(places_db, " 60.17, 24.94, 300 ")
    assert area == Area(60.17, 24.94, 300, "60.1700, 24.9400 (r=300 m)", None)
    assert resolve_location(places_db, "-33.9,151.2,50000").radius_m == 50000


def test_area_round_trips_through_json(places_db: Database) -> None:
    area = resolve_location(places_db, "Kluuvi, Helsinki")
    assert Area.from_dict(area.to_dict()) == area


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 201, "too long"),
        ("91,24", "latitude"),
        ("-90.5,24", "latitude"),
        ("60,181", "longitude"),
        ("60,24,0", "radius"),
        ("60,24,50001", "radius"),
        ("60,24,1,2", "lat,lon"),
        ("60,abc", "lat,lon"),
        ("Kluuvi,,Helsinki", "empty part"),
    ],
)
def test_invalid_input(places_db: Database, text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        resolve_location(places_db, text)


def test_unknown_place_gives_help(places_db: Database) -> None:
    with pytest.raises(InvalidInput) as err:
        resolve_location(places_db, "Atlantis")
    assert err.value.message.startswith("unknown location 'Atlantis': not in the imported places data.")
    assert "prospectpro places import FILE.osm.pbf" in err.value.message
    assert err.value.details == {"suggestions": []}


def test_misspelling_gets_suggestions(places_db: Database) -> None:
    with pytest.raises(InvalidInput) as err:
        resolve_location(places_db, "Helsinkk")
    assert err.value.details["suggestions"][0] == "Helsinki"
    assert "Did you mean: Helsinki" in err.value.message


@pytest.mark.parametrize(
    ("text", "qualifier"),
    [
        ("Kluuvi, Stockholm", "Stockholm"),
        ("Kluuvi, Sweden", "Sweden"),
        ("Kluuvi, SE", "SE"),
        # Centres 300 m apart, but a city does not lie inside a suburb.
        ("Helsinki, Kluuvi", "Kluuvi"),
    ],
)
def test_unmatched_qualifier(places_db: Database, text: str, qualifier: str) -> None:
    with pytest.raises(InvalidInput, match=qualifier) as err:
        resolve_location(places_db, text)
    assert err.value.details["qualifier"] == qualifier


def test_empty_database_says_what_to_do(db: Database) -> None:
    with pytest.raises(InvalidInput, match="Import an extract"):
        resolve_location(db, "Helsinki")
    assert known_localities(db) == []


def test_known_localities(places_db: Database) -> None:
    names = known_localities(places_db)
    assert names[0] == "Helsinki"  # the biggest first
    assert names[-1] == "Keskusta"
    assert sorted(names) == sorted(
        ["Helsinki", "Kaartinkaupunki", "Siltasaari", "Hakaniemi", "Kluuvi", "Kaisaniemi", "Keskusta"]
    )
