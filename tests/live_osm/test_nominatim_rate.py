"""Nominatim's one request per second holds over the whole installation: two processes, several campaigns."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from prospectpro.bootstrap import open_database
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.store.schema import LOCAL_USER_ID
from tests.live_osm.conftest import install_world, live_settings
from tests.sim.server import Simulator


def _submit_campaigns(data_dir: str, base_url: str, locations: list[str], start: object) -> None:
    """One process of the installation (an API or CLI process): geocode, then submit, each campaign."""
    from prospectpro.providers.nominatim import ensure_geocoded
    from prospectpro.services.submissions import submit_campaign

    settings = live_settings(Path(data_dir), base_url)
    db = open_database(settings, prepare=False)
    start.wait()  # type: ignore[attr-defined]
    for location in locations:
        ensure_geocoded(db, settings, None, location)
        request = CampaignRequest(business_type="cafe", location=location)
        submit_campaign(db, settings, LOCAL_USER_ID, request)


def test_one_request_per_second_across_two_processes(sim: Simulator, tmp_path: Path) -> None:
    geo, _ = install_world(sim)
    open_database(live_settings(tmp_path, sim.url))  # migrated, bundled places imported, once
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    plans = [["Austin", "Springfield, Illinois"], ["Paris", "Austin, TX"]]
    processes = [spawn.Process(target=_submit_campaigns, args=(str(tmp_path), sim.url, plan, start)) for plan in plans]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    calls = sorted(sim.calls_to("/search"), key=lambda c: c.at)
    assert sorted(c.arg("q") for c in calls) == sorted(q for plan in plans for q in plan)  # each asked once
    gaps = [b.at - a.at for a, b in zip(calls, calls[1:], strict=False)]
    assert min(gaps) >= 1.0, gaps  # the store-held limiter; without it the two processes overlap at once
    for call in calls:
        assert call.headers["user-agent"].startswith("ProspectPro/")
    assert len(geo.searches) == 4
