"""write_submissions: a group of submissions, one transaction, an outcome per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from prospectpro.config import Settings
from prospectpro.domain.campaign import CampaignRequest, JobStatus
from prospectpro.errors import Conflict, InvalidInput, RateLimited, UserError
from prospectpro.jobs.queue import get_job
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.services import submissions
from prospectpro.services.submissions import Submission, SubmitRequest, submit_campaign, write_submissions
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
        except BaseException as exc:  # noqa: BLE001 - the caller asserts on it
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
    real_write_alone = submissions._write_alone

    def counting_write_alone(*args: Any, **kwargs: Any) -> Any:
        nonlocal fallbacks
        fallbacks += 1
        return real_write_alone(*args, **kwargs)

    monkeypatch.setattr(submissions, "_write_alone", counting_write_alone)
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
