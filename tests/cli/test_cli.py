"""The command line as a user types it."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prospectpro.cli import app

ROOT = Path(__file__).parents[2]


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"PROSPECTPRO_DATA_DIR": str(tmp_path / "data"), "PROSPECTPRO_POLL_INTERVAL": "0.05"}

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env)

    return invoke


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PROSPECTPRO_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "prospectpro", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_discover_json_prints_the_final_job_and_real_leads(tmp_path: Path) -> None:
    result = run(tmp_path, "discover", "cafe", "Helsinki", "--max-results", "5", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    job, leads = document["job"], document["leads"]
    assert job["status"] == "completed" and job["progress"] == 100 and job["metrics"]["total_cost"] == "0"
    assert {"id", "status", "current_stage", "progress", "metrics"} <= job.keys()
    assert len(leads) == 5
    for lead in leads:
        assert {"business_name", "address", "phone", "website", "email", "confidence_score"} <= lead.keys()
        assert lead["score_breakdown"] and lead["sources"][0].startswith("osm:")
    assert "Traceback" not in result.stderr


BAD_INPUT = [
    (["", "Helsinki"], "business type must not be empty"),
    (["x" * 500, "Helsinki"], "at most 100 characters"),
    (["spaceship", "Helsinki"], "unknown business type 'spaceship'"),
    (["cofee", "Helsinki"], "Did you mean: cafe"),
    (["cafe", "Atlantis"], "unknown location 'Atlantis'"),
    (["cafe", "Helsinki", "--max-results", "0"], "max results must be at least 1"),
    (["cafe", "Helsinki", "--max-results", "10001"], "max results must be at most 10000"),
    (["cafe", "Helsinki", "--budget", "-1"], "budget must be at least 0"),
    (["cafe", "Helsinki", "--budget", "lots"], "budget must be a number"),
    (["cafe", "Helsinki", "--min-score", "101"], "minimum score must be at most 100"),
    (["cafe", "91,24"], "latitude"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_clear_line_and_nothing_is_enqueued(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("discover", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    listed = cli("jobs", "list", "--json")
    assert json.loads(listed.stdout)["total"] == 0


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    result = run(tmp_path, "discover", "cafe", "Helsinki", "--max-results", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: max results must be at least 1"


def test_jobs_commands_and_export(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    queued = cli("discover", "hair salon", "Kluuvi, Helsinki", "--max-results", "3", "--no-follow")
    assert queued.exit_code == 0
    job_id = queued.stdout.strip()
    shown = json.loads(cli("jobs", "show", job_id, "--json").stdout)
    assert shown["status"] == "pending" and shown["config"]["tags"] == ["shop=hairdresser"]
    done = cli("discover", "cafe", "Helsinki", "--max-results", "4", "--json")  # its worker runs both jobs
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    campaign_id = result["job"]["campaign_id"]
    listed = json.loads(cli("jobs", "list", "--json").stdout)
    assert listed["total"] == 2 and listed["jobs"][0]["id"] == result["job"]["id"]
    events = [json.loads(line) for line in cli("jobs", "events", result["job"]["id"], "--json").stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)) and events[-1]["kind"] == "completed"
    out_file = tmp_path / "leads.csv"
    exported = cli("export", campaign_id, "--format", "csv", "-o", str(out_file))
    assert exported.exit_code == 0
    raw = out_file.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["business_name"] for r in rows] == [lead["business_name"] for lead in result["leads"]]
    as_json = json.loads(cli("export", campaign_id, "--format", "json").stdout)
    assert len(as_json["leads"]) == 4 and as_json["campaign"]["id"] == campaign_id


def test_cancel_and_unknown_ids(cli) -> None:  # type: ignore[no-untyped-def]
    job_id = cli("discover", "cafe", "Helsinki", "--no-follow").stdout.strip()
    assert "cancelled" in cli("jobs", "cancel", job_id).stdout
    assert json.loads(cli("jobs", "show", job_id, "--json").stdout)["status"] == "cancelled"
    missing = cli("jobs", "show", "00000000-dead-beef-0000-000000000000")
    assert missing.exit_code == 3 and "not found" in missing.output
    assert cli("export", "nope").exit_code == 3
    assert cli("export", "nope", "--format", "xml").exit_code == 2


def test_failed_job_shows_its_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PROSPECTPRO_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
        "PROSPECTPRO_EXTRA_ENRICHERS": '["tests.plugins:FailingEnricher"]',
        "PROSPECTPRO_MAX_ATTEMPTS": "2",
        "PROSPECTPRO_RETRY_BASE_SECONDS": "0.01",
    }
    cmd = [sys.executable, "-m", "prospectpro"]
    result = subprocess.run([*cmd, "discover", "cafe", "Helsinki", "--max-results", "2", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    job = json.loads(result.stdout)["job"]
    assert job["status"] == "failed"
    shown = subprocess.run([*cmd, "jobs", "show", job["id"]], env=env, capture_output=True, text=True, timeout=60)
    assert "error: enriching_contacts: RuntimeError: simulated provider outage (after 2 attempts)" in shown.stdout


def test_places_import_rejects_a_file_that_is_not_osm(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bogus = tmp_path / "bogus.osm.pbf"
    bogus.write_bytes(b"not a pbf at all")
    result = cli("places", "import", str(bogus))
    assert result.exit_code == 2 and "cannot read" in result.output
    assert cli("places", "import", str(tmp_path / "missing.pbf")).exit_code == 2
