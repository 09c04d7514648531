"""The gate's ledger: every SQL statement on ``api_calls`` and ``provider_state``.

One ``api_calls`` row per job and external request (unique on
``idempotency_key`` = sha256 of the job id and the request hash), with its
status: ``reserved`` (the cost is held against the budgets while the call
runs), ``ok`` (settled, with the real cost and the redacted answer),
``error`` (cost 0), ``reused`` (another campaign's answer of the same owner,
cost 0, ``saved_cost`` what it cost then) or ``over_budget`` (not made).

Spend counts ``reserved`` and ``ok`` rows: a reservation is money that may
be spent, so however many calls run at once, reservations never add up past
a budget. They are taken under a per-owner lock — PostgreSQL: a
transaction-scoped advisory lock on the owner; SQLite: the write lock that
every write transaction holds already — so the check and the insert are one
step for every job of the owner, in every process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, func, insert, select, text, update

from prospectpro.domain.status import JobStatus
from prospectpro.store.schema import api_calls, discovery_jobs, provider_state, users
from prospectpro.store.upsert import upsert_statement

RESERVED, OK, ERROR, REUSED, OVER_BUDGET = "reserved", "ok", "error", "reused", "over_budget"
SPENDING = (RESERVED, OK)  # the statuses whose cost counts against a budget
ZERO = Decimal("0")


def request_hash(provider: str, operation: str, key: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of (provider, operation, key): what makes two calls the same call."""
    canonical = json.dumps([provider, operation, key], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key(job_id: str, req_hash: str) -> str:
    """One row per job and request."""
    return hashlib.sha256(f"{job_id}\n{req_hash}".encode()).hexdigest()


def _advisory_key(owner_id: str) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock, stable across processes (Python's hash() is not)."""
    return int.from_bytes(hashlib.sha256(f"ledger:{owner_id}".encode()).digest()[:8], "big", signed=True)


def _money(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value))


# Built once: every paid call runs these, and building a statement costs more than running it on SQLite.
_OWN_CALL = select(api_calls).where(api_calls.c.idempotency_key == bindparam("key"))
_REUSABLE_CALL = (
    select(api_calls)
    .where(
        api_calls.c.owner_id == bindparam("owner_id"),
        api_calls.c.provider == bindparam("provider"),
        api_calls.c.operation == bindparam("operation"),
        api_calls.c.request_hash == bindparam("request_hash"),
        api_calls.c.status == OK,
        api_calls.c.reusable_until > bindparam("now"),
    )
    .order_by(api_calls.c.completed_at.desc())
    .limit(1)
)
_JOB_SPENT = select(func.coalesce(func.sum(api_calls.c.cost), 0)).where(
    api_calls.c.job_id == bindparam("job_id"), api_calls.c.status.in_(SPENDING)
)
_OWNER_SPENT = select(func.coalesce(func.sum(api_calls.c.cost), 0)).where(
    api_calls.c.owner_id == bindparam("owner_id"),
    api_calls.c.status.in_(SPENDING),
    api_calls.c.created_at >= bindparam("since"),
)
_MONTHLY_BUDGET = select(users.c.monthly_budget).where(users.c.id == bindparam("owner_id"))
_INSERT_CALL = insert(api_calls).returning(api_calls.c.id)
_UPDATE_CALL = update(api_calls).where(api_calls.c.id == bindparam("call_id"))
_SETTLE_OK = _UPDATE_CALL.values(
    status=OK,
    cost=bindparam("cost"),
    response=bindparam("response"),
    error=None,
    completed_at=bindparam("now"),
    reusable_until=bindparam("reusable_until"),
)
_SETTLE_ERROR = _UPDATE_CALL.values(status=ERROR, cost=ZERO, error=bindparam("error"), completed_at=bindparam("now"))
_RETAKE = _UPDATE_CALL.values(
    status=bindparam("status"), cost=bindparam("cost"), error=None, completed_at=None, created_at=bindparam("now")
)


# -- reads ---------------------------------------------------------------------------


def own_call(conn: Connection, key: str) -> Row[Any] | None:
    """This job's row for this request, if any."""
    return conn.execute(_OWN_CALL, {"key": key}).first()


def reusable_call(
    conn: Connection, owner_id: str, provider: str, operation: str, req_hash: str, now: datetime
) -> Row[Any] | None:
    """The owner's latest settled answer to the same request that may still be reused."""
    return conn.execute(
        _REUSABLE_CALL,
        {"owner_id": owner_id, "provider": provider, "operation": operation, "request_hash": req_hash, "now": now},
    ).first()


def job_spent(conn: Connection, job_id: str) -> Decimal:
    """What the job has spent or holds reserved."""
    return _money(conn.execute(_JOB_SPENT, {"job_id": job_id}).scalar_one())


def job_budget_exhausted(conn: Connection, job_id: str) -> bool:
    """Whether a paid call of the job was not made for a budget (an over_budget row exists)."""
    return (
        conn.execute(
            select(api_calls.c.id).where(api_calls.c.job_id == job_id, api_calls.c.status == OVER_BUDGET).limit(1)
        ).first()
        is not None
    )


def month_start(now: datetime) -> datetime:
    """The start of ``now``'s calendar month, UTC."""
    now = now.astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def owner_month_spent(conn: Connection, owner_id: str, now: datetime) -> Decimal:
    """What the owner has spent or holds reserved in ``now``'s calendar month (UTC), over all jobs."""
    return _money(conn.execute(_OWNER_SPENT, {"owner_id": owner_id, "since": month_start(now)}).scalar_one())


def owner_monthly_budget(conn: Connection, owner_id: str) -> Decimal | None:
    value = conn.execute(_MONTHLY_BUDGET, {"owner_id": owner_id}).scalar_one_or_none()
    return None if value is None else _money(value)


def job_provider_stats(conn: Connection, job_id: str) -> dict[str, dict[str, Any]]:
    """{provider: {calls, reused, errors, cost, saved_cost}} of a job.

    ``calls``: requests made (ok, failed, in flight); ``reused``: answers taken from the owner's earlier
    campaigns instead; refused (over budget) requests are neither.
    """
    rows = conn.execute(
        select(
            api_calls.c.provider,
            func.sum(case((api_calls.c.status.in_((OK, ERROR, RESERVED)), 1), else_=0)).label("calls"),
            func.sum(case((api_calls.c.status == REUSED, 1), else_=0)).label("reused"),
            func.sum(case((api_calls.c.status == ERROR, 1), else_=0)).label("errors"),
            func.coalesce(func.sum(case((api_calls.c.status.in_(SPENDING), api_calls.c.cost), else_=0)), 0).label(
                "cost"
            ),
            func.coalesce(func.sum(api_calls.c.saved_cost), 0).label("saved_cost"),
        )
        .where(api_calls.c.job_id == job_id)
        .group_by(api_calls.c.provider)
        .order_by(api_calls.c.provider)
    ).all()
    return {
        r.provider: {
            "calls": int(r.calls or 0),
            "reused": int(r.reused or 0),
            "errors": int(r.errors or 0),
            "cost": _money(r.cost),
            "saved_cost": _money(r.saved_cost),
        }
        for r in rows
    }


# -- writes (in the caller's write transaction) ---------------------------------------


def lock_owner(conn: Connection, owner_id: str) -> None:
    """Serialise reservations of one owner until the transaction ends (SQLite: the write lock already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _advisory_key(owner_id)})


def holds_lease(conn: Connection, job_id: str, token: int) -> bool:
    """Whether the job is still processing under this fencing token; on PostgreSQL the row stays share-locked,
    so a takeover (which bumps the token) waits until this transaction ends."""
    query = select(discovery_jobs.c.status, discovery_jobs.c.lease_token).where(discovery_jobs.c.id == job_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(read=True)
    row = conn.execute(query).first()
    return row is not None and row.status == JobStatus.processing.value and row.lease_token == token


@dataclass(frozen=True, slots=True)
class NewCall:
    """The identity of one ledgered request of a job."""

    idempotency_key: str
    request_hash: str
    provider: str
    operation: str
    request: Any  # the redacted key
    owner_id: str
    job_id: str
    campaign_id: str | None


def insert_call(conn: Connection, call: NewCall, status: str, now: datetime, **values: Any) -> int:
    row = {
        "idempotency_key": call.idempotency_key,
        "request_hash": call.request_hash,
        "provider": call.provider,
        "operation": call.operation,
        "request": call.request,
        "owner_id": call.owner_id,
        "job_id": call.job_id,
        "campaign_id": call.campaign_id,
        "status": status,
        "cost": ZERO,
        "saved_cost": ZERO,
        "created_at": now,
        **values,
    }
    return int(conn.execute(_INSERT_CALL, row).scalar_one())


def retake_call(conn: Connection, call_id: int, status: str, cost: Decimal, now: datetime) -> None:
    """A failed or refused attempt's row, reserved (or refused) again by the attempt that takes it over."""
    conn.execute(_RETAKE, {"call_id": call_id, "status": status, "cost": cost, "now": now})


def settle_ok(
    conn: Connection, call_id: int, cost: Decimal, response: Any, now: datetime, reusable_until: datetime
) -> None:
    conn.execute(
        _SETTLE_OK,
        {"call_id": call_id, "cost": cost, "response": response, "now": now, "reusable_until": reusable_until},
    )


def settle_error(conn: Connection, call_id: int, error: str, now: datetime) -> None:
    conn.execute(_SETTLE_ERROR, {"call_id": call_id, "error": error, "now": now})


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a reservation attempt decided: the row, and whether the call may be made."""

    call_id: int
    status: str  # reserved: make the call; ok / reused: the job's recorded answer; over_budget: refused
    limit: str | None = None  # over_budget: which one
    row: Row[Any] | None = None  # ok / reused: the recorded row


def reserve(
    conn: Connection,
    call: NewCall,
    max_cost: Decimal,
    budget_limit: Decimal,
    now: datetime,
    *,
    existing: Row[Any] | None,
) -> Reservation:
    """Reserve ``max_cost`` for this job's request, or record that the budgets refuse it.

    The caller holds the owner's lock (``lock_owner``) when ``max_cost`` > 0
    and has just read ``existing`` (this job's row) inside this transaction.
    A ``reserved`` row is a crashed or running attempt's: taken over as is,
    its reservation still counting. An ``error`` or ``over_budget`` row is
    reserved again, under the same checks as a new one.
    """
    if existing is not None and existing.status in (OK, REUSED):
        return Reservation(existing.id, existing.status, row=existing)
    if existing is not None and existing.status == RESERVED:
        return Reservation(existing.id, RESERVED)
    limit = None
    if max_cost > 0:
        if job_spent(conn, call.job_id) + max_cost > budget_limit:
            limit = "campaign budget"
        else:
            monthly = owner_monthly_budget(conn, call.owner_id)
            if monthly is not None and owner_month_spent(conn, call.owner_id, now) + max_cost > monthly:
                limit = "monthly budget"
    status, cost = (OVER_BUDGET, ZERO) if limit else (RESERVED, max_cost)
    if existing is not None:
        retake_call(conn, existing.id, status, cost, now)
        return Reservation(existing.id, status, limit)
    return Reservation(insert_call(conn, call, status, now, cost=cost), status, limit)


def record_reuse(conn: Connection, call: NewCall, original: Row[Any], now: datetime) -> int:
    """This job's row for an answer another campaign of the owner paid for: cost 0, the original cost saved."""
    return insert_call(
        conn,
        call,
        REUSED,
        now,
        saved_cost=_money(original.cost),
        response=original.response,
        reused_from=original.id,
        completed_at=now,
    )


# -- provider_state: the circuit breakers, readable by every process ---------------------


@dataclass(frozen=True, slots=True)
class ProviderState:
    provider: str
    breaker_open_until: datetime | None
    reason: str | None
    failures: int
    updated_at: datetime

    def open_at(self, now: datetime) -> bool:
        return self.breaker_open_until is not None and self.breaker_open_until > now


def save_provider_state(
    conn: Connection, provider: str, *, open_until: datetime | None, reason: str | None, failures: int, now: datetime
) -> None:
    columns = ("breaker_open_until", "reason", "failures", "updated_at")
    conn.execute(
        upsert_statement(conn.dialect.name, provider_state, ("provider",), columns),
        {"provider": provider, "breaker_open_until": open_until, "reason": reason, "failures": failures,
         "updated_at": now},
    )


def provider_states(conn: Connection) -> dict[str, ProviderState]:
    return {
        r.provider: ProviderState(r.provider, r.breaker_open_until, r.reason, int(r.failures), r.updated_at)
        for r in conn.execute(select(provider_state).order_by(provider_state.c.provider))
    }



def clear_expired_answers(conn: Connection, provider: str, now: datetime) -> int:
    """Drop the stored answer bodies of ``provider``'s calls whose reuse time has passed.

    For Google the reuse time is at most its content days (``GateRequest.reuse_days``),
    so the ledger keeps no Google answer longer than its terms allow; the row
    itself (what was asked, when, at what cost) stays for the budget and the books.
    """
    expired = select(api_calls.c.id).where(
        api_calls.c.provider == provider, api_calls.c.reusable_until.is_not(None), api_calls.c.reusable_until <= now
    )
    result = conn.execute(
        update(api_calls)
        .where(
            api_calls.c.provider == provider,
            api_calls.c.response.is_not(None),
            # A reused row holds a copy of its original's answer: it goes with the original.
            (api_calls.c.id.in_(expired.scalar_subquery()) | api_calls.c.reused_from.in_(expired.scalar_subquery())),
        )
        .values(response=None)
    )
    return int(result.rowcount or 0)
