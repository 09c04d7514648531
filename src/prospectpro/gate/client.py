"""The gate's transport layer: one ``ProviderHttp`` per provider, shared by every job of the process.

Each request goes through, in order: the circuit breaker (open: raise at
once, no request), the installation-wide limit when the provider has one
(counted in the store, across processes), this process's rate limit, the
concurrency cap, then one attempt with its timeouts and size cap, read
while streaming. The provider's ``classify`` reads the answer: ok, retry
(after ``Retry-After`` or a backoff with full jitter) or fail. Every error
message is built here, never copied from httpx (whose text carries the URL,
and keys travel in query strings), and is redacted all the same.
"""

from __future__ import annotations

import contextvars
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from prospectpro import __version__
from prospectpro.domain.clock import utcnow
from prospectpro.domain.rate import Rate
from prospectpro.gate import metrics
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.redact import Redactor, guard_http_logs
from prospectpro.gate.types import ProviderSpec, Verdict
from prospectpro.store import ledger
from prospectpro.store.db import Database

log = logging.getLogger("prospectpro.gate")

# The ledgered operation a request belongs to (set by Gate.call around its fn), for logs and metrics.
current_operation: contextvars.ContextVar[str] = contextvars.ContextVar("prospectpro_gate_operation", default="-")

# Kinds that say the provider (not this request) is failing: they count towards opening the breaker.
_BREAKER_KINDS = frozenset(
    {ProviderErrorKind.unavailable, ProviderErrorKind.timeout, ProviderErrorKind.rate_limited, ProviderErrorKind.malformed}
)
# Kinds that open it at once: calling again cannot help until someone acts (a key, billing, credits).
_OPEN_AT_ONCE = frozenset({ProviderErrorKind.auth, ProviderErrorKind.quota_exhausted})
_NOT_FORWARDED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def user_agent(user_agent_setting: str, contact_email: str) -> str:
    """The identifying User-Agent of every outbound request (never httpx's default)."""
    if user_agent_setting:
        return user_agent_setting
    contact = f" (+{contact_email})" if contact_email else ""
    return f"ProspectPro/{__version__}{contact}"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None, rand: Callable[[], float]) -> float:
    """Seconds before attempt ``attempt + 1``: the provider's Retry-After (capped), else full jitter."""
    if retry_after is not None:
        return min(cap, retry_after)
    return rand() * min(cap, base * 2.0 ** (attempt - 1))


class RateLimiter:
    """This process's limit: requests are spaced 1/rate apart; callers wait their turn (thread-safe)."""

    def __init__(self, per_second: float, monotonic: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._sleep = sleep

    def wait(self) -> None:
        with self._lock:
            now = self._monotonic()
            at = max(now, self._next)
            self._next = at + self._interval
        if at > now:
            self._sleep(at - now)


@dataclass
class Breaker:
    """Consecutive failures of one provider; open until a time (wall clock: it is shown and shared)."""

    failures: int = 0
    open_until: datetime | None = None
    reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class ProviderHttp:
    """One provider's HTTP client (``providers.protocols.ProviderClient``)."""

    def __init__(
        self,
        spec: ProviderSpec,
        *,
        db: Database | None,
        agent: str,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.redactor = Redactor(spec.secrets)
        guard_http_logs(self.redactor)
        self._db = db
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rand = rand
        self._client = httpx.Client(
            base_url=spec.base_url,
            timeout=httpx.Timeout(spec.read_timeout, connect=spec.connect_timeout),
            headers={"User-Agent": agent, **spec.headers},
            params=dict(spec.params),
            limits=httpx.Limits(max_connections=max(spec.concurrency, 1), max_keepalive_connections=spec.concurrency),
            follow_redirects=False,
            transport=transport,
        )
        self._limiter = RateLimiter(spec.rate_per_second, monotonic, sleep) if spec.rate_per_second else None
        self._shared = (
            Rate(spec.shared_per_minute, burst=max(1, spec.shared_burst)) if spec.shared_per_minute else None
        )
        self._slots = threading.BoundedSemaphore(max(spec.concurrency, 1))
        self.breaker = Breaker()

    def close(self) -> None:
        self._client.close()

    # -- the one public call ------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        spec = self.spec
        operation = current_operation.get()
        attempt = 0
        while True:
            attempt += 1
            self.check_breaker()
            response: httpx.Response | None = None
            try:
                response = self._attempt(method, path, params, json, headers, operation, attempt)
            except ProviderError as exc:
                verdict = Verdict(retry=exc.kind in _TRANSPORT_RETRIED, kind=exc.kind, message=exc.message)
            else:
                verdict = spec.classify(response)
                if verdict.ok:
                    self._succeeded()
                    return response
            kind = verdict.kind or ProviderErrorKind.unavailable
            retry_after = verdict.retry_after
            if retry_after is None and response is not None:
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            message = self.redactor.text(verdict.message or kind.value)
            metrics.ERRORS.labels(spec.name, operation, kind.value).inc()
            if verdict.retry and attempt < spec.max_attempts:
                delay = backoff_delay(attempt, spec.backoff_base, spec.backoff_max, retry_after, self._rand)
                log.info(
                    "%s %s: %s; retrying in %.2f s",
                    spec.name,
                    operation,
                    message,
                    delay,
                    extra={"provider": spec.name, "operation": operation, "status": kind.value, "attempt": attempt},
                )
                self._sleep(delay)
                continue
            error = ProviderError(spec.name, kind, message, retry_after=retry_after)
            self._failed(error)
            log.warning(
                "%s %s failed after %d attempt(s): %s",
                spec.name,
                operation,
                attempt,
                error.reason,
                extra={"provider": spec.name, "operation": operation, "status": kind.value, "attempt": attempt},
            )
            raise error

    # -- one attempt --------------------------------------------------------------
    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        operation: str,
        attempt: int,
    ) -> httpx.Response:
        spec = self.spec
        self._wait_shared()
        if self._limiter is not None:
            self._limiter.wait()
        where = f"{method} {self.redactor.text(path)}"
        with self._slots:
            started = self._monotonic()
            deadline = started + spec.total_timeout
            status = "error"
            try:
                request = self._client.build_request(method, path, params=params, json=json, headers=headers)
                try:
                    response = self._client.send(request, stream=True)
                except httpx.TimeoutException:
                    raise self._error(ProviderErrorKind.timeout, f"{where}: no answer in time") from None
                except httpx.TransportError as exc:
                    raise self._error(
                        ProviderErrorKind.unavailable, f"{where}: connection failed ({type(exc).__name__})"
                    ) from None
                try:
                    body = self._read(response, deadline, where)
                finally:
                    response.close()
                status = str(response.status_code)
                kept = {k: v for k, v in response.headers.items() if k.lower() not in _NOT_FORWARDED}
                return httpx.Response(response.status_code, headers=kept, content=body, request=request)
            finally:
                latency = self._monotonic() - started
                metrics.LATENCY.labels(spec.name, operation).observe(latency)
                metrics.CALLS.labels(spec.name, operation, status).inc()
                log.debug(
                    "%s %s attempt %d: %s in %.1f ms",
                    spec.name,
                    operation,
                    attempt,
                    status,
                    latency * 1000,
                    extra={
                        "provider": spec.name,
                        "operation": operation,
                        "status": status,
                        "attempt": attempt,
                        "latency": latency,
                    },
                )

    def _read(self, response: httpx.Response, deadline: float, where: str) -> bytes:
        """The body, within the size cap and the attempt's total time (checked as each chunk arrives)."""
        cap = self.spec.max_response_bytes
        announced = response.headers.get("content-length")
        if announced and announced.isdigit() and int(announced) > cap:
            raise self._error(ProviderErrorKind.too_large, f"{where}: answer of {announced} bytes is over {cap}")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > cap:
                    raise self._error(ProviderErrorKind.too_large, f"{where}: answer over {cap} bytes")
                if self._monotonic() > deadline:
                    raise self._error(
                        ProviderErrorKind.timeout, f"{where}: answer took over {self.spec.total_timeout:g} s"
                    )
                chunks.append(chunk)
        except httpx.TimeoutException:
            raise self._error(ProviderErrorKind.timeout, f"{where}: answer stopped arriving") from None
        except httpx.TransportError as exc:  # the connection ended before the announced length: truncated
            raise self._error(
                ProviderErrorKind.malformed, f"{where}: answer cut short ({type(exc).__name__})"
            ) from None
        if self._monotonic() > deadline:
            raise self._error(ProviderErrorKind.timeout, f"{where}: answer took over {self.spec.total_timeout:g} s")
        return b"".join(chunks)

    def _error(self, kind: ProviderErrorKind, message: str) -> ProviderError:
        return ProviderError(self.spec.name, kind, self.redactor.text(message))

    # -- limits shared through the store --------------------------------------------
    def _wait_shared(self) -> None:
        if self._shared is None or self._db is None:
            return
        from prospectpro.services.rate_limits import admit_call

        while True:
            with self._db.write() as conn:
                wait = admit_call(conn, f"provider:{self.spec.name}", self._shared, self._clock())
            if not wait:
                return
            self._sleep(wait)

    # -- the circuit breaker ----------------------------------------------------------
    def check_breaker(self) -> None:
        """Raise ProviderError(breaker_open) while the breaker is open (Gate.call asks before it reserves)."""
        breaker = self.breaker
        with breaker.lock:
            open_until = breaker.open_until
            reason = breaker.reason
        if open_until is not None and self._clock() < open_until:
            raise ProviderError(
                self.spec.name,
                ProviderErrorKind.breaker_open,
                f"not called until {open_until.isoformat(timespec='seconds')} ({reason})",
            )

    def _succeeded(self) -> None:
        breaker = self.breaker
        with breaker.lock:
            was_open = breaker.open_until is not None
            breaker.failures = 0
            breaker.open_until = None
            breaker.reason = ""
        if was_open:
            self._save_state(None, None, 0)

    def _failed(self, error: ProviderError) -> None:
        if error.kind not in _BREAKER_KINDS and error.kind not in _OPEN_AT_ONCE:
            return
        breaker = self.breaker
        with breaker.lock:
            breaker.failures += 1
            opens = error.kind in _OPEN_AT_ONCE or breaker.failures >= self.spec.breaker_failures
            if not opens:
                return
            seconds = self.spec.breaker_seconds
            if error.kind == ProviderErrorKind.quota_exhausted and self.spec.quota_seconds is not None:
                seconds = self.spec.quota_seconds
            breaker.open_until = self._clock() + timedelta(seconds=seconds)
            breaker.reason = error.reason
            open_until, failures = breaker.open_until, breaker.failures
        log.warning(
            "%s: circuit breaker open until %s (%s)",
            self.spec.name,
            open_until.isoformat(timespec="seconds"),
            error.reason,
            extra={"provider": self.spec.name, "status": "breaker_open"},
        )
        self._save_state(open_until, error.reason, failures)

    def _save_state(self, open_until: datetime | None, reason: str | None, failures: int) -> None:
        if self._db is None:
            return
        try:
            with self._db.write() as conn:
                ledger.save_provider_state(
                    conn, self.spec.name, open_until=open_until, reason=reason, failures=failures, now=self._clock()
                )
        except Exception:  # the breaker works in this process either way; the store only shows it
            log.exception("%s: could not record the breaker's state", self.spec.name)


# Failures of the transport itself that another attempt may not repeat.
_TRANSPORT_RETRIED = frozenset({ProviderErrorKind.timeout, ProviderErrorKind.unavailable, ProviderErrorKind.malformed})


@contextmanager
def operation(name: str) -> Iterator[None]:
    """Label the requests made inside with the ledgered operation (logs, metrics)."""
    token = current_operation.set(name)
    try:
        yield
    finally:
        current_operation.reset(token)
