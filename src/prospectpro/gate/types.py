"""The gate's small vocabulary, shared by the gate and every provider module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from prospectpro.gate.errors import ProviderErrorKind


@dataclass(frozen=True, slots=True)
class GateRequest:
    """One ledgered call, as the ledger sees it.

    ``key`` is the normalised request — what makes two calls the same call
    (query text, page token, domain, address…) — and never holds a secret:
    it is hashed into the row's ``request_hash`` and stored as ``request``.
    ``max_cost`` is reserved before the call; ``cost_of(answer_body)`` (when
    given) is the real cost settled after it (Hunter: per 10 addresses
    returned), else the reservation is the cost.
    """

    provider: str
    operation: str
    key: Mapping[str, Any]
    max_cost: Decimal = Decimal("0")
    cost_of: Callable[[Any], Decimal] | None = None
    # How long this answer may serve the same owner's later campaigns, in days
    # (None: settings.answer_cache_days; 0: never reused across campaigns).
    reuse_days: float | None = None
    # Within a job a recorded answer is always returned instead of calling again.


@dataclass(frozen=True, slots=True)
class Answer:
    """What ``Gate.call`` returns: the answer body (JSON-able) and what it cost this job."""

    body: Any
    cost: Decimal  # 0 when reused
    reused: bool  # from another campaign's recorded answer (this job's own recorded answers: False)
    call_id: int | None = None  # the api_calls row


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a provider reads one HTTP answer: ok, retry (maybe after a wait), or fail."""

    ok: bool = False
    retry: bool = False
    retry_after: float | None = None  # seconds, from Retry-After or the body
    kind: ProviderErrorKind | None = None  # when not ok
    message: str = ""

    @staticmethod
    def success() -> Verdict:
        return Verdict(ok=True)


def default_classify(response: httpx.Response) -> Verdict:
    """2xx ok; 429 and 5xx retried; 401/403 auth; other 4xx bad request."""
    code = response.status_code
    if 200 <= code < 300:
        return Verdict.success()
    if code == 429:
        return Verdict(retry=True, kind=ProviderErrorKind.rate_limited, message="HTTP 429")
    if code >= 500:
        return Verdict(retry=True, kind=ProviderErrorKind.unavailable, message=f"HTTP {code}")
    if code in (401, 403):
        return Verdict(kind=ProviderErrorKind.auth, message=f"HTTP {code}")
    return Verdict(kind=ProviderErrorKind.bad_request, message=f"HTTP {code}")


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider as the transport layer runs it; one per provider, built from settings."""

    name: str
    base_url: str
    secrets: tuple[str, ...] = ()  # redacted from everything stored or logged
    headers: Mapping[str, str] = field(default_factory=dict)  # sent on every call (key headers too)
    params: Mapping[str, str] = field(default_factory=dict)  # sent on every call (key params too)
    rate_per_second: float | None = None  # per process, all jobs together
    # Installation-wide, counted in the store (rate_limits) across processes: requests per minute.
    shared_per_minute: int | None = None
    shared_burst: int = 1  # of the shared limit: Nominatim's "1 request/s" allows no burst
    concurrency: int = 8  # calls in flight at once, per process
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 30.0  # one attempt, start to last byte
    max_response_bytes: int = 5 * 1024 * 1024
    max_attempts: int = 4
    backoff_base: float = 0.5  # seconds; doubled per attempt, with full jitter
    backoff_max: float = 30.0
    breaker_failures: int = 5  # consecutive failures that open the breaker (an auth failure opens it at once)
    breaker_seconds: float = 60.0
    # How long "credits used up" (quota_exhausted) keeps it open instead, when the provider's reset is known.
    quota_seconds: float | None = None
    classify: Callable[[httpx.Response], Verdict] = default_classify
    paid: bool = False
