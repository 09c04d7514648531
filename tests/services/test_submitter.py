"""The group-commit Submitter: many awaiting requests, one writer thread, few transactions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.errors import InvalidInput
from prospectpro.services import submissions as submissions_module
from prospectpro.services import submitter as submitter_module
from prospectpro.services.submissions import Submission, SubmitRequest, write_submissions
from prospectpro.services.submitter import Submitter
from prospectpro.services.users import create_user
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID, discovery_jobs, users

SETTINGS = Settings(import_bundled_places=False)
HERE = CampaignRequest(business_type="cafe", location="60.17,24.94")
NOWHERE = CampaignRequest(business_type="cafe", location="91,24")


def request(campaign: CampaignRequest = HERE, **kwargs: Any) -> SubmitRequest:
    return SubmitRequest(campaign, owner_id=kwargs.pop("owner_id", LOCAL_USER_ID), **kwargs)


def count_jobs(db: Database) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(discovery_jobs)).scalar_one()


class Recorder:
    """Wraps the submitter's write_submissions: counts the groups and calls the real one (or a stand-in)."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.lock = threading.Lock()
        self.behaviour: Callable[[int, Database, Settings, list[SubmitRequest]], Any] | None = None

    def __call__(self, db: Database, settings: Settings, requests: list[SubmitRequest]) -> Any:
        with self.lock:
            self.groups.append(len(requests))
            n = len(self.groups)
        if self.behaviour is not None:
            return self.behaviour(n, db, settings, requests)
        return write_submissions(db, settings, requests)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(submitter_module, "write_submissions", rec)
    return rec


@pytest.fixture
def running(db: Database) -> Iterator[Submitter]:
    sub = Submitter(db, SETTINGS).start()
    yield sub
    sub.stop()


class Gate:
    """Holds the writer inside its first group until released, so that the next ones queue up."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.release.wait(15), "the test never opened the gate"


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_concurrent_submissions_share_few_transactions(any_db: Database, recorder: Recorder) -> None:
    sub = Submitter(any_db, SETTINGS).start()
    try:

        async def main() -> list[Submission]:
            return await asyncio.gather(*(sub.submit(request()) for _ in range(50)))

        outcomes = asyncio.run(main())
    finally:
        sub.stop()
    assert len(outcomes) == 50
    assert all(isinstance(o, Submission) and o.created for o in outcomes)
    assert len({o.job.id for o in outcomes}) == 50
    assert count_jobs(any_db) == 50
    assert sum(recorder.groups) == 50
    assert len(recorder.groups) < 50, f"one transaction per request: {recorder.groups}"
    assert max(recorder.groups) > 1


def test_a_bad_request_in_the_middle_gets_its_own_error(db: Database, recorder: Recorder, running: Submitter) -> None:
    campaigns = [HERE] * 10 + [NOWHERE] + [HERE] * 10

    async def main() -> list[Any]:
        return await asyncio.gather(*(running.submit(request(c)) for c in campaigns), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert isinstance(outcomes[10], InvalidInput) and "latitude" in outcomes[10].message
    others = outcomes[:10] + outcomes[11:]
    assert all(isinstance(o, Submission) for o in others), others
    assert len({o.job.id for o in others}) == 20
    assert count_jobs(db) == 20
    assert len(recorder.groups) < len(campaigns)


def test_a_database_failure_reaches_every_waiter_of_its_group_and_the_writer_goes_on(
    db: Database, recorder: Recorder, running: Submitter
) -> None:
    gate = Gate()
    failure = OperationalError("INSERT INTO campaigns …", {}, Exception("disk I/O error"))

    def behaviour(n: int, db: Database, settings: Settings, requests: list[SubmitRequest]) -> Any:
        if n == 1:
            gate.hold()  # the group everybody else queues behind
        elif n == 2:
            raise failure
        return write_submissions(db, settings, requests)

    recorder.behaviour = behaviour

    async def main() -> tuple[Any, list[Any], Any]:
        first = asyncio.ensure_future(running.submit(request()))
        await wait_for(gate.entered.is_set)
        group = [asyncio.ensure_future(running.submit(request())) for _ in range(10)]
        await wait_for(lambda: running._queue.qsize() == 10)
        gate.release.set()
        done_first = await first
        failed = await asyncio.gather(*group, return_exceptions=True)
        after = await running.submit(request())  # the writer is still there
        return done_first, failed, after

    first, failed, after = asyncio.run(asyncio.wait_for(main(), 30))
    assert isinstance(first, Submission)
    assert recorder.groups[:2] == [1, 10]
    assert all(outcome is failure for outcome in failed), failed
    assert isinstance(after, Submission)
    assert count_jobs(db) == 2


def test_stop_writes_what_is_already_queued(db: Database, recorder: Recorder) -> None:
    sub = Submitter(db, SETTINGS, max_batch=3).start()
    gate = Gate()
    recorder.behaviour = lambda n, d, s, r: (gate.hold() if n == 1 else None, write_submissions(d, s, r))[1]
    results: list[Any] = []

    def client_loop() -> None:  # another thread, another event loop (as an API worker thread would be)
        async def main() -> list[Any]:
            return await asyncio.gather(*(sub.submit(request()) for _ in range(8)), return_exceptions=True)

        results.extend(asyncio.run(main()))

    client = threading.Thread(target=client_loop)
    client.start()
    assert gate.entered.wait(10)
    deadline = time.monotonic() + 10
    while sub._queue.qsize() < 8 - recorder.groups[0]:  # all the others wait behind the held group
        assert time.monotonic() < deadline, "the submissions never queued"
        time.sleep(0.005)
    writer = sub._thread
    threading.Timer(0.2, gate.release.set).start()
    sub.stop()  # returns once the 7 queued ones are written too
    assert writer is not None and not writer.is_alive()
    client.join(10)
    assert not client.is_alive()
    assert len(results) == 8 and all(isinstance(o, Submission) for o in results), results
    assert count_jobs(db) == 8
    assert sum(recorder.groups) == 8 and max(recorder.groups) <= 3


def test_submit_before_start_and_after_stop_is_refused(db: Database) -> None:
    sub = Submitter(db, SETTINGS)
    with pytest.raises(RuntimeError):
        asyncio.run(sub.submit(request()))
    sub.start()
    assert isinstance(asyncio.run(sub.submit(request())), Submission)
    sub.stop()
    with pytest.raises(RuntimeError):
        asyncio.run(sub.submit(request()))
    assert count_jobs(db) == 1


def test_a_cancelled_waiter_does_not_break_the_group(db: Database, recorder: Recorder, running: Submitter) -> None:
    """A client that goes away (its future cancelled) leaves its submission standing and the others answered."""
    gate = Gate()
    recorder.behaviour = lambda n, d, s, r: (gate.hold() if n == 1 else None, write_submissions(d, s, r))[1]

    async def main() -> list[Any]:
        first = asyncio.ensure_future(running.submit(request()))
        await wait_for(gate.entered.is_set)
        tasks = [asyncio.ensure_future(running.submit(request())) for _ in range(5)]
        await wait_for(lambda: running._queue.qsize() == 5)
        tasks[2].cancel()
        gate.release.set()
        await first
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(asyncio.wait_for(main(), 30))
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert all(isinstance(o, Submission) for i, o in enumerate(outcomes) if i != 2)
    assert count_jobs(db) == 6  # the cancelled one was written all the same


# Regression test; the bug it caught (since fixed): a submit() racing stop() queued behind the end marker and was never answered.
def test_a_submission_racing_with_stop_is_answered(db: Database, recorder: Recorder) -> None:
    sub = Submitter(db, SETTINGS).start()
    gate = Gate()
    recorder.behaviour = lambda n, d, s, r: (gate.hold() if n == 1 else None, write_submissions(d, s, r))[1]
    first: list[Any] = []
    client = threading.Thread(target=lambda: first.append(asyncio.run(sub.submit(request()))))
    client.start()
    assert gate.entered.wait(10)
    stopper = threading.Thread(target=sub.stop)
    stopper.start()
    deadline = time.monotonic() + 10
    while sub._queue.qsize() < 1:  # stop() has put its marker and is waiting for the writer
        assert time.monotonic() < deadline
        time.sleep(0.005)

    async def late() -> Any:
        task = asyncio.ensure_future(sub.submit(request()))
        await asyncio.sleep(0.1)
        gate.release.set()
        try:
            return await asyncio.wait_for(task, 3)
        except RuntimeError as exc:  # refused: acceptable
            return exc

    try:
        outcome = asyncio.run(late())
    finally:
        gate.release.set()
        stopper.join(10)
        client.join(10)
    assert isinstance(first[0], Submission)
    assert isinstance(outcome, Submission | RuntimeError)


def as_one_group(running: Submitter, recorder: Recorder, requests: list[SubmitRequest]) -> list[Any]:
    """Each request's outcome (or exception), the requests written as one group: the writer is held
    in a first group of one until they are all queued behind it."""
    gate = Gate()
    recorder.behaviour = lambda n, d, s, r: (gate.hold() if n == 1 else None, write_submissions(d, s, r))[1]

    async def main() -> list[Any]:
        first = asyncio.ensure_future(running.submit(request()))
        await wait_for(gate.entered.is_set)
        tasks = [asyncio.ensure_future(running.submit(r)) for r in requests]
        await wait_for(lambda: running._queue.qsize() == len(requests))
        gate.release.set()
        assert isinstance(await first, Submission)
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(asyncio.wait_for(main(), 30))
    assert recorder.groups[:2] == [1, len(requests)]
    return outcomes


def owners_jobs(db: Database, owner: str) -> list[str]:
    with db.read() as conn:
        return list(conn.execute(select(discovery_jobs.c.id).where(discovery_jobs.c.owner_id == owner)).scalars())


# Regression test; the bug it caught (since fixed): an error of one request in the one-by-one fallback escaped
# write_submissions, and Submitter._write handed it to every waiter of the group, including those whose jobs
# the fallback had already committed (clients got 500 for jobs that exist; retrying ones made duplicates).
def test_a_request_that_fails_alone_fails_no_other_waiter(
    any_db: Database, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = create_user(any_db, "alice")[0].user_id, create_user(any_db, "bob")[0].user_id
    failure = RuntimeError("only alice's request meets this")
    real = submissions_module.insert_jobs

    def insert_jobs(conn: Any, new_jobs: Any, now: Any = None) -> Any:
        if len(new_jobs) > 1:  # the group fails as a lost key race would: each is written again alone
            raise IntegrityError("INSERT INTO discovery_jobs …", {}, Exception("duplicate key value"))
        if new_jobs and new_jobs[0].owner_id == alice:
            raise failure
        return real(conn, new_jobs, now)

    monkeypatch.setattr(submissions_module, "insert_jobs", insert_jobs)
    sub = Submitter(any_db, SETTINGS).start()
    try:
        keyed, failed, anonymous, plain, invalid = as_one_group(
            sub,
            recorder,
            [
                request(owner_id=bob, idempotency_key="bob-1"),
                request(owner_id=alice),
                SubmitRequest(HERE),  # anonymous: opens a session
                request(owner_id=bob),
                request(NOWHERE, owner_id=bob),
            ],
        )
    finally:
        sub.stop()
    assert failed is failure
    assert isinstance(keyed, Submission) and isinstance(plain, Submission) and isinstance(anonymous, Submission)
    assert isinstance(invalid, InvalidInput)
    assert sorted(owners_jobs(any_db, bob)) == sorted([keyed.job.id, plain.job.id])
    assert owners_jobs(any_db, alice) == []
    assert owners_jobs(any_db, anonymous.job.owner_id) == [anonymous.job.id]
    assert count_jobs(any_db) == 1 + 3  # the first (held) group's, and one per committed request


def test_a_database_failure_reaches_the_waiters_of_its_transaction_as_an_operational_error(
    any_db: Database, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OperationalError stays one (the API answers 503 with Retry-After); a request refused before the
    transaction keeps its own answer; the writer goes on."""
    failure = OperationalError("INSERT INTO discovery_jobs …", {}, Exception("the database system is shutting down"))
    real = submissions_module.insert_jobs

    def insert_jobs(conn: Any, new_jobs: Any, now: Any = None) -> Any:
        if len(new_jobs) > 1:
            raise failure
        return real(conn, new_jobs, now)

    monkeypatch.setattr(submissions_module, "insert_jobs", insert_jobs)
    sub = Submitter(any_db, SETTINGS).start()
    try:
        outcomes = as_one_group(sub, recorder, [request(), request(NOWHERE), SubmitRequest(HERE), request()])
        after = asyncio.run(sub.submit(request()))
    finally:
        sub.stop()
    assert isinstance(outcomes[1], InvalidInput)
    assert [o is failure for o in outcomes] == [True, False, True, True]
    assert isinstance(after, Submission)
    assert count_jobs(any_db) == 2  # the held group's and the one after
    with any_db.read() as conn:
        assert conn.execute(select(func.count()).select_from(users).where(users.c.kind == "anonymous")).scalar_one() == 0
