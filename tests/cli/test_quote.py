"""`prospectpro discover … --quote`, `--sources`, and users' monthly budgets on the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from prospectpro.cli import app

HERE = "60.1699,24.9384,1500"  # coordinates: no places index needed

Invoke = Callable[..., Any]


@pytest.fixture
def cli(tmp_path: Path) -> Invoke:
    runner = CliRunner()
    env = {
        "PROSPECTPRO_DATA_DIR": str(tmp_path / "data"),
        "PROSPECTPRO_IMPORT_BUNDLED_PLACES": "false",
        "PROSPECTPRO_GOOGLE_PLACES_API_KEY": "sim-google-key",
        "PROSPECTPRO_GOOGLE_PLACES_BASE_URL": "http://127.0.0.1:9",
    }

    def invoke(*args: str, **extra_env: str) -> Any:
        return runner.invoke(app, list(args), env={**env, **extra_env})

    return invoke


def jobs_total(cli: Invoke) -> int:
    result = cli("jobs", "list", "--json")
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["total"])


def test_base_quote_says_it_costs_nothing(cli: Invoke) -> None:
    result = cli("discover", "cafe", HERE, "--quote", "--budget", "100")
    assert result.exit_code == 0, result.output
    assert "would use osm and website, and cost nothing ($0.00)" in result.stdout
    assert "free sources only" in result.stdout
    assert jobs_total(cli) == 0


def test_professional_quote_prints_dollar_amounts(cli: Invoke) -> None:
    result = cli("discover", "cafe", HERE, "--tier", "professional", "-n", "45", "--quote")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "would use osm, google and website, and cost at most $0.105 (about $0.105), within its budget." in text
    assert "Google Places" in text
    as_json = cli("discover", "cafe", HERE, "--tier", "professional", "-n", "45", "--budget", "0.05", "--quote", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) | {"notes": []} == {
        "sources": ["osm", "google", "website"],
        "max_cost": "0.05",
        "estimated_cost": "0.05",
        "within_budget": False,
        "notes": [],
    }
    assert jobs_total(cli) == 0


def test_refused_sources_exit_2_at_quote_and_submit(cli: Invoke) -> None:
    for args, message in [
        (["--tier", "professional", "--sources", "google", "--budget", "0.01"], "one Google Places request costs $0.035"),
        (["--sources", "osm,yelp"], "unknown source yelp"),
        (["--sources", "google"], "the base tier does not use google"),
    ]:
        for quote in (["--quote"], ["--no-follow"]):
            result = cli("discover", "cafe", HERE, *args, *quote)
            assert result.exit_code == 2, (args, quote, result.output)
            assert message in " ".join(result.stderr.split()), result.stderr
    assert jobs_total(cli) == 0


def test_sources_are_stored_with_the_job(cli: Invoke) -> None:
    result = cli("discover", "cafe", HERE, "--tier", "professional", "--sources", "osm", "--no-follow")
    assert result.exit_code == 0, result.output
    shown = cli("jobs", "show", result.stdout.strip(), "--json")
    assert json.loads(shown.stdout)["config"]["sources"] == ["osm"]


def test_monthly_budget_round_trip(cli: Invoke) -> None:
    created = cli("users", "create", "alice", "--monthly-budget", "25")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().startswith("ppk_")

    def listed() -> str:
        result = cli("users", "list")
        assert result.exit_code == 0, result.output
        [row] = [line for line in result.stdout.splitlines() if "alice" in line]
        return row

    assert "$25.00" in listed()
    changed = cli("users", "set-budget", "alice", "12.5")
    assert changed.exit_code == 0, changed.output
    assert "alice" in changed.stdout and "monthly budget $12.50" in changed.stdout
    assert "$12.50" in listed()
    removed = cli("users", "set-budget", "alice", "none")
    assert removed.exit_code == 0 and "no monthly budget" in removed.stdout
    assert "none" in listed()
    plain = cli("users", "create", "bob")
    assert plain.exit_code == 0, plain.output

    assert cli("users", "set-budget", "carol", "5").exit_code == 3  # no such user
    for bad in ("-1", "lots", "0.00001"):
        result = cli("users", "set-budget", "--", "alice", bad)  # "--": else "-1" reads as an option
        assert result.exit_code == 2 and "monthly budget must" in result.stderr, (bad, result.output)
    assert cli("users", "create", "dave", "--monthly-budget", "x").exit_code == 2


def test_the_result_footer_says_the_budget_stopped_it_and_the_cost_per_lead(cli: Invoke, sim: Any) -> None:
    from tests.sim import google as google_sim

    google_sim.install(sim, google_sim.grid(60), api_key="sim-google-key")
    result = cli(
        "discover", "cafe", "Helsinki", "--tier", "professional", "-n", "45", "--budget", "0.05",
        "--min-score", "0", "--sources", "google",
        PROSPECTPRO_GOOGLE_PLACES_BASE_URL=sim.url,
        PROSPECTPRO_IMPORT_BUNDLED_PLACES="true",
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    # One page of 20 ($0.035): the second would have crossed the budget.
    assert "Found 20 of 45 requested leads: the budget of $0.05 was reached." in text  # the job's own summary
    assert "Total cost: $0.035 ($0.00175 per lead), stopped at the budget of $0.05" in text
    assert len(sim.calls_to(google_sim.SEARCH_PATH, "POST")) == 1
