"""One of our worker processes for bench/queue_throughput.py: a real Worker, one slot, a no-op kind.

    .venv/bin/python bench/queue_worker.py DATABASE_URL [--concurrency 1]

Builds the Database and the Worker (imports and connections done), prints READY, waits for a
line on stdin, starts the worker, then waits for a second line and stops it. The no-op kind's
handler only completes the job: one fenced change, as every job's last write is.
"""

from __future__ import annotations

import argparse
import sys

from prospectpro.domain.status import JobStatus
from prospectpro.jobs.kinds import JobKind
from prospectpro.jobs.model import Change
from prospectpro.jobs.run import JobRun
from prospectpro.jobs.worker import Worker, WorkerConfig
from prospectpro.store.db import Database

NOOP = "noop"


def noop(run: JobRun) -> None:
    run.change(Change(kind="completed", status=JobStatus.completed, progress=100))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--concurrency", type=int, default=1)
    a = ap.parse_args()
    db = Database(a.url)
    with db.read() as conn:  # connect before the barrier, as the peers do
        conn.exec_driver_sql("SELECT 1")
    worker = Worker(db, [JobKind(NOOP, noop)], WorkerConfig(concurrency=a.concurrency))
    print("READY", flush=True)
    sys.stdin.readline()
    worker.start()
    sys.stdin.readline()  # the orchestrator saw every job end
    worker.stop(timeout=30)
    db.dispose()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
