"""write_submissions: a group of submissions, one transaction, an outcome per request."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.domain.status import JobStatus
from prospectpro.errors import Conflict, InvalidInput, RateLimited, UserError
from prospectpro.jobs.queue import get_job
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.services import submissions
from prospectpro.services.submissions import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    Submission,
    SubmitRequest,
    check_idempotency_key,
    submit_campaign,
    write_submissions,
)
from prospectpro.services.users import authenticate, create_user
from prospectpro.store.db import Database
from prospectpro.store.schema import (
    LOCAL_USER_ID,
    campaigns,
    credentials,
    discovery_jobs,
    job_events,
    rate_limits,
    users,
)

SETTINGS = Settings(import_bundled_places=False)
# Coordinates resolve without any imported places data.
HERE = CampaignRequest(business_type="cafe", location="60.17,24.94")
THERE = CampaignRequest(business_type="cafe", location="60.17,24.94", max_results=21)
NOWHERE = CampaignRequest(business_type="cafe", location="91,24")  # latitude out of range


def count(db: Database, table: Any, *where: Any) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def rows(db: Database, table: Any, *where: Any) -> list[Any]:
    with db.read() as conn:
        return list(conn.execute(select(table).where(*where)).all())


def race(fn: Callable[[int], Any]) -> list[Any]:
    """fn(0) and fn(1) in two threads released together; each one's result or exception."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def new_owner(db: Database, name: str = "alice") -> str:
    principal, _ = create_user(db, name)
    return principal.user_id


# -- per-slot outcomes ------------------------------------------------------------------


def test_each_request_of_a_group_gets_its_own_outcome_and_only_valid_rows_are_written(any_db: Database) -> None:
    owner = new_owner(any_db)
    outcomes = write_submissions(
        any_db,
        SETTINGS,
        [
            SubmitRequest(NOWHERE, owner_id=owner, per_minute=1),  # refused before it could spend a token
            SubmitRequest(HERE, owner_id=owner, per_minute=1),  # takes the owner's only token
            SubmitRequest(THERE, owner_id=owner, per_minute=1),  # finds the bucket empty
        ],
    )
    assert len(outcomes) == 3
    invalid, valid, limited = outcomes
    assert isinstance(invalid, InvalidInput) and "latitude" in invalid.message
    assert isinstance(valid, Submission) and valid.created and valid.session is None
    assert isinstance(limited, RateLimited)
    assert limited.retry_after >= 1 and limited.details == {"retry_after": limited.retry_after}

    assert [r.id for r in rows(any_db, discovery_jobs)] == [valid.job.id]
    assert [r.id for r in rows(any_db, campaigns)] == [valid.campaign_id]
    events = rows(any_db, job_events)
    assert [(e.job_id, e.seq, e.kind) for e in events] == [(valid.job.id, 1, "created")]

    job = get_job(any_db, valid.job.id, owner)
    assert job.status == JobStatus.pending and job.event_seq == 1 and job.campaign_id == valid.campaign_id
    assert job.config["max_results"] == 20 and job.max_attempts == SETTINGS.max_attempts
    (bucket,) = rows(any_db, rate_limits)
    assert bucket.key == f"submit:{owner}" and bucket.tokens == pytest.approx(0.0, abs=0.01)


def test_a_group_of_valid_requests_is_written_together(any_db: Database) -> None:
    owners = [new_owner(any_db, f"u{i}") for i in range(3)]
    requests = [SubmitRequest(HERE, owner_id=owners[i % 3], per_minute=100) for i in range(12)]
    outcomes = write_submissions(any_db, SETTINGS, requests)
    assert all(isinstance(o, Submission) and o.created for o in outcomes)
    jobs = {o.job.id: o for o in outcomes if isinstance(o, Submission)}
    assert len(jobs) == 12
    assert count(any_db, discovery_jobs) == count(any_db, campaigns) == count(any_db, job_events) == 12
    for request, outcome in zip(requests, outcomes, strict=True):
        assert isinstance(outcome, Submission)
        assert get_job(any_db, outcome.job.id).owner_id == request.owner_id
    # One bucket per owner, each spent by its 4 submissions.
    assert sorted(round(b.tokens) for b in rows(any_db, rate_limits)) == [96, 96, 96]


def test_an_unknown_business_type_is_refused_in_its_slot_only(any_db: Database) -> None:
    bad = CampaignRequest(business_type="spaceship", location="60.17,24.94")
    outcomes = write_submissions(
        any_db, SETTINGS, [SubmitRequest(HERE, owner_id=LOCAL_USER_ID), SubmitRequest(bad, owner_id=LOCAL_USER_ID)]
    )
    assert isinstance(outcomes[0], Submission)
    assert isinstance(outcomes[1], InvalidInput) and "spaceship" in outcomes[1].message
    assert count(any_db, discovery_jobs) == 1


def test_submit_campaign_raises_the_user_error(any_db: Database) -> None:
    with pytest.raises(InvalidInput):
        submit_campaign(any_db, SETTINGS, LOCAL_USER_ID, NOWHERE)
    submit_campaign(any_db, SETTINGS, LOCAL_USER_ID, HERE, per_minute=1)
    with pytest.raises(RateLimited):
        submit_campaign(any_db, SETTINGS, LOCAL_USER_ID, HERE, per_minute=1)
    assert count(any_db, discovery_jobs) == 1


# -- Idempotency-Key -------------------------------------------------------------------


def test_the_same_key_twice_in_one_group_is_one_job(any_db: Database) -> None:
    owner = new_owner(any_db)
    first, again = write_submissions(
        any_db,
        SETTINGS,
        [
            SubmitRequest(HERE, owner_id=owner, idempotency_key="k1", notify_url="https://example.com/hook"),
            SubmitRequest(HERE, owner_id=owner, idempotency_key="k1", notify_url="https://example.com/hook"),
        ],
    )
    assert isinstance(first, Submission) and isinstance(again, Submission)
    assert first.created is True and again.created is False
    assert again.job.id == first.job.id and again.campaign_id == first.campaign_id
    assert first.notify_secret and again.notify_secret is None  # the secret is shown once
    assert count(any_db, discovery_jobs) == 1 and count(any_db, campaigns) == 1 and count(any_db, job_events) == 1


def test_the_same_key_with_a_different_body_in_one_group_is_a_conflict(any_db: Database) -> None:
    owner = new_owner(any_db)
    first, other = write_submissions(
        any_db,
        SETTINGS,
        [
            SubmitRequest(HERE, owner_id=owner, idempotency_key="k1"),
            SubmitRequest(THERE, owner_id=owner, idempotency_key="k1"),
        ],
    )
    assert isinstance(first, Submission) and first.created
    assert isinstance(other, Conflict)
    assert [r.id for r in rows(any_db, discovery_jobs)] == [first.job.id]
    assert get_job(any_db, first.job.id).config["max_results"] == 20


def test_the_same_key_for_two_owners_in_one_group_is_two_jobs(any_db: Database) -> None:
    a, b = new_owner(any_db, "a"), new_owner(any_db, "b")
    one, two = write_submissions(
        any_db,
        SETTINGS,
        [SubmitRequest(HERE, owner_id=a, idempotency_key="k"), SubmitRequest(THERE, owner_id=b, idempotency_key="k")],
    )
    assert isinstance(one, Submission) and isinstance(two, Submission)
    assert one.created and two.created and one.job.id != two.job.id


def test_a_key_already_in_the_store_replays_or_conflicts(any_db: Database) -> None:
    owner = new_owner(any_db)
    earlier = submit_campaign(any_db, SETTINGS, owner, HERE, idempotency_key="order-7", per_minute=1)
    replay, conflict, fresh = write_submissions(
        any_db,
        SETTINGS,
        [
            # The bucket is empty now (per_minute=1): a replay must not need a token.
            SubmitRequest(HERE, owner_id=owner, idempotency_key="order-7", per_minute=1),
            SubmitRequest(THERE, owner_id=owner, idempotency_key="order-7", per_minute=1),
            SubmitRequest(HERE, owner_id=owner, idempotency_key="order-8", per_minute=1),
        ],
    )
    assert isinstance(replay, Submission)
    assert replay.created is False and replay.job.id == earlier.job.id and replay.campaign_id == earlier.campaign_id
    assert isinstance(conflict, Conflict)
    assert isinstance(fresh, RateLimited)  # a new key is a new submission, and the bucket is empty
    assert count(any_db, discovery_jobs) == 1


# -- anonymous sessions ------------------------------------------------------------------


def test_anonymous_requests_each_get_a_new_session_whose_token_authenticates(any_db: Database) -> None:
    before = count(any_db, users)
    outcomes = write_submissions(
        any_db,
        SETTINGS,
        [
            SubmitRequest(HERE, session_label="first visitor"),
            SubmitRequest(HERE),
            SubmitRequest(HERE, owner_id=LOCAL_USER_ID),  # not anonymous: no session
        ],
    )
    first, second, local = outcomes
    assert isinstance(first, Submission) and isinstance(second, Submission) and isinstance(local, Submission)
    assert local.session is None and local.session_token is None
    assert first.session is not None and second.session is not None
    (p1, t1), (p2, t2) = first.session, second.session
    assert p1.kind == p2.kind == "anonymous"
    assert p1.name == "first visitor" and p2.name == "anonymous"
    assert p1.user_id != p2.user_id and t1 != t2
    assert t1.startswith("pps_") and first.session_token == t1
    assert first.job.owner_id == p1.user_id and second.job.owner_id == p2.user_id
    assert authenticate(any_db, t1) == p1
    assert authenticate(any_db, t2) == p2
    assert count(any_db, users) == before + 2
    assert count(any_db, credentials, credentials.c.kind == "session") == 2


def test_a_refused_session_admission_refuses_only_that_slot_and_opens_no_session(any_db: Database) -> None:
    """New sessions per client address are a bucket in the store too; only a valid request spends from it."""
    here, there = ("203.0.113.9", 1), ("198.51.100.7", 1)
    before = count(any_db, users)
    outcomes = write_submissions(
        any_db,
        SETTINGS,
        [
            SubmitRequest(NOWHERE, session_limit=here),  # invalid: refused before it could spend the one token
            SubmitRequest(HERE, session_limit=here),
            SubmitRequest(HERE, session_limit=here),  # the address's one session a minute is spent
            SubmitRequest(HERE, session_limit=there),  # another address has its own
            SubmitRequest(HERE, owner_id=LOCAL_USER_ID, session_limit=here),  # has an owner: opens no session
        ],
    )
    invalid, ok, refused, elsewhere, owned = outcomes
    assert isinstance(invalid, InvalidInput)
    assert isinstance(ok, Submission) and ok.session is not None
    assert isinstance(refused, RateLimited) and 1 <= refused.retry_after <= 60
    assert isinstance(elsewhere, Submission) and elsewhere.session is not None
    assert isinstance(owned, Submission) and owned.session is None
    assert count(any_db, users) == before + 2
    assert count(any_db, users, users.c.kind == "anonymous") == 2
    assert count(any_db, discovery_jobs) == 3
    # The same address is refused by a later group as well (the bucket is in the store).
    [again] = write_submissions(any_db, SETTINGS, [SubmitRequest(HERE, session_limit=here)])
    assert isinstance(again, RateLimited)


# -- the rate limit lives in the store ---------------------------------------------------


def test_the_rate_limit_holds_across_two_database_handles(any_db: Database) -> None:
    """Two handles on one store, as two API processes would have: they share one bucket."""
    owner = new_owner(any_db)
    other = Database(any_db.url)
    try:
        for db in (any_db, other, any_db):
            assert isinstance(
                write_submissions(db, SETTINGS, [SubmitRequest(HERE, owner_id=owner, per_minute=3)])[0], Submission
            )
        for db in (other, any_db):
            refused = write_submissions(db, SETTINGS, [SubmitRequest(HERE, owner_id=owner, per_minute=3)])[0]
            assert isinstance(refused, RateLimited), refused
            assert 1 <= refused.retry_after <= 20
        # Another owner is not affected.
        assert isinstance(submit_campaign(other, SETTINGS, LOCAL_USER_ID, HERE, per_minute=3), Submission)
    finally:
        other.dispose()
    assert count(any_db, discovery_jobs, discovery_jobs.c.owner_id == owner) == 3


def test_unlimited_owners_write_no_bucket(any_db: Database) -> None:
    for _ in range(3):
        submit_campaign(any_db, SETTINGS, LOCAL_USER_ID, HERE, per_minute=None)
    assert count(any_db, rate_limits) == 0
    assert count(any_db, discovery_jobs) == 3


# -- PostgreSQL: two processes racing with one key -----------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("per_minute", [None, 10_000])
def test_concurrent_submissions_with_one_key_end_with_one_job(
    pg_db: Database, per_minute: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both look before either inserts; the unique index refuses one, which then answers with the winner's job."""
    fallbacks = 0
    real_write_each_alone = submissions._write_each_alone

    def counting_write_each_alone(*args: Any, **kwargs: Any) -> Any:
        nonlocal fallbacks
        fallbacks += 1
        return real_write_each_alone(*args, **kwargs)

    monkeypatch.setattr(submissions, "_write_each_alone", counting_write_each_alone)
    owner = new_owner(pg_db)
    handles = [pg_db, Database(pg_db.url)]  # as two API processes
    rounds = 15
    try:
        for r in range(rounds):
            a, b = race(
                lambda i, key=f"key-{r}": submit_campaign(
                    handles[i], SETTINGS, owner, HERE, idempotency_key=key, per_minute=per_minute
                )
            )
            assert isinstance(a, Submission), a
            assert isinstance(b, Submission), b
            assert a.job.id == b.job.id and a.campaign_id == b.campaign_id
            assert sorted([a.created, b.created]) == [False, True]
            assert count(pg_db, discovery_jobs, discovery_jobs.c.idempotency_key == f"key-{r}") == 1
    finally:
        handles[1].dispose()
    assert count(pg_db, discovery_jobs) == rounds
    assert count(pg_db, campaigns) == rounds  # the loser's campaign row was rolled back with its job
    assert count(pg_db, job_events) == rounds
    assert fallbacks > 0, "the race never happened: the IntegrityError fallback was not exercised"


@pytest.mark.postgres
def test_a_group_that_loses_a_key_race_still_writes_its_other_requests(pg_db: Database) -> None:
    """The fallback redoes the whole group one by one: the other requests are not lost."""
    owner = new_owner(pg_db)
    other_owner = new_owner(pg_db, "bob")
    handles = [pg_db, Database(pg_db.url)]
    try:
        results = race(
            lambda i: write_submissions(
                handles[i],
                SETTINGS,
                [
                    SubmitRequest(HERE, owner_id=other_owner),
                    SubmitRequest(HERE, owner_id=owner, idempotency_key="raced-2"),
                    SubmitRequest(HERE),  # anonymous: a session is opened (once) for it
                ],
            )
        )
    finally:
        handles[1].dispose()
    for outcome in results:
        assert isinstance(outcome, list), outcome
        assert all(isinstance(o, Submission) for o in outcome), outcome
    (a_plain, a_keyed, a_anon), (b_plain, b_keyed, b_anon) = results
    assert a_keyed.job.id == b_keyed.job.id
    assert a_plain.job.id != b_plain.job.id and a_anon.job.id != b_anon.job.id
    assert a_anon.session is not None and b_anon.session is not None
    assert count(pg_db, discovery_jobs, discovery_jobs.c.owner_id == other_owner) == 2
    assert count(pg_db, discovery_jobs, discovery_jobs.c.idempotency_key == "raced-2") == 1
    assert count(pg_db, users, users.c.kind == "anonymous") == 2  # no session left behind by a rolled-back try
    assert count(pg_db, discovery_jobs) == 2 + 1 + 2


# -- one request's failure is its own ------------------------------------------------------


def jobs_of(db: Database, owner: str) -> list[Any]:
    return rows(db, discovery_jobs, discovery_jobs.c.owner_id == owner)


@pytest.mark.parametrize(
    "key", ["a", "~" * IDEMPOTENCY_KEY_MAX_LENGTH, "!#$%&'*+-.^_`|~09AZaz", "order-7:2024/05/01"]
)
def test_a_key_of_visible_ascii_characters_is_accepted(key: str) -> None:
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize(
    "key", ["", " ", "a b", "a\tb", "tab\t", "abc\n", "nul\x00", "del\x7f", "é", "ключ", "x" * (IDEMPOTENCY_KEY_MAX_LENGTH + 1)]
)
def test_an_empty_overlong_or_invisible_key_is_refused(key: str) -> None:
    with pytest.raises(InvalidInput, match="Idempotency-Key must be 1–"):
        check_idempotency_key(key)


# Regression test; the bug it caught (since fixed): '' was "no key" on lookup but stored in the unique
# (owner, key) column; the second such request raised IntegrityError, the one-by-one fallback re-raised
# it, and every request of the group got it, including those the fallback had already committed.
def test_an_empty_key_is_refused_alone_and_another_tenant_in_the_group_gets_its_one_job(any_db: Database) -> None:
    alice, bob = new_owner(any_db, "alice"), new_owner(any_db, "bob")
    [first] = write_submissions(any_db, SETTINGS, [SubmitRequest(HERE, owner_id=alice, idempotency_key="")])
    outcomes = write_submissions(
        any_db,
        SETTINGS,
        [
            SubmitRequest(HERE, owner_id=alice, idempotency_key=""),
            SubmitRequest(HERE, owner_id=bob, idempotency_key="bob-1"),
            SubmitRequest(HERE, owner_id=alice, idempotency_key=""),
            SubmitRequest(HERE, owner_id=alice, idempotency_key="x" * (IDEMPOTENCY_KEY_MAX_LENGTH + 1)),
            SubmitRequest(HERE, owner_id=alice, idempotency_key="a b"),
            SubmitRequest(HERE, owner_id=bob),
            SubmitRequest(HERE, session_limit=("203.0.113.5", 5)),  # a third tenant: a new anonymous session
            SubmitRequest(HERE, owner_id=alice, idempotency_key="k" * IDEMPOTENCY_KEY_MAX_LENGTH),
        ],
    )
    empty, keyed, empty_again, overlong, spaced, plain, anonymous, longest = outcomes
    for refused in (first, empty, empty_again, overlong, spaced):
        assert isinstance(refused, InvalidInput) and "Idempotency-Key" in refused.message, refused
    assert isinstance(keyed, Submission) and keyed.created and keyed.job.owner_id == bob
    assert isinstance(plain, Submission) and plain.created and plain.job.owner_id == bob
    assert isinstance(anonymous, Submission) and anonymous.session is not None
    assert isinstance(longest, Submission) and longest.created and longest.job.owner_id == alice
    assert sorted(r.id for r in jobs_of(any_db, bob)) == sorted([keyed.job.id, plain.job.id])
    assert [r.id for r in jobs_of(any_db, alice)] == [longest.job.id]
    assert count(any_db, discovery_jobs, discovery_jobs.c.idempotency_key == "") == 0
    assert count(any_db, discovery_jobs) == 4
    assert count(any_db, users, users.c.kind == "anonymous") == 1


def test_a_prepared_request_with_an_empty_key_is_refused_too(any_db: Database) -> None:
    """Defence in depth: whatever an edge hands the writer, '' is never stored."""
    prepared = submissions.prepare_campaign(any_db, HERE)
    [refused] = write_submissions(any_db, SETTINGS, [SubmitRequest(prepared, owner_id=LOCAL_USER_ID, idempotency_key="")])
    assert isinstance(refused, InvalidInput)
    with pytest.raises(InvalidInput):
        submit_campaign(any_db, SETTINGS, LOCAL_USER_ID, HERE, idempotency_key="")
    assert count(any_db, discovery_jobs) == 0


@pytest.mark.postgres
def test_a_value_the_database_refuses_fails_its_request_alone(pg_db: Database) -> None:
    """A DataError (here: a location label over campaigns.location's 300 characters) is that request's outcome."""
    alice, bob = new_owner(pg_db, "alice"), new_owner(pg_db, "bob")
    prepared = submissions.prepare_campaign(pg_db, HERE)
    too_long = dataclasses.replace(prepared, area=dataclasses.replace(prepared.area, label="x" * 400))
    outcomes = write_submissions(
        pg_db,
        SETTINGS,
        [
            SubmitRequest(HERE, owner_id=bob, idempotency_key="bob-1"),
            SubmitRequest(too_long, owner_id=alice, idempotency_key="alice-1"),
            SubmitRequest(HERE, owner_id=bob),
            SubmitRequest(HERE),
        ],
    )
    keyed, refused, plain, anonymous = outcomes
    assert isinstance(refused, DataError)
    assert all(isinstance(o, Submission) and o.created for o in (keyed, plain, anonymous)), outcomes
    assert len(jobs_of(pg_db, bob)) == 2 and jobs_of(pg_db, alice) == []
    assert count(pg_db, discovery_jobs) == count(pg_db, campaigns) == 3
    # Alone too (the CLI's path): the same error, raised.
    with pytest.raises(DataError):
        submit_campaign(pg_db, SETTINGS, alice, too_long)


def fail_groups_and(monkeypatch: pytest.MonkeyPatch, alone: Callable[[Any], None]) -> list[int]:
    """insert_jobs refuses every group of more than one (as a lost key race would), and calls
    ``alone(new_job)`` before writing a job alone. Returns the sizes it was called with."""
    real = submissions.insert_jobs
    sizes: list[int] = []

    def insert_jobs(conn: Any, new_jobs: Any, now: Any = None) -> Any:
        if not new_jobs:  # a request answered by an earlier job writes none
            return real(conn, new_jobs, now)
        sizes.append(len(new_jobs))
        if len(new_jobs) > 1:
            raise IntegrityError("INSERT INTO discovery_jobs …", {}, Exception("duplicate key value"))
        alone(new_jobs[0])
        return real(conn, new_jobs, now)

    monkeypatch.setattr(submissions, "insert_jobs", insert_jobs)
    return sizes


# Regression test; the bug it caught (since fixed): the one-by-one fallback caught only DataError; any other
# error of one request escaped write_submissions, and the requests it had already committed got that error.
def test_an_unexpected_error_in_the_fallback_is_that_request_s_alone(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = new_owner(any_db, "alice"), new_owner(any_db, "bob")
    failure = RuntimeError("a bug that only alice's request meets")

    def alone(new_job: Any) -> None:
        if new_job.owner_id == alice:
            raise failure

    sizes = fail_groups_and(monkeypatch, alone)
    outcomes = write_submissions(
        any_db,
        SETTINGS,
        [
            SubmitRequest(HERE, owner_id=bob, idempotency_key="bob-1"),  # committed before alice's fails
            SubmitRequest(HERE, owner_id=alice),
            SubmitRequest(HERE),  # anonymous, after it
            SubmitRequest(HERE, owner_id=bob, idempotency_key="bob-1"),  # bob's retry in the same group
            SubmitRequest(NOWHERE, owner_id=bob),  # refused before any write
        ],
    )
    keyed, failed, anonymous, retry, invalid = outcomes
    assert failed is failure
    assert isinstance(keyed, Submission) and keyed.created
    assert isinstance(retry, Submission) and not retry.created and retry.job.id == keyed.job.id
    assert isinstance(anonymous, Submission) and anonymous.session is not None
    assert isinstance(invalid, InvalidInput)
    assert sizes[0] == 3 and sizes[1:] == [1, 1, 1]  # the group, then each new submission alone
    assert [r.id for r in jobs_of(any_db, bob)] == [keyed.job.id]
    assert jobs_of(any_db, alice) == []
    assert count(any_db, discovery_jobs) == count(any_db, campaigns) == count(any_db, job_events) == 2
    assert count(any_db, users, users.c.kind == "anonymous") == 1  # the rolled-back tries left no session


def test_a_database_failure_answers_each_request_of_its_transaction_with_it(
    any_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the transaction was written: each of its requests gets the OperationalError (a 503 at the
    API), nobody tries again one by one, and a request refused before the transaction keeps its own refusal."""
    failure = OperationalError("INSERT INTO discovery_jobs …", {}, Exception("server closed the connection"))
    calls: list[int] = []

    def insert_jobs(conn: Any, new_jobs: Any, now: Any = None) -> Any:
        calls.append(len(new_jobs))
        raise failure

    monkeypatch.setattr(submissions, "insert_jobs", insert_jobs)
    owner = new_owner(any_db)
    outcomes = write_submissions(
        any_db,
        SETTINGS,
        [SubmitRequest(HERE, owner_id=owner), SubmitRequest(NOWHERE, owner_id=owner), SubmitRequest(HERE)],
    )
    assert outcomes[0] is failure and outcomes[2] is failure
    assert isinstance(outcomes[1], InvalidInput)
    assert calls == [2]
    assert count(any_db, discovery_jobs) == 0 and count(any_db, users, users.c.kind == "anonymous") == 0


def test_the_database_failing_during_the_fallback_ends_it(any_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the database has failed, the requests not yet written alone get that error without a try each
    (each could wait out the write-lock timeout); the ones already written keep their jobs."""
    down = OperationalError("BEGIN", {}, Exception("database is locked"))
    tried: list[str] = []
    owners = [new_owner(any_db, f"u{i}") for i in range(4)]

    def alone(new_job: Any) -> None:
        tried.append(new_job.owner_id)
        if new_job.owner_id == owners[1]:
            raise down

    fail_groups_and(monkeypatch, alone)
    outcomes = write_submissions(any_db, SETTINGS, [SubmitRequest(HERE, owner_id=o) for o in owners])
    assert isinstance(outcomes[0], Submission)
    assert outcomes[1:] == [down, down, down]
    assert tried == owners[:2]
    assert [r.id for r in rows(any_db, discovery_jobs)] == [outcomes[0].job.id]


# Regression test; the bug it caught (since fixed): an error raised once the group's transaction had committed
# (by a commit listener) escaped write_submissions, so every request of the group got an error for a job that exists.
def test_an_error_after_the_commit_leaves_each_request_its_job(any_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def publish(job_id: str) -> None:
        raise RuntimeError("a listener failed after the commit")

    monkeypatch.setattr(any_db.notifier, "publish", publish)
    alice, bob = new_owner(any_db, "alice"), new_owner(any_db, "bob")
    outcomes = write_submissions(
        any_db,
        SETTINGS,
        [SubmitRequest(HERE, owner_id=alice, idempotency_key="a-1"), SubmitRequest(HERE, owner_id=bob), SubmitRequest(HERE)],
    )
    assert all(isinstance(o, Submission) and o.created for o in outcomes), outcomes
    assert count(any_db, discovery_jobs) == 3  # written once: not again one by one
    assert {r.id for r in rows(any_db, discovery_jobs)} == {o.job.id for o in outcomes if isinstance(o, Submission)}


# -- found while testing -----------------------------------------------------------------


# Regression test; the bugs it caught (since fixed): 'Kluuvi, fi, fi, …' made a 438-character label (over campaigns.location's 300),
# and on PostgreSQL that DataError failed every request of the group.
@pytest.mark.postgres
def test_an_overlong_location_label_does_not_fail_the_rest_of_the_group(pg_db: Database) -> None:
    ensure_bundled_places(pg_db)
    long_text = "Kluuvi" + ", fi" * 48
    assert len(long_text) <= 200  # within the request's own limit
    outcomes = write_submissions(
        pg_db,
        SETTINGS,
        [
            SubmitRequest(CampaignRequest(business_type="cafe", location=long_text), owner_id=LOCAL_USER_ID),
            SubmitRequest(HERE, owner_id=LOCAL_USER_ID),
        ],
    )
    assert isinstance(outcomes[0], Submission | UserError)
    assert isinstance(outcomes[1], Submission)


# Regression test; the bug it caught (since fixed): _check_rates sorted (key, Rate) pairs and Rate has no order: TypeError for the group.
def test_one_owner_with_two_rates_in_one_group_gets_outcomes(db: Database) -> None:
    owner = new_owner(db)
    outcomes = write_submissions(
        db,
        SETTINGS,
        [SubmitRequest(HERE, owner_id=owner, per_minute=5), SubmitRequest(HERE, owner_id=owner, per_minute=1)],
    )
    assert isinstance(outcomes[0], Submission)
    assert isinstance(outcomes[1], Submission | RateLimited)


def test_an_idempotency_key_may_have_255_visible_characters(any_db: Database) -> None:
    """The API's rule (1-255) is what the store column holds, on both databases (widened by migration 0005)."""
    assert IDEMPOTENCY_KEY_MAX_LENGTH == 255
    owner, key = new_owner(any_db), "~" * 255
    first = submit_campaign(any_db, SETTINGS, owner, HERE, idempotency_key=key)
    again = submit_campaign(any_db, SETTINGS, owner, HERE, idempotency_key=key)
    assert first.created and not again.created and again.job.id == first.job.id
