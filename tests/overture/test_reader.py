"""The Overture reader on GeoParquet files written here: fields, filters, and row-group pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.business_types import resolve_business_type
from prospectpro.gate.errors import ProviderError
from prospectpro.providers import overture
from prospectpro.providers.overture import ReadStats, categories_for, locate, open_dataset, read_box
from tests.overture.files import place, write

AUSTIN_BOX = (30.20, -97.80, 30.33, -97.68)  # south, west, north, east


def _grid_release(folder: Path) -> Path:
    """Two files, each four row groups of 10 places, spatially sorted: one row group per 1° of longitude."""
    for f, lon0 in enumerate((-100.0, -96.0)):
        rows = []
        for g in range(4):
            for i in range(10):
                rows.append(place(f"f{f}g{g}i{i}", f"Dentist {f}-{g}-{i}", 30.25 + i * 0.001, lon0 + g + 0.5))
        write(folder / f"part-{f}.parquet", rows, row_group_size=10)
    return folder


def test_a_bbox_reads_only_the_row_groups_it_intersects(tmp_path: Path) -> None:
    folder = _grid_release(tmp_path / "release")
    dataset = open_dataset(locate(Settings(data_dir=tmp_path, overture_path=str(folder))))
    stats = ReadStats()
    # Longitude -97.5 is row group 2 of file 0 (its places sit at -97.5); no other group's bbox reaches it.
    table = read_box(dataset, (30.0, -97.6, 30.5, -97.4), stats=stats)
    assert (stats.files, stats.row_groups_total) == (2, 8)
    assert stats.row_groups_read == 1 and stats.rows_read == 10
    assert sorted(table.column("id").to_pylist()) == [f"f0g2i{i}" for i in range(10)]

    everything = ReadStats()
    assert read_box(dataset, (-90, -180, 90, 180), stats=everything).num_rows == 80
    assert everything.row_groups_read == 8

    nowhere = ReadStats()
    assert read_box(dataset, (10.0, 10.0, 11.0, 11.0), stats=nowhere).num_rows == 0
    assert nowhere.row_groups_read == 0


def test_fields_as_written_and_the_filters(tmp_path: Path) -> None:
    rows = [
        place("08f1", "Congress Avenue Dental", 30.2672, -97.7431, phones=["+15125550101"],
              websites=["https://congressdental.example"], emails=["front@congressdental.example"],
              freeform="700 Congress Ave", locality="Austin", postcode="78701", region="TX",
              datasets=["meta", "Foursquare"]),
        place("08f2", "Closed Smiles", 30.27, -97.74, status="permanently_closed"),
        place("08f3", "Maybe Dental", 30.27, -97.745, confidence=0.2),
        place("08f4", "Bean Bar", 30.27, -97.741, category="coffee_shop"),
        place("08f5", "Far Dental", 29.42, -98.49),
        place("08f6", None, 30.27, -97.742),
        place("08f7", "Alt Dental", 30.268, -97.744, category="health_and_medical", alternate=["general_dentistry"],
              datasets=["AllThePlaces"]),
    ]  # fmt: skip
    folder = tmp_path / "rel"
    write(folder / "a.parquet", rows)
    settings = Settings(data_dir=tmp_path, overture_path=str(folder), overture_min_confidence=0.5)
    dentist = resolve_business_type("dentist")
    area = Area(30.2672, -97.7431, 5000.0, "Austin", "US")
    source = overture.OverturePlacesSource(None, settings)  # type: ignore[arg-type]
    table = read_box(open_dataset(locate(settings)), overture.area_box(area))
    found = overture.select(overture.places_of(table), categories=categories_for(dentist.name, dentist.tags),
                            area=area, min_confidence=settings.overture_min_confidence)  # fmt: skip
    assert [b.source_id for b in found] == ["08f1", "08f7"]
    assert found.skipped == {"closed": 1, "outside_area": 0} and found.low_confidence == 1
    congress = found[0]
    assert congress.ref == "overture:08f1" and congress.source == "overture"
    assert (congress.name, congress.phone, congress.website, congress.email) == (
        "Congress Avenue Dental",
        "+15125550101",
        "https://congressdental.example",
        "front@congressdental.example",
    )
    assert (congress.street, congress.housenumber, congress.city, congress.postcode, congress.country) == (
        "700 Congress Ave",
        None,
        "Austin",
        "78701",
        "US",
    )
    assert congress.category == "dentist" and congress.fetched_at
    assert (congress.latitude, congress.longitude) == pytest.approx((30.2672, -97.7431), abs=1e-5)
    # The record's sources decide its licence: meta data is CDLA, an AllThePlaces-only record CC0.
    assert found.licences == {"08f1": "CDLA-Permissive-2.0", "08f7": "CC0-1.0"}
    assert source.name == "overture"


def test_every_business_type_has_overture_categories() -> None:
    from prospectpro.domain.business_types import all_business_types

    for bt in all_business_types():
        assert bt.overture and bt.name in bt.overture
    assert {"coffee_shop", "cafe"} <= set(resolve_business_type("coffee shop").overture)
    assert categories_for("amenity=fuel", ("amenity=fuel",)) >= {"fuel"}


def test_a_missing_release_is_a_source_failure(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, overture_path=str(tmp_path / "nothing-here"))
    with pytest.raises(ProviderError) as caught:
        open_dataset(locate(settings))
    assert caught.value.provider == "overture"


def test_release_and_enabled() -> None:
    s3 = Settings(overture_path="s3://overturemaps-us-west-2/release/2025-12-17.0/theme=places/type=place/")
    assert overture.release_of(s3) == "2025-12-17.0" and overture.enabled(s3)
    assert not overture.enabled(Settings(overture_path="off")) and not overture.enabled(Settings())
    assert overture.release_of(Settings(overture_path="/data/x", overture_release="r1")) == "r1"
