"""Shared by bench/sse_*.py: a store with one owner, jobs claimed by this process, writers that stamp commits."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import http_common  # noqa: F401  (puts src/ on sys.path)

from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.domain.campaign import parse_campaign_request
from prospectpro.domain.status import JobStatus
from prospectpro.jobs import queue
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.services.submissions import submit_campaign
from prospectpro.services.users import create_user
from prospectpro.store.db import Database

REQUEST = {"business_type": "cafe", "location": "Helsinki", "max_results": 5}


def make_settings(data_dir: Path) -> Settings:
    # Same values the subprocess server gets from http_common.server_env().
    return Settings(data_dir=data_dir, submissions_per_minute=10**9, sessions_per_minute=10**9,
                    streams_per_owner=100_000, lease_seconds=3600)


def prepare(settings: Settings) -> tuple[Database, str, str]:
    """Open (migrate, import places) and create the one owner; returns (db, owner_id, api_key)."""
    db = open_database(settings)
    principal, key = create_user(db, "bench")
    return db, principal.user_id, key


def running_jobs(db: Database, settings: Settings, owner_id: str, n: int) -> list[JobRun]:
    """Submit n jobs for the owner and claim each here, as a worker would."""
    req = parse_campaign_request(REQUEST)
    ids = [submit_campaign(db, settings, owner_id, req).job.id for _ in range(n)]
    runs = []
    for _ in range(n):
        claimed = queue.claim(db, "bench-writer", lease_seconds=3600)
        assert claimed is not None
        lease, job = claimed
        runs.append(JobRun(db, lease, job))
    assert sorted(r.job.id for r in runs) == sorted(ids)
    return runs


@dataclass
class Writer:
    """Writes `per_job` tick changes to every run, round-robin, at `rate` changes/s in total, then completes each.

    commits[(job_id, seq)] = time.time() right after the commit returned (its
    notifier has run by then, as for a real worker). The event's metrics carry
    the time taken just before the write began.
    """

    runs: list[JobRun]
    per_job: int
    rate: float
    commits: dict[tuple[str, int], float] = field(default_factory=dict)
    write_ms: list[float] = field(default_factory=list)
    behind_s: float = 0.0  # how far the writer fell behind its schedule at most
    error: BaseException | None = None

    def run(self) -> None:
        try:
            start = time.monotonic()
            k = 0
            for i in range(self.per_job):
                for r in self.runs:
                    k += 1
                    due = start + k / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        self.behind_s = max(self.behind_s, -delay)
                    t0 = time.time()
                    job = r.change(Change(kind="tick", progress=(i + 1) * 99 // self.per_job, metrics={"t": t0}))
                    t1 = time.time()
                    self.commits[(job.id, job.event_seq)] = t1
                    self.write_ms.append((t1 - t0) * 1000)
            for r in self.runs:
                job = r.change(Change(kind="completed", status=JobStatus.completed, progress=100))
                self.commits[(job.id, job.event_seq)] = time.time()
        except BaseException as exc:  # reported by the caller
            self.error = exc

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.run, name="bench-writer", daemon=True)
        t.start()
        return t
