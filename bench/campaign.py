"""End-to-end campaign time: enqueue -> completed, in process and through the real CLI.

    .venv/bin/python bench/campaign.py [--runs 10] [--cli-runs 8] [--timeout 60]

In process: each run gets a fresh data dir; the first-start setup (migrations +
import of the bundled places) is timed separately, then an in-process worker is
started and we time submit_campaign -> job status 'completed' for
"cafe" in "Helsinki", 20 results.
CLI: `prospectpro discover cafe Helsinki --max-results 20 --json` on a fresh
data dir (cold: includes setup), then again on the same dir (warm), with the
wall time and the child's own max RSS (GNU time -f %M). Baselines in the same run:
`python -c pass` and `python -c "import prospectpro.cli"`.
Everything is written to temp dirs that are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from prospectpro.bootstrap import build_worker, open_database
from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.jobs import queue
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.services import campaigns as campaign_service
from prospectpro.services.submissions import submit_campaign
from prospectpro.store import migrate
from prospectpro.store.schema import LOCAL_USER_ID

PYTHON = sys.executable
CLI = str(Path(sys.executable).parent / "prospectpro")
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
CLI_ARGS = ["discover", "cafe", "Helsinki", "--max-results", "20", "--json"]
MILESTONES = ["claimed", "initializing", "discovering_businesses", "scoring_businesses", "enriching_contacts", "completed"]


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def fmt(samples: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    s = sorted(x * scale for x in samples)
    if not s:
        return "-"
    return f"median {statistics.median(s):8.1f} {unit}  min {s[0]:8.1f}  max {s[-1]:8.1f}  (n={len(s)})"


# -- in process -------------------------------------------------------------------
def stage_times(db, job_id: str) -> dict[str, float]:
    """Seconds from one milestone to the next, from the job's own event timestamps."""
    events = queue.list_events(db, job_id)
    at = {"created": events[0].created_at}
    for e in events:
        if e.kind in ("claimed", "completed"):
            at[e.kind] = e.created_at
        elif e.kind == "stage_completed":
            at[e.data.get("current_stage")] = e.created_at
    out, prev = {}, at["created"]
    for name in MILESTONES:
        if name in at:
            out[name] = (at[name] - prev).total_seconds()
            prev = at[name]
    return out


def wait_terminal(db, job_id: str, timeout: float):
    wake = threading.Event()
    unsubscribe = db.notifier.subscribe(lambda changed: changed == job_id and wake.set())
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wake.clear()
            job = queue.get_job(db, job_id)
            if job.status.terminal:
                return job
            wake.wait(0.05)
        raise TimeoutError(f"job {job_id} not finished after {timeout} s")
    finally:
        unsubscribe()


def one_in_process_run(timeout: float) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="pp-bench-campaign-"))
    try:
        settings = Settings(data_dir=tmp, database_url="", poll_interval=0.05)
        t0 = time.perf_counter()
        db = open_database(settings, prepare=False)  # what open_database(prepare=True) does, split:
        migrate.upgrade(db)
        t1 = time.perf_counter()
        ensure_bundled_places(db)
        t2 = time.perf_counter()
        worker = build_worker(db, settings).start()
        try:
            request = CampaignRequest(business_type="cafe", location="Helsinki", max_results=20)
            t3 = time.perf_counter()
            submission = submit_campaign(db, settings, LOCAL_USER_ID, request)
            t4 = time.perf_counter()
            job = wait_terminal(db, submission.job.id, timeout)
            t5 = time.perf_counter()
        finally:
            worker.stop()
        leads, total = campaign_service.list_leads(db, submission.campaign_id, LOCAL_USER_ID)
        result = {
            "migrate": t1 - t0,
            "places_import": t2 - t1,
            "submit": t4 - t3,
            "enqueue_to_completed": t5 - t3,
            "status": job.status.value,
            "leads": total,
            "stages": stage_times(db, submission.job.id),
        }
        db.dispose()
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- subprocesses -------------------------------------------------------------------
def run_child(argv: list[str], env: dict[str, str], out_path: Path) -> tuple[float, float, int]:
    """Wall seconds, the child's own max RSS in MiB, exit code.

    The RSS comes from GNU time: a child forked straight from this (large)
    process would report our RSS as its ru_maxrss, since Linux carries the
    high-water mark over fork and exec. Without /usr/bin/time we fall back to
    os.wait4, which is then only an upper bound.
    """
    rss_file = out_path.with_suffix(".rss")
    prefix = [TIME, "-f", "%M", "-o", str(rss_file)] if TIME else []
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*prefix, *argv], stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
    rss_kib = int(rss_file.read_text().split()[-1]) if TIME else usage.ru_maxrss
    return wall, rss_kib / 1024, proc.returncode


def cli_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROSPECTPRO_")}
    env["PROSPECTPRO_DATA_DIR"] = str(data_dir)
    return env


def leads_in(path: Path) -> str:
    try:
        doc = json.loads(path.read_text())
        return f"{doc['job']['status']}/{len(doc['leads'])}"
    except (ValueError, KeyError):
        return "unparsable"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="in-process runs, each on a fresh data dir")
    ap.add_argument("--warmup", type=int, default=1, help="in-process runs before the timed ones (not reported)")
    ap.add_argument("--cli-runs", type=int, default=8, help="cold+warm CLI pairs, and baseline repetitions")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a campaign counts as hung")
    args = ap.parse_args()
    runs, warmup, cli_runs = (max(1, min(args.runs, 100)), max(0, min(args.warmup, 10)), max(1, min(args.cli_runs, 50)))

    print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    rss_start = maxrss_mb()
    for _ in range(warmup):
        one_in_process_run(args.timeout)
    results = [one_in_process_run(args.timeout) for _ in range(runs)]
    rss_end = maxrss_mb()

    print(f"\n== in process ({runs} runs, fresh data dir each, {warmup} warm-up run(s) not counted) ==")
    print("outcomes (status/leads):", sorted({f"{r['status']}/{r['leads']}" for r in results}))
    for key in ("migrate", "places_import", "submit", "enqueue_to_completed"):
        print(f"  {key:<28} {fmt([r[key] for r in results])}")
    print("  from event timestamps (each: time since the previous milestone):")
    for name in MILESTONES:
        print(f"    {name:<26} {fmt([r['stages'].get(name, float('nan')) for r in results])}")
    print(
        f"  max RSS of this process (includes interpreter + imports): after imports {rss_start:.1f} MiB, "
        f"after all runs {rss_end:.1f} MiB (+{rss_end - rss_start:.1f})"
    )

    print(f"\n== subprocesses ({cli_runs} repetitions each) ==")
    rows: dict[str, list[tuple[float, float, int]]] = {}
    outcomes: dict[str, set[str]] = {"cli cold": set(), "cli warm": set()}
    scratch = Path(tempfile.mkdtemp(prefix="pp-bench-cli-"))
    try:
        for i in range(cli_runs):
            env = {k: v for k, v in os.environ.items() if not k.startswith("PROSPECTPRO_")}
            rows.setdefault("python -c pass", []).append(run_child([PYTHON, "-c", "pass"], env, scratch / "o"))
            rows.setdefault("python -c 'import prospectpro.cli'", []).append(
                run_child([PYTHON, "-c", "import prospectpro.cli"], env, scratch / "o")
            )
            data_dir = scratch / f"data-{i}"
            for label in ("cli cold", "cli warm"):  # same data dir: the second run finds it prepared
                out = scratch / f"{label.replace(' ', '-')}-{i}.json"
                rows.setdefault(label, []).append(run_child([CLI, *CLI_ARGS], cli_env(data_dir), out))
                outcomes[label].add(leads_in(out))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for label, samples in rows.items():
        codes = sorted({c for _, _, c in samples})
        print(f"  {label:<36} wall {fmt([w for w, _, _ in samples])}   exit {codes}")
        print(f"  {'':<36} RSS  {fmt([m for _, m, _ in samples], unit='MiB', scale=1.0)}")
    for label, seen in outcomes.items():
        print(f"  {label} outcome (status/leads): {sorted(seen)}")


if __name__ == "__main__":
    main()
