"""The gate's ledger layer: ``Gate.call`` — look up, reserve, call, settle (see ``prospectpro.gate``).

Per call, at most three short transactions, and none while the provider is
being called: a read (this job's row, else a reusable answer of the owner),
a write that reserves (under the owner's lock, after the lease and budget
checks), and a write that settles. A worker that dies between reserve and
settle leaves a ``reserved`` row: the job's next attempt takes it over
(its reservation still counting) instead of reserving again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from prospectpro.config import Settings
from prospectpro.domain.clock import utcnow
from prospectpro.gate import metrics
from prospectpro.gate.client import ProviderHttp, operation, user_agent
from prospectpro.gate.errors import OverBudget, ProviderError, ProviderErrorKind
from prospectpro.gate.redact import Redactor
from prospectpro.gate.types import Answer, GateRequest, ProviderSpec
from prospectpro.jobs.model import LeaseLost
from prospectpro.providers.protocols import CallContext
from prospectpro.store import ledger
from prospectpro.store.db import Database

log = logging.getLogger("prospectpro.gate")

_ERROR_CHARS = 2000  # of a stored error text: enough to say what failed, not a whole echoed body


class _KeyLocks:
    """One lock per idempotency key in use: the same request of one job is made by one thread at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._lock:
            lock, users = self._held.get(key, (threading.Lock(), 0))
            self._held[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._held[key]
                if users == 1:
                    del self._held[key]
                else:
                    self._held[key] = (lock, users - 1)


class Gate:
    """The product's gate (``providers.protocols.Gate``): built once per process (bootstrap.build_gate)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        specs: Iterable[ProviderSpec],
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self.settings = settings
        self._clock = clock
        agent = user_agent(settings.user_agent, settings.contact_email)
        self.specs: dict[str, ProviderSpec] = {spec.name: spec for spec in specs}
        self._clients = {
            name: ProviderHttp(spec, db=db, agent=agent, clock=clock, sleep=sleep, monotonic=monotonic, rand=rand)
            for name, spec in self.specs.items()
        }
        self._redactors = {name: client.redactor for name, client in self._clients.items()}
        self._no_secrets = Redactor(())
        self._keys = _KeyLocks()

    # -- transport -----------------------------------------------------------------
    def http(self, provider: str) -> ProviderHttp:
        client = self._clients.get(provider)
        if client is None:
            raise ProviderError(provider, ProviderErrorKind.auth, "not configured")
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def _redactor(self, provider: str) -> Redactor:
        return self._redactors.get(provider, self._no_secrets)

    # -- the ledger ------------------------------------------------------------------
    def call(self, ctx: CallContext, request: GateRequest, fn: Callable[[], Any]) -> Answer:
        redactor = self._redactor(request.provider)
        req_hash = ledger.request_hash(request.provider, request.operation, request.key)
        call = ledger.NewCall(
            idempotency_key=ledger.idempotency_key(ctx.job_id, req_hash),
            request_hash=req_hash,
            provider=request.provider,
            operation=request.operation,
            request=redactor.json_value(dict(request.key)),
            owner_id=ctx.owner_id,
            job_id=ctx.job_id,
            campaign_id=ctx.campaign_id,
        )
        with self._keys.hold(call.idempotency_key):
            return self._call(ctx, request, fn, call, redactor)

    def _call(
        self, ctx: CallContext, request: GateRequest, fn: Callable[[], Any], call: ledger.NewCall, redactor: Redactor
    ) -> Answer:
        provider, op = request.provider, request.operation
        max_cost = request.max_cost
        if max_cost < 0:
            raise ValueError(f"{provider} {op}: a negative max_cost ({max_cost})")
        now = self._clock()
        with self.db.read() as conn:
            existing = ledger.own_call(conn, call.idempotency_key)
            original = (
                None
                if existing is not None
                else ledger.reusable_call(conn, ctx.owner_id, provider, op, call.request_hash, now)
            )
        if existing is not None and existing.status in (ledger.OK, ledger.REUSED):
            return self._own_answer(existing)
        if original is not None:
            reused = self._reuse(ctx, call, original, now)
            if reused is not None:
                return reused

        client = self._clients.get(provider)
        if client is not None:
            client.check_breaker()  # not a call: nothing reserved, nothing recorded (own answers were served above)

        with self.db.write() as conn:
            if max_cost > 0:
                ledger.lock_owner(conn, ctx.owner_id)
            if ctx.lease_token is not None and not ledger.holds_lease(conn, ctx.job_id, ctx.lease_token):
                raise LeaseLost(f"job {ctx.job_id}: lease {ctx.lease_token} is no longer held; {provider} not called")
            existing = ledger.own_call(conn, call.idempotency_key)  # again, under the lock
            reservation = ledger.reserve(conn, call, max_cost, ctx.budget_limit, now, existing=existing)
        if reservation.row is not None:
            return self._own_answer(reservation.row)
        if reservation.status == ledger.OVER_BUDGET:
            metrics.LEDGER.labels(provider, op, ledger.OVER_BUDGET).inc()
            log.info(
                "%s %s not called: $%s would cross the %s",
                provider,
                op,
                max_cost,
                reservation.limit,
                extra={"provider": provider, "operation": op, "status": ledger.OVER_BUDGET},
            )
            raise OverBudget(provider, op, max_cost, limit=reservation.limit or "campaign budget")

        try:
            with operation(op):
                body = fn()
        except BaseException as exc:
            message = redactor.text(str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}")
            message = message[:_ERROR_CHARS]
            with self.db.write() as conn:
                ledger.settle_error(conn, reservation.call_id, message, self._clock())
            metrics.LEDGER.labels(provider, op, ledger.ERROR).inc()
            raise
        # The provider answered (and charged): from here the row is settled ok whatever else fails.
        cost = self._settled_cost(request, body)
        try:
            stored = redactor.json_value(body)
        except ValueError:  # not JSON-able (a cycle): the cost is recorded, the answer cannot be
            log.exception("%s %s: the answer cannot be stored as JSON", provider, op)
            stored = None
        done = self._clock()
        days = self.settings.answer_cache_days if request.reuse_days is None else request.reuse_days
        with self.db.write() as conn:
            ledger.settle_ok(conn, reservation.call_id, cost, stored, done, done + timedelta(days=days))
        metrics.LEDGER.labels(provider, op, ledger.OK).inc()
        metrics.add_cost(provider, op, cost)
        return Answer(body=body, cost=cost, reused=False, call_id=reservation.call_id)

    def _settled_cost(self, request: GateRequest, body: Any) -> Decimal:
        if request.cost_of is None:
            return request.max_cost
        try:
            cost = Decimal(str(request.cost_of(body)))  # str(): a float cost keeps the digits it shows
        except Exception:  # the call was made: what it may have cost (the reservation) is what is recorded
            log.exception("%s %s: cost_of failed; recorded the reservation", request.provider, request.operation)
            return request.max_cost
        if cost > request.max_cost:
            # The reservation is what the budget allowed: the ledger never records more than it.
            log.warning(
                "%s %s: reported cost $%s is over the reserved $%s; recorded as $%s",
                request.provider,
                request.operation,
                cost,
                request.max_cost,
                request.max_cost,
                extra={"provider": request.provider, "operation": request.operation, "status": "cost_clamped"},
            )
            return request.max_cost
        return max(cost, Decimal("0"))

    def _own_answer(self, row: Row[Any]) -> Answer:
        """This job already has the answer (a retry, or a takeover after a crash): no call, no new row."""
        metrics.LEDGER.labels(row.provider, row.operation, "own").inc()
        return Answer(body=row.response, cost=Decimal(str(row.cost)), reused=False, call_id=row.id)

    def _reuse(self, ctx: CallContext, call: ledger.NewCall, original: Row[Any], now: datetime) -> Answer | None:
        """Record the reuse of the owner's earlier answer; None when this job's own row appeared meanwhile."""
        try:
            with self.db.write() as conn:
                if ctx.lease_token is not None and not ledger.holds_lease(conn, ctx.job_id, ctx.lease_token):
                    raise LeaseLost(f"job {ctx.job_id}: lease {ctx.lease_token} is no longer held")
                call_id = ledger.record_reuse(conn, call, original, now)
        except IntegrityError:
            return None
        metrics.LEDGER.labels(call.provider, call.operation, ledger.REUSED).inc()
        return Answer(body=original.response, cost=Decimal("0"), reused=True, call_id=call_id)

