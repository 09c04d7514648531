"""The README's first command stays offline with live OSM on; `places refresh` fetches ahead of time."""

from __future__ import annotations

import shlex
import socket
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from prospectpro.bootstrap import open_database
from prospectpro.cli import app
from prospectpro.config import Settings
from prospectpro.store.schema import discovery_jobs, place_coverage
from tests.api.conftest import free_port
from tests.live_osm.conftest import install_world
from tests.sim.server import SimResponse, Simulator
from tests.test_readme import readme_commands


def test_the_readme_first_command_touches_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly the README's first command's arguments: no connection and no name lookup beyond this machine
    (the tests' guard would refuse them; this records that none was even tried), none to the live services."""
    closed = free_port()  # nothing listens there: a connection would be refused, and is recorded
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def recording_connect(sock: socket.socket, address: object) -> None:
        local = isinstance(address, tuple) and str(address[0]) in ("127.0.0.1", "::1", "localhost")
        if isinstance(address, tuple) and (address[1] == closed or not local):
            attempts.append(address)
        return real_connect(sock, address)  # type: ignore[arg-type]

    def recording_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in ("127.0.0.1", "::1", "localhost", None):
            attempts.append(("lookup", host))
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    env = {
        "PROSPECTPRO_DATA_DIR": str(tmp_path / "data"),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_NOMINATIM_BASE_URL": f"http://127.0.0.1:{closed}",
        "PROSPECTPRO_OVERPASS_BASE_URL": f"http://127.0.0.1:{closed}",
        "PROSPECTPRO_GOOGLE_PLACES_BASE_URL": f"http://127.0.0.1:{closed}",
    }
    first = readme_commands()[0]
    args = shlex.split(first.split(".venv/bin/prospectpro ", 1)[1])
    assert args[:3] == ["discover", "cafe", "Helsinki"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "Found 20 leads" in result.output
    assert "OpenStreetMap contributors, ODbL" in result.output  # the attribution footer
    assert attempts == []


def cli_env(tmp_path: Path, sim: Simulator) -> dict[str, str]:
    return {
        "PROSPECTPRO_DATA_DIR": str(tmp_path / "data"),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_LEASE_SECONDS": "5",
        "COLUMNS": "250",  # the leads table unfolded
        "PROSPECTPRO_NOMINATIM_BASE_URL": sim.url,
        "PROSPECTPRO_OVERPASS_BASE_URL": sim.url,
    }


def test_discover_says_why_it_cannot_geocode_with_exit_2(sim: Simulator, tmp_path: Path) -> None:
    install_world(sim)
    runner, env = CliRunner(), cli_env(tmp_path, sim)
    ambiguous = runner.invoke(app, ["discover", "cafe", "Springfield"], env=env)
    assert ambiguous.exit_code == 2 and "Springfield, Missouri, United States" in ambiguous.output
    too_large = runner.invoke(app, ["discover", "cafe", "Texas"], env=env)
    assert too_large.exit_code == 2 and "name a city or a district" in too_large.output
    sim.fail("/search", SimResponse(403, "<html>blocked</html>"), times=5)
    blocked = runner.invoke(app, ["discover", "cafe", "Austin"], env=env)
    assert blocked.exit_code == 2 and "HTTP 403" in blocked.output and "Traceback" not in blocked.output
    with open_database(Settings(data_dir=tmp_path / "data"), prepare=False).read() as conn:
        assert conn.execute(select(discovery_jobs.c.id)).first() is None  # nothing was enqueued


def test_discover_anywhere_from_the_cli(sim: Simulator, tmp_path: Path) -> None:
    world = install_world(sim)
    result = CliRunner().invoke(
        app, ["discover", "dentist", "Austin, TX", "--min-score", "0"], env=cli_env(tmp_path, sim)
    )
    assert result.exit_code == 0, result.output
    assert "Location: Austin, Texas, United States (OpenStreetMap relation/113314" in result.output
    for name in ("Congress Avenue Dental", "Hyde Park Smiles", "South Lamar Dentistry"):
        assert name in result.output
    assert len(world[1].queries) == 1


def test_places_refresh_fetches_ahead_of_time(sim: Simulator, tmp_path: Path) -> None:
    geo, over = install_world(sim)
    runner, env = CliRunner(), cli_env(tmp_path, sim)
    refreshed = runner.invoke(app, ["places", "refresh", "Austin, TX", "--type", "dentist"], env=env)
    assert refreshed.exit_code == 0, refreshed.output
    assert "stored 3 dentist businesses" in refreshed.output and "OpenStreetMap contributors" in refreshed.output
    db = open_database(Settings(data_dir=tmp_path / "data"), prepare=False)
    with db.read() as conn:
        job = conn.execute(select(discovery_jobs.c.kind, discovery_jobs.c.status)).one()
        assert tuple(job) == ("places_refresh", "completed")
        assert conn.execute(select(place_coverage.c.tags_key)).scalars().all() == ["amenity=dentist,healthcare=dentist"]
    # A campaign there now reads the index: no Overpass query, no geocoding.
    campaign = runner.invoke(app, ["discover", "dentist", "Austin, TX", "--min-score", "0"], env=env)
    assert campaign.exit_code == 0 and "Hyde Park Smiles" in campaign.output
    assert len(over.queries) == 1 and geo.searches == ["Austin, TX"]
    # Refreshing again asks again, even though the coverage is fresh.
    assert runner.invoke(app, ["places", "refresh", "Austin, TX", "--type", "dentist"], env=env).exit_code == 0
    assert len(over.queries) == 2
    # The bundled extract's places are refreshed by re-importing it, not live.
    local = runner.invoke(app, ["places", "refresh", "Helsinki", "--type", "cafe"], env=env)
    assert local.exit_code == 2 and "inside an imported extract" in local.output


def test_places_refresh_names_the_failure(sim: Simulator, tmp_path: Path) -> None:
    install_world(sim)
    sim.fail("/api/interpreter", SimResponse(400, "<html>Error: bad query</html>"), times=3)
    result = CliRunner().invoke(app, ["places", "refresh", "Austin", "--type", "dentist"], env=cli_env(tmp_path, sim))
    assert result.exit_code == 1 and "osm: bad_request: HTTP 400" in result.output and "Traceback" not in result.output
