"""A token bucket: how many submissions an owner may make, and when to retry.

Pure arithmetic; the store keeps one bucket per owner (``rate_limits``) and
updates it in the submitting transaction, so the limit holds across API
processes and costs the same however many jobs the owner already has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

_EPSILON = 1e-9


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated_at: datetime


@dataclass(frozen=True)
class Rate:
    """``per_minute`` requests a minute on average, and at most ``burst`` (default: that many) in a burst."""

    per_minute: int
    burst: int | None = None  # the bucket's capacity; Nominatim's 1 request/s is (60, burst=1)

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0

    @property
    def capacity(self) -> float:
        return float(self.per_minute if self.burst is None else self.burst)

    def full(self, now: datetime) -> Bucket:
        return Bucket(tokens=self.capacity, updated_at=now)

    def refill(self, bucket: Bucket, now: datetime) -> Bucket:
        elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
        return Bucket(tokens=min(self.capacity, bucket.tokens + elapsed * self.per_second), updated_at=now)

    def take_or_wait(self, bucket: Bucket, now: datetime) -> tuple[Bucket, float]:
        """Like ``take``, with the exact (fractional) seconds to wait: for callers that wait, not refuse."""
        bucket = self.refill(bucket, now)
        if bucket.tokens >= 1.0 - _EPSILON:
            return Bucket(tokens=max(0.0, bucket.tokens - 1.0), updated_at=now), 0.0
        return bucket, (1.0 - bucket.tokens) / self.per_second

    def take(self, bucket: Bucket, now: datetime) -> tuple[Bucket, int]:
        """Spend one token: the new bucket and 0, or the bucket unchanged and the whole seconds to wait."""
        bucket = self.refill(bucket, now)
        # Within _EPSILON of a whole token counts as one: float arithmetic must
        # neither refuse a client who waited exactly the time it was told, nor
        # tell it one second too many.
        if bucket.tokens >= 1.0 - _EPSILON:
            return Bucket(tokens=max(0.0, bucket.tokens - 1.0), updated_at=now), 0
        return bucket, max(1, math.ceil((1.0 - bucket.tokens) / self.per_second - _EPSILON))
