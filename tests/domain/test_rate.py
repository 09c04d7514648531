"""The token bucket behind the per-owner submission limit: pure arithmetic, explicit clocks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from prospectpro.domain.rate import Bucket, Rate

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def drain(rate: Rate, now: datetime) -> Bucket:
    """A full bucket emptied at ``now``: exactly per_minute takes succeed."""
    bucket = rate.full(now)
    for n in range(rate.per_minute):
        bucket, wait = rate.take(bucket, now)
        assert wait == 0, f"take {n + 1} of {rate.per_minute} was refused"
    return bucket


@pytest.mark.parametrize("per_minute", [1, 2, 5, 60, 1000])
def test_a_full_bucket_allows_per_minute_takes_then_refuses(per_minute: int) -> None:
    rate = Rate(per_minute)
    bucket = drain(rate, T0)
    assert bucket.tokens == pytest.approx(0.0)
    refused, wait = rate.take(bucket, T0)
    assert wait >= 1
    assert refused.tokens == pytest.approx(0.0)  # a refusal spends nothing
    # Refused again and again at the same instant: nothing leaks through.
    for _ in range(5):
        refused, wait = rate.take(refused, T0)
        assert wait >= 1


def test_refusal_leaves_the_bucket_usable_later() -> None:
    rate = Rate(60)
    bucket = drain(rate, T0)
    for _ in range(3):  # hammering while empty does not push the next token further away
        bucket, wait = rate.take(bucket, at(0.2))
        assert wait == 1
    bucket, wait = rate.take(bucket, at(1.0))
    assert wait == 0


@pytest.mark.parametrize("per_minute", [1, 3, 6, 12, 60])
def test_one_more_token_after_sixty_over_per_minute_seconds(per_minute: int) -> None:
    rate = Rate(per_minute)
    interval = 60 / per_minute
    bucket = drain(rate, T0)
    _, wait = rate.take(bucket, at(interval * 0.9))
    assert wait >= 1, "a token appeared before its time"
    bucket, wait = rate.take(bucket, at(interval))
    assert wait == 0
    # ... and only one: the next is refused until another interval has passed.
    _, wait = rate.take(bucket, at(interval))
    assert wait >= 1
    bucket, wait = rate.take(bucket, at(2 * interval))
    assert wait == 0


@pytest.mark.parametrize(
    ("per_minute", "elapsed", "expected"),
    [
        (60, 0.0, 1),  # a token a second, none left: 1 s
        (60, 0.5, 1),  # half a token: 0.5 s, rounded up
        (60, 0.999, 1),
        (6, 0.0, 10),  # a token every 10 s
        (6, 2.5, 8),  # 7.5 s to go -> 8
        (6, 9.0, 1),
        (1, 0.0, 60),
        (1, 59.5, 1),  # never 0 while refusing
        (4, 1.0, 14),  # 15 s per token, 14 s to go exactly
    ],
)
def test_wait_is_the_ceiling_of_the_time_to_the_next_token(per_minute: int, elapsed: float, expected: int) -> None:
    rate = Rate(per_minute)
    bucket = drain(rate, T0)
    _, wait = rate.take(bucket, at(elapsed))
    assert wait == expected


@pytest.mark.parametrize("per_minute", [1, 2, 7, 10, 13, 60, 90, 120])
def test_retrying_after_the_wait_given_succeeds(per_minute: int) -> None:
    """A client that honours Retry-After is never refused again for lack of a token."""
    rate = Rate(per_minute)
    start = drain(rate, T0)
    for elapsed_ms in range(0, 60_000, 500):
        now = at(elapsed_ms / 1000)
        bucket, wait = rate.take(start, now)
        if wait == 0:
            break
        _, again = rate.take(bucket, now + timedelta(seconds=wait))
        assert again == 0, (per_minute, elapsed_ms, wait)


# Regression test; the bug it caught (since fixed): float rounding made Retry-After one second too long (21 instead of 20).
@pytest.mark.parametrize(("per_minute", "elapsed", "expected"), [(2, 10, 20), (10, 5, 1), (1, 40, 20)])
def test_wait_is_exact_when_the_time_to_the_next_token_is_whole_seconds(
    per_minute: int, elapsed: int, expected: int
) -> None:
    rate = Rate(per_minute)
    assert math.ceil(Fraction(60, per_minute) - elapsed) == expected  # the true answer
    _, wait = rate.take(drain(rate, T0), at(elapsed))
    assert wait == expected


@pytest.mark.parametrize("idle", [timedelta(minutes=5), timedelta(days=3), timedelta(days=3650)])
def test_a_long_idle_never_fills_the_bucket_beyond_its_capacity(idle: timedelta) -> None:
    rate = Rate(5)
    bucket = drain(rate, T0)
    later = T0 + idle
    assert rate.refill(bucket, later).tokens == pytest.approx(5.0)
    taken = 0
    while True:
        bucket, wait = rate.take(bucket, later)
        if wait:
            break
        taken += 1
        assert taken <= 5, "more than a burst of per_minute after a long idle"
    assert taken == 5


def test_a_partially_used_bucket_refills_only_up_to_capacity() -> None:
    rate = Rate(10)
    bucket = Bucket(tokens=8.0, updated_at=T0)
    assert rate.refill(bucket, at(6)).tokens == pytest.approx(9.0)  # one token per 6 s
    assert rate.refill(bucket, at(60)).tokens == pytest.approx(10.0)


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    rate = Rate(60)
    bucket = drain(rate, at(100))
    earlier = at(40)  # the clock stepped back a minute
    assert rate.refill(bucket, earlier).tokens == pytest.approx(0.0)
    refused, wait = rate.take(bucket, earlier)
    assert wait >= 1
    assert refused.tokens == pytest.approx(0.0)
    # Repeated backwards readings cannot be turned into tokens either.
    for seconds in (39, 20, 0):
        refused, wait = rate.take(refused, at(seconds))
        assert wait >= 1 and refused.tokens == pytest.approx(0.0)


def test_a_partial_bucket_is_not_reduced_by_a_backwards_clock() -> None:
    rate = Rate(60)
    bucket = Bucket(tokens=2.5, updated_at=at(100))
    assert rate.refill(bucket, at(50)).tokens == pytest.approx(2.5)
    bucket, wait = rate.take(bucket, at(50))
    assert wait == 0 and bucket.tokens == pytest.approx(1.5)


def test_full_is_per_minute_tokens() -> None:
    assert Rate(7).full(T0) == Bucket(tokens=7.0, updated_at=T0)
    assert Rate(120).per_second == pytest.approx(2.0)
