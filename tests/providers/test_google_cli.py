"""The command line with Google configured: the attribution, `leads refresh` (quoted first) and `leads purge-expired`."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from prospectpro.cli import app
from tests.providers.conftest import KEY
from tests.sim import google as google_sim
from tests.sim.server import Simulator


def test_discover_attributes_google_and_leads_refresh_quotes_then_refetches(tmp_path: Path, sim: Simulator) -> None:
    state = google_sim.install(sim, google_sim.grid(12, latitude=60.1674, longitude=24.9425), api_key=KEY)
    env = {
        "PROSPECTPRO_DATA_DIR": str(tmp_path / "data"),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_GOOGLE_PLACES_API_KEY": KEY,
        "PROSPECTPRO_GOOGLE_PLACES_BASE_URL": sim.url,
    }
    runner = CliRunner()
    found = runner.invoke(app, ["discover", "cafe", "Helsinki", "--tier", "professional", "-n", "100",
                                "--min-score", "0", "--budget", "1"], env=env)
    assert found.exit_code == 0, found.output
    assert "Place data: Google Maps" in found.output and len(state.search_calls) == 1
    match = re.search(r"prospectpro export (\S+)", found.output)
    assert match is not None
    campaign_id = match.group(1)

    refreshed = runner.invoke(app, ["leads", "refresh", campaign_id], env=env)
    assert refreshed.exit_code == 0, refreshed.output
    assert "Refreshing 12 leads makes at most 12 Google Place Details requests at $0.02 each: at most $0.24" \
        in refreshed.output.replace("\n", " ")
    assert "refreshed 12 leads, 0 gone from Google" in refreshed.output and len(state.details_calls) == 12
    assert KEY not in found.output + refreshed.output

    purged = runner.invoke(app, ["leads", "purge-expired"], env=env)
    assert purged.exit_code == 0 and "cleared the expired Google values of 0 leads" in purged.output

    unknown = runner.invoke(app, ["leads", "refresh", "no-such-campaign"], env=env)
    assert unknown.exit_code != 0 and "not found" in unknown.output


def test_leads_refresh_needs_google_configured(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["leads", "refresh", "x"], env={"PROSPECTPRO_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 2 and "PROSPECTPRO_GOOGLE_PLACES_API_KEY" in result.output
