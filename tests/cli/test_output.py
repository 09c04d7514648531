"""Results that explain themselves (issue 15): every item through the real command, at 80 and 140 columns."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

ROOT = Path(__file__).parents[2]
WIDTHS = [80, 140]


def run(
    data_dir: Path, width: int, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PROSPECTPRO_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "COLUMNS": str(width),
        "LINES": "50",
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "prospectpro", *args], env=env, capture_output=True, text=True, timeout=120
    )


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = exit_code, stdout, stderr


def invoke(data_dir: Path, width: int, *args: str) -> Result:
    """The command in this process (fast): its consoles as wide as a terminal of ``width`` columns.

    ``run`` is the same in a process of its own, where rich reads COLUMNS itself.
    """
    from rich.console import Console
    from typer.testing import CliRunner

    from prospectpro import cli

    saved = cli.out, cli.err
    cli.out, cli.err = Console(width=width, soft_wrap=True), Console(width=width, stderr=True, soft_wrap=True)
    try:
        env = {"PROSPECTPRO_DATA_DIR": str(data_dir), "PROSPECTPRO_POLL_INTERVAL": "0.05"}
        result = CliRunner().invoke(cli.app, list(args), env=env)
    finally:
        cli.out, cli.err = saved
    return Result(result.exit_code, result.stdout, result.stderr)


def fits(text: str, width: int) -> None:
    for line in text.splitlines():
        assert len(line.rstrip()) <= width, f"{len(line.rstrip())} > {width}: {line!r}"


def words(text: str) -> str:
    """The text with the line breaks a wrap adds undone, to find a sentence in it."""
    return re.sub(r"\s+", " ", text.replace("│", " "))  # │: the border of typer's help panels


def _json(data_dir: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = invoke(data_dir, 200, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- "0 leads" with the real reason -----------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_zero_leads_names_the_real_reasons_and_what_to_do(tmp_path: Path, width: int) -> None:
    first = invoke(tmp_path, width, "discover", "cafe", "Helsinki", "-n", "100")
    assert first.returncode == 0, first.stderr
    delivered = _json(tmp_path, "jobs", "list", "--limit", "1")["jobs"][0]["metrics"]["leads"]
    below = _json(tmp_path, "jobs", "list", "--limit", "1")["jobs"][0]["metrics"]["skipped"]["below_min_score"]
    assert delivered > 0 and below > 0
    fits(first.stdout, width)
    assert f"{below} scoring below the minimum of 50" in words(first.stdout)

    again = invoke(tmp_path, width, "discover", "cafe", "Helsinki", "-n", "20")
    assert again.returncode == 0, again.stderr
    text = words(again.stdout)
    assert "Found 0 of 20 requested leads" in text
    assert f"{delivered} already delivered to you by an earlier campaign" in text
    assert "run with --include-delivered" in text
    fits(again.stdout, width)
    job = _json(tmp_path, "jobs", "list", "--limit", "1")["jobs"][0]
    assert job["metrics"]["skipped"]["delivered"] == delivered
    assert job["metrics"]["summary"] in text  # the API and the job page say the same sentence
    # What the sentence says works: the delivered ones come back.
    back = invoke(tmp_path, width, "discover", "cafe", "Helsinki", "-n", "5", "--include-delivered")
    assert back.returncode == 0 and "Found 5 leads." in back.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_a_search_outside_the_data_says_so_and_names_the_sources(tmp_path: Path, width: int) -> None:
    result = invoke(tmp_path, width, "discover", "cafe", "10.5,-30.2,2000")
    assert result.returncode == 0, result.stderr
    text = words(result.stdout)
    assert "no data covers this area — none of the sources asked (osm) has such a business in it" in text
    assert "https://download.geofabrik.de" in text and "prospectpro places import FILE.osm.pbf" in text
    assert "no more that qualify" not in text
    fits(result.stdout, width)
    summary = _json(tmp_path, "jobs", "list", "--limit", "1")["jobs"][0]["metrics"]["summary"]
    assert "no data covers this area" in summary  # the API and the page say the same


@pytest.mark.parametrize("width", WIDTHS)
def test_an_unknown_location_lists_the_closest_known_places_and_how_to_import(tmp_path: Path, width: int) -> None:
    result = invoke(tmp_path, width, "discover", "cafe", "Atlantis")
    assert result.returncode == 2
    text = words(result.stderr)
    assert "unknown location 'Atlantis'" in text
    closest = text.split("The known places closest to that name: ", 1)[1].split(".", 1)[0].split(", ")
    assert "Helsinki" in closest and len(closest) <= 5
    assert "https://download.geofabrik.de" in text and "prospectpro places import FILE.osm.pbf" in text
    assert "Traceback" not in result.stderr


# -- 80 columns ---------------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_progress_line_and_result_table_fit_and_keep_urls_whole(tmp_path: Path, width: int) -> None:
    result = run(tmp_path, width, "discover", "cafe", "Helsinki", "-n", "20")
    assert result.returncode == 0, result.stderr
    bar = [line for line in result.stderr.splitlines() if "━" in line]
    assert bar and "100%" in bar[-1] and "Finished" in bar[-1] and "cost $0.00" in bar[-1]
    fits(result.stderr, width)
    fits(result.stdout, width)
    leads = _json(tmp_path, "campaigns", "list")  # the campaign's leads, for what the table must show
    campaign_id = leads["campaigns"][0]["id"]
    exported = json.loads(invoke(tmp_path, width, "export", campaign_id[:8], "-f", "json").stdout)["leads"]
    header = result.stdout.splitlines()[0]
    assert header.startswith("Score") and "Business" in header and "Phone" in header
    for column, key in (("Email", "email"), ("Website", "website")):
        if column in header:  # shown: every value whole on one line
            for lead in exported:
                if lead[key]:
                    shown = (
                        lead[key] if key == "email" else lead[key].split("://", 1)[1].removeprefix("www.").rstrip("/")
                    )
                    assert any(shown in line for line in result.stdout.splitlines()), shown
        else:  # left out, and said so
            assert column in words(result.stdout).split("Not shown at", 1)[1].split("(--wide")[0]
    assert "Total cost: $0.00" in result.stdout
    assert f"prospectpro export {campaign_id[:8] if width < 100 else campaign_id} --format xlsx" in result.stdout
    if width == 80:
        assert "Not shown at 80 columns:" in result.stdout

    wide = invoke(tmp_path, width, "discover", "cafe", "Helsinki", "-n", "5", "--include-delivered", "--wide")
    assert wide.returncode == 0
    header = wide.stdout.splitlines()[0].split()
    assert {"Score", "Business", "Category", "Address", "Phone", "Website", "Email"} <= set(header)
    table = wide.stdout.split("Found 5 leads.")[0]
    latest = _json(tmp_path, "campaigns", "list")["campaigns"][0]["id"]
    for lead in json.loads(invoke(tmp_path, width, "export", latest, "-f", "json").stdout)["leads"]:
        for key in ("website", "email"):
            if lead[key]:
                assert any(lead[key] in line for line in table.splitlines()), lead[key]


@pytest.mark.parametrize("width", WIDTHS)
def test_types_has_a_header_and_wraps_at_word_boundaries(tmp_path: Path, width: int) -> None:
    result = invoke(tmp_path, width, "types")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["Type", "OpenStreetMap", "tags"] and "Also understood" in lines[0]
    fits(result.stdout, width)
    cafe = next(line for line in lines if line.startswith("cafe "))
    assert "amenity=cafe" in cafe and "coffee shop," in cafe
    dentist = next(line for line in lines if line.startswith("dentist "))
    assert "amenity=dentist," in dentist
    # Wrapped at word boundaries: every word of the synonyms is a whole word of the output.
    out_words = set(result.stdout.replace(",", " ").split())
    for word in ["accounting", "firm", "bookkeeper", "chartered", "accountant", "espresso", "tearoom"]:
        assert word in out_words


@pytest.mark.parametrize("width", WIDTHS)
def test_jobs_list_ids_fit_and_jobs_show_reads_as_a_summary(tmp_path: Path, width: int) -> None:
    ids = [
        invoke(tmp_path, width, "discover", "cafe", "Helsinki", "-n", "3", "--no-follow").stdout.strip()
        for _ in range(2)
    ]
    done = invoke(tmp_path, width, "discover", "cafe", "Helsinki", "-n", "2")  # its worker runs all three
    assert done.returncode == 0, done.stderr
    listed = invoke(tmp_path, width, "jobs", "list")
    fits(listed.stdout, width)
    shown_ids = [line.split()[0] for line in listed.stdout.splitlines()[2:] if line.strip() and "jobs" not in line]
    assert len(shown_ids) == 3
    if width >= 100:
        assert set(ids) <= set(shown_ids)  # whole ids where they fit
    else:
        assert all(8 <= len(i) < 36 for i in shown_ids)
        for prefix in shown_ids:  # a prefix the other commands accept
            shown = invoke(tmp_path, width, "jobs", "show", prefix)
            assert shown.returncode == 0 and "status: completed, 100% (Finished)" in shown.stdout
    summary = invoke(tmp_path, width, "jobs", "show", ids[0])
    fits(summary.stdout, width)
    text = words(summary.stdout)
    assert f"job: {ids[0]}" in text and "status: completed" in text
    assert "campaign of: Cafe in Helsinki, 3 requested, minimum score 50, budget $5.00" in text
    assert "result: Found 3 leads." in text and "found: 85 businesses (osm 85)" in text and "cost: $0.00" in text
    assert "{" not in summary.stdout  # no JSON dumped
    document = json.loads(invoke(tmp_path, width, "jobs", "show", ids[0], "--json").stdout)
    assert document["id"] == ids[0] and document["metrics"]["leads"] == 3


# -- job id vs campaign id ----------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_export_takes_a_job_id_a_campaign_id_or_a_prefix_and_campaigns_list(tmp_path: Path, width: int) -> None:
    final = _json(tmp_path, "discover", "cafe", "Helsinki", "-n", "4")["job"]
    job_id, campaign_id = final["id"], final["campaign_id"]
    listed = invoke(tmp_path, width, "campaigns", "list")
    fits(listed.stdout, width)
    header = listed.stdout.splitlines()[0].split()
    assert header[:5] == ["Campaign", "Type", "Location", "Status", "Leads"] and "Cost" in header
    row = listed.stdout.splitlines()[2].split()
    assert campaign_id.startswith(row[0]) and row[1:5] == ["cafe", "Helsinki", "completed", "4/4"] and row[5] == "$0.00"
    assert (row[0] == campaign_id) == (width >= 120)
    by_json = _json(tmp_path, "campaigns", "list")
    assert by_json["total"] == 1 and by_json["campaigns"][0]["id"] == campaign_id

    for given in (job_id, campaign_id, job_id[:8], campaign_id[:7]):
        out = tmp_path / f"{given}.csv"
        result = invoke(tmp_path, width, "export", given, "--format", "csv", "-o", str(out))
        assert result.returncode == 0, result.stderr
        assert f"wrote 4 leads of campaign {campaign_id}" in words(result.stderr)
        rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
        assert len(rows) == 4 and {r["campaign_id"] for r in rows} == {campaign_id}
        phones = [r["phone"] for r in rows if r["phone"]]
        assert phones and all(p.startswith("+") for p in phones)  # no apostrophe: a CRM takes them as they are
    assert invoke(tmp_path, width, "export", "abcde").returncode == 3  # under 6 characters
    assert invoke(tmp_path, width, "export", "00000000-dead").returncode == 3
    assert "format must be csv, xlsx or json" in invoke(tmp_path, width, "export", job_id, "-f", "xml").stderr

    xlsx = tmp_path / "leads.xlsx"
    assert invoke(tmp_path, width, "export", job_id[:10], "-f", "xlsx", "-o", str(xlsx)).returncode == 0
    sheet = openpyxl.load_workbook(xlsx)["Leads"]
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["business_name", "category", "street"] and sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref and sheet.max_row == 5
    record = dict(zip(header, (c.value for c in sheet[2]), strict=True))
    assert record["category"] == "Cafe" and record["country"] == "FI" and isinstance(record["confidence_score"], int)
    assert record["osm_url"].startswith("https://www.openstreetmap.org/")
    assert record["address"].endswith("Helsinki") and record["postcode"].startswith("00")


# -- --no-follow and Ctrl-C ---------------------------------------------------------------------
def test_help_says_what_no_follow_and_ctrl_c_do(tmp_path: Path) -> None:
    result = invoke(tmp_path, 140, "discover", "--help")
    text = words(result.stdout)
    assert "Ctrl-C stops only the following: the job stays queued" in text
    assert "next worker that runs resumes it" in text
    assert "Only enqueue and print the job id; a running worker" in text
    assert "--wide" in text


def test_ctrl_c_leaves_the_job_queued_and_says_so(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PROSPECTPRO_DATA_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PROSPECTPRO_POLL_INTERVAL": "0.05",
        "PROSPECTPRO_LEASE_SECONDS": "2",
        "PROSPECTPRO_EXTRA_ENRICHERS": json.dumps(["tests.plugins:SlowEnricher"]),
        "PROSPECTPRO_TEST_ENRICH_DELAY": "0.5",
        "PROSPECTPRO_ENRICH_CONCURRENCY": "1",
        "COLUMNS": "80",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "prospectpro", "discover", "cafe", "Helsinki", "-n", "10"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    jobs: list[dict] = []  # type: ignore[type-arg]
    while time.monotonic() < deadline and not jobs:
        time.sleep(0.2)
        listed = invoke(tmp_path, 200, "jobs", "list", "--json", "--status", "processing")
        jobs = json.loads(listed.stdout)["jobs"] if listed.returncode == 0 else []
    assert jobs, "the job never started"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    text = words(stderr)
    job_id = jobs[0]["id"]
    assert f"Interrupted: only the following stopped. Job {job_id} stays in the queue" in text
    assert "the next worker that runs (`prospectpro worker`, `prospectpro serve`, or another" in text
    assert f"prospectpro jobs events {job_id} --follow" in text
    fits(stderr.split("Interrupted:", 1)[1], 80)
    status = json.loads(invoke(tmp_path, 200, "jobs", "show", job_id, "--json").stdout)["status"]
    assert status in ("pending", "processing")  # not failed, not cancelled: a worker resumes it


# -- the line itself, at any width ------------------------------------------------------------
@pytest.mark.parametrize("width", [30, 50, 80, 140, 200])
def test_the_progress_line_keeps_percent_and_bar_and_trims_metrics_first(width: int) -> None:
    from prospectpro.cli_output import metrics_parts, progress_line

    parts = metrics_parts(
        {"metrics": {"businesses_found": 85, "qualified_leads": 39, "leads_enriched": 12, "total_cost": "0.105"}}
    )
    line = progress_line("Enriching contact information…", 45, parts, 3725.0, width).plain
    assert len(line) <= width - 1
    assert " 45%" in line and "━━━━━━━━━━" in line  # a bar of 10 cells at least
    if width >= 140:
        assert line.endswith("found 85 · qualified 39 · enriched 12 · cost $0.105 1:02:05")
    if width == 80:  # what goes first is the least telling count; the cost stays
        assert "enriched" not in line and "cost $0.105" in line
    kept = [p for p in ("found", "qualified", "enriched") if p in line]
    assert kept == ["found", "qualified", "enriched"][: len(kept)]  # dropped from the end of the list
