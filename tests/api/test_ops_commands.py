"""prospectpro doctor and prospectpro smoke, as an operator runs them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from prospectpro.cli import app
from prospectpro.store import migrate
from prospectpro.store.db import Database
from tests.api.conftest import LiveServer


def invoke(*args: str, data_dir: Path | None = None):  # type: ignore[no-untyped-def]
    env = {"PROSPECTPRO_DATA_DIR": str(data_dir)} if data_dir else {}
    return CliRunner().invoke(app, list(args), env=env)


def test_smoke_passes_against_a_working_deployment(live_server: LiveServer) -> None:
    result = invoke("smoke", "--url", live_server.url)
    assert result.exit_code == 0, result.output
    assert "✓ events:" in result.output and "smoke test passed" in result.output


def test_smoke_fails_with_the_reason(make_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    broken = make_server(extra_enrichers=["tests.plugins:FailingEnricher"], max_attempts=1)
    result = invoke("smoke", "--url", broken.url, "--timeout", "30")
    assert result.exit_code == 1
    assert "the job ended failed: enriching_contacts: RuntimeError: simulated provider outage" in result.output
    unreachable = invoke("smoke", "--url", "http://127.0.0.1:9")
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output


def test_smoke_with_an_api_key(live_server: LiveServer) -> None:
    from prospectpro.services.users import create_user

    _, key = create_user(live_server.db, "ops")
    assert invoke("smoke", "--url", live_server.url, "--api-key", key).exit_code == 0
    bad = invoke("smoke", "--url", live_server.url, "--api-key", "ppk_nope")
    assert bad.exit_code == 1 and "401" in bad.output


def test_doctor_reports_what_to_fix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = Database(f"sqlite:///{data / 'prospectpro.sqlite3'}")
    migrate.upgrade(db, "0001")
    stale = invoke("doctor", data_dir=data)
    assert stale.exit_code == 1
    assert "schema: at 0001" in stale.output and "run: prospectpro migrate" in stale.output
    assert invoke("migrate", data_dir=data).exit_code == 0
    empty = invoke("doctor", data_dir=data)
    assert empty.exit_code == 1 and "run: prospectpro places import" in empty.output
    assert "workers: none alive" in empty.output


def test_doctor_is_green_on_a_running_installation(live_server: LiveServer) -> None:
    result = invoke("doctor", data_dir=live_server.settings.data_dir)
    assert result.exit_code == 0, result.output
    assert "✓ workers: 1 alive" in result.output and "✓ discovery data: 1433 businesses" in result.output


def test_smoke_shows_the_detailed_health_with_the_operator_token(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=1, operator_token="ops-token")
    plain = invoke("smoke", "--url", server.url)
    assert plain.exit_code == 0, plain.output
    assert "workers_alive" not in plain.output  # a stranger's /healthz says only ok or not
    detailed = invoke("smoke", "--url", server.url, "--operator-token", "ops-token")
    assert detailed.exit_code == 0, detailed.output
    assert "workers_alive" in detailed.output
