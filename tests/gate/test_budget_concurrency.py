"""Budgets under concurrency: 16 paid calls at once from two processes (8 threads each) never overspend.

Each process has its own gate and database engine, as two workers would;
the ledger's reservations (under the owner's lock) are the only thing
between them. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from prospectpro.gate.errors import OverBudget
from prospectpro.store.db import Database
from prospectpro.store.schema import api_calls
from tests.gate.fakes import PRICE, add_user, context, fake_spec, install, make_gate, search
from tests.sim.server import Simulator

THREADS = 8


def _worker(url: str, sim_url: str, owner_id: str, job_id: str, budget: str, first: int, start: Any, out: Any) -> None:
    """One process: 8 threads, each one paid search of its own, all let go at once."""
    db = Database(url)
    gate = make_gate(db, fake_spec(sim_url))  # the simulator runs in the test's process
    ctx = context(gate, owner_id=owner_id, job_id=job_id, budget=budget)
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def one(n: int) -> None:
        barrier.wait()
        try:
            search(ctx, f"q{n}")
            outcome = "ok"
        except OverBudget:
            outcome = "over_budget"
        except Exception as exc:  # reported, so that the test shows it
            outcome = f"{type(exc).__name__}: {exc}"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one, args=(first + i,)) for i in range(THREADS)]
    start.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gate.close()
    db.dispose()
    out.put(results)


def _run(db: Database, sim: Simulator, jobs: tuple[str, str], owner_id: str, budget: str) -> list[str]:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Event()
    out = spawn.Queue()
    procs = [
        spawn.Process(target=_worker, args=(db.url, sim.url, owner_id, job, budget, i * THREADS, start, out))
        for i, job in enumerate(jobs)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [r for _ in procs for r in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


def _pg_url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def shared_db(any_db: Database) -> Database:
    any_db.url = _pg_url(any_db) if not any_db.is_sqlite else any_db.url
    return any_db


def test_a_campaign_budget_holds_across_two_processes(shared_db: Database, sim: Simulator) -> None:
    install(sim)
    sim.set_latency("/v1/search", 0.05)  # calls overlap the other reservations
    job = str(uuid.uuid4())
    owner = add_user(shared_db)
    budget = PRICE * 3
    results = _run(shared_db, sim, (job, job), owner, str(budget))
    assert sorted(results) == ["ok"] * 3 + ["over_budget"] * 13
    with shared_db.read() as conn:
        rows = list(conn.execute(select(api_calls.c.status, api_calls.c.cost)))
    assert sum((r.cost for r in rows if r.status in ("ok", "reserved")), Decimal("0")) <= budget
    assert sorted(r.status for r in rows) == ["ok"] * 3 + ["over_budget"] * 13
    assert sim.count("/v1/search") == 3


def test_an_owner_monthly_cap_holds_across_two_campaigns_in_two_processes(
    shared_db: Database, sim: Simulator
) -> None:
    install(sim)
    sim.set_latency("/v1/search", 0.05)
    owner = add_user(shared_db, monthly_budget=str(PRICE * 3))
    jobs = (str(uuid.uuid4()), str(uuid.uuid4()))
    results = _run(shared_db, sim, jobs, owner, "100")
    assert sorted(results) == ["ok"] * 3 + ["over_budget"] * 13
    with shared_db.read() as conn:
        spent = conn.execute(
            select(api_calls.c.cost).where(api_calls.c.owner_id == owner, api_calls.c.status.in_(("ok", "reserved")))
        ).scalars().all()
    assert sum(spent, Decimal("0")) == PRICE * 3
    assert sim.count("/v1/search") == 3
