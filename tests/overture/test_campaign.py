"""Campaigns where only the Overture files know the area; `places import-overture`, then offline."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from prospectpro.bootstrap import build_worker
from prospectpro.cli import app
from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.jobs.worker import Worker
from prospectpro.pipeline.runner import configured_sources
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID
from tests.live_osm.conftest import leads_of, wait_until_done
from tests.overture.files import place, write

AUSTIN = "30.2672,-97.7431,3000"
RECORDS = [
    place("08f2a", "Congress Avenue Dental", 30.2672, -97.7431, phones=["+1 512-555-0101"],
          websites=["https://congressdental.example"], emails=["hello@congressdental.example"],
          freeform="700 Congress Ave", locality="Austin", postcode="78701", region="TX"),
    place("08f2b", "Hyde Park Smiles", 30.2750, -97.7400, phones=["+15125550102"], datasets=["Foursquare"]),
    place("08f2c", "Closed Dental", 30.2680, -97.7440, status="permanently_closed"),
    place("08f2d", "Unsure Dental", 30.2690, -97.7450, confidence=0.1),
    place("08f2e", "Lamar Coffee", 30.2660, -97.7420, category="coffee_shop"),
    place("08f2f", "San Antonio Dental", 29.4241, -98.4936),
]  # fmt: skip
EXPECTED = {"Congress Avenue Dental", "Hyde Park Smiles"}


def digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


@pytest.fixture
def release(tmp_path: Path) -> Path:
    folder = tmp_path / "release" / "theme=places" / "type=place"
    write(folder / "part-0.parquet", RECORDS[:3], row_group_size=2)
    write(folder / "part-1.parquet", RECORDS[3:], row_group_size=2)
    return folder


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if not worker.stopped:
            worker.stop(timeout=10)


def run_campaign(db: Database, settings: Settings, workers: list[Worker], **fields: Any) -> tuple[Any, list[dict]]:
    request = CampaignRequest.model_validate(
        {
            "business_type": "dentist",
            "location": AUSTIN,
            "min_score": 0,
            "max_results": 50,
            "sources": ["overture"],
            **fields,
        }
    )
    job = submit_campaign(db, settings, LOCAL_USER_ID, request).job
    workers.append(build_worker(db, settings).start())
    done = wait_until_done(db, job.id)
    assert done.status.value == "completed", done.error
    return done, leads_of(db, done)


def test_a_campaign_only_the_overture_files_cover(
    db: Database, tmp_path: Path, release: Path, workers: list[Worker]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", overture_path=str(release), poll_interval=0.05, lease_seconds=5.0)
    assert "overture" in configured_sources(settings)
    assert "overture" not in configured_sources(Settings(data_dir=tmp_path / "data"))
    done, leads = run_campaign(db, settings, workers)
    assert done.metrics["source_counts"] == {"overture": 2} and done.metrics["failed_sources"] == []
    assert done.metrics["skipped"]["closed"] == 1
    by_name = {lead["business_name"]: lead for lead in leads}
    assert set(by_name) == EXPECTED  # the closed and the low-confidence place are not leads
    congress = by_name["Congress Avenue Dental"]
    assert congress["sources"][0] == "overture:08f2a"
    assert digits(congress["phone"]) == digits("+1 512-555-0101")
    assert congress["website"] == "https://congressdental.example"
    assert congress["email"] == "hello@congressdental.example"
    assert "700 Congress Ave" in congress["address"] and "Austin" in congress["address"]
    assert by_name["Hyde Park Smiles"]["sources"][0] == "overture:08f2b"


def test_an_unreachable_release_is_a_failed_source(db: Database, tmp_path: Path, workers: list[Worker]) -> None:
    settings = Settings(data_dir=tmp_path / "data", overture_path=str(tmp_path / "gone"), poll_interval=0.05,
                        lease_seconds=5.0)  # fmt: skip
    done, leads = run_campaign(db, settings, workers)
    assert leads == []
    assert [f["source"] for f in done.metrics["failed_sources"]] == ["overture"]


def test_import_overture_then_a_campaign_with_the_network_off(tmp_path: Path, release: Path) -> None:
    env = {"PROSPECTPRO_DATA_DIR": str(tmp_path / "data"), "PROSPECTPRO_POLL_INTERVAL": "0.05",
           "PROSPECTPRO_OVERTURE_PATH": str(release)}  # fmt: skip
    runner = CliRunner()
    imported = runner.invoke(app, ["places", "import-overture", "--bbox", "-97.80,30.20,-97.68,30.33"], env=env)
    assert imported.exit_code == 0, imported.output
    assert "imported 5 Overture places" in imported.output and "Overture Maps Foundation" in imported.output
    # The release is gone (as if unreachable): the campaign reads the imported copy. Tests have no network.
    shutil.rmtree(release)
    found = runner.invoke(app, ["discover", "dentist", AUSTIN, "--sources", "overture", "--min-score", "0", "--json"],
                          env=env)  # fmt: skip
    assert found.exit_code == 0, found.output
    document = json.loads(found.stdout)
    assert document["job"]["status"] == "completed"
    assert {lead["business_name"] for lead in document["leads"]} == EXPECTED
    bad = runner.invoke(app, ["places", "import-overture", "--bbox", "1,2,3"], env=env)
    assert bad.exit_code != 0 and "W,S,E,N" in bad.output


def test_a_business_delivered_under_another_spelling_is_delivered(
    db: Database, tmp_path: Path, release: Path, workers: list[Worker]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", overture_path=str(release), poll_interval=0.05, lease_seconds=5.0)
    first, leads = run_campaign(db, settings, workers)
    assert len(leads) == 2
    # The next release spells the same places differently (new names, another phone): their fingerprints
    # differ, their Overture ids do not, so the owner does not get them again.
    renamed = tmp_path / "next" / "theme=places" / "type=place"
    respelt = [
        {**r, "names": {**r["names"], "primary": r["names"]["primary"] + " Group"}, "phones": ["+15125559999"]}
        for r in RECORDS
    ]
    write(renamed / "part-0.parquet", respelt)
    again, leads = run_campaign(db, settings.model_copy(update={"overture_path": str(renamed)}), workers)
    assert leads == [] and again.metrics["skipped"]["delivered"] == 2
