"""Webhooks: POST the final job to its notify_url, signed, retried with backoff.

The delivery row is written with the job's terminal change, so a crash
between finishing and notifying loses nothing; a worker delivers it later.
Receivers verify ``X-ProspectPro-Signature: sha256=HMAC(secret, "<timestamp>.<body>")``
with the secret returned at submit time, and reject stale timestamps.

Each delivery stands alone:

- It is claimed on its own, when it starts, for its time limit plus a margin;
  the time limit bounds the whole request (resolving, connecting, sending,
  the answer), so no other worker takes it over while it is in flight.
- Up to ``concurrency`` deliveries run at once, so a slow receiver delays no
  one else's webhooks.
- Any failure — an unusable URL stored before it was checked, a refused
  address, a timeout, an unexpected exception — is that delivery's alone: its
  attempt count rises and it is retried with backoff or failed for good; the
  others go on. A URL the sender cannot parse fails at once.
- It carries ``X-ProspectPro-Delivery``, an id that is the same on every retry
  (also in the signed body as ``delivery_id``). A receiver that accepted a
  webhook whose answer got lost will see it again: drop repeats by this id.
- It goes through ``prospectpro.net.public_client``: connected only to the
  checked public address, redirects not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Connection, insert, select, update

from prospectpro.domain.clock import utcnow
from prospectpro.errors import InvalidInput
from prospectpro.jobs.model import Job
from prospectpro.jobs.queue import get_job, retry_delay
from prospectpro.net import Policy, Resolver, parse_url, public_client, system_resolver
from prospectpro.store.db import Database
from prospectpro.store.schema import notifications

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-ProspectPro-Signature"
TIMESTAMP_HEADER = "X-ProspectPro-Timestamp"
DELIVERY_HEADER = "X-ProspectPro-Delivery"
_DELIVERY_NAMESPACE = uuid.UUID("5b0c56c4-6f1e-4d3b-9a57-2f3f0e7f6a10")


@dataclass(frozen=True)
class NotifyConfig:
    allow_private: bool = False
    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    timeout_seconds: float = 10.0  # the whole of one delivery, not each step of it
    concurrency: int = 8  # deliveries in flight at once, per worker
    # Added to the timeout for the claim: covers recording the outcome and
    # clock differences between workers' hosts.
    claim_margin_seconds: float = 30.0
    resolver: Resolver = system_resolver  # tests make names resolve where they like

    @property
    def claim_seconds(self) -> float:
        return self.timeout_seconds + self.claim_margin_seconds

    @property
    def policy(self) -> Policy:
        return Policy(allow_private=self.allow_private, resolver=self.resolver)


@dataclass(frozen=True)
class Due:
    """A delivery row as it was read; ``next_attempt_at`` is what a claim compares against."""

    id: int
    job_id: str
    url: str
    secret: str
    attempts: int
    next_attempt_at: datetime


def schedule_notification(conn: Connection, job: Job, now: datetime) -> None:
    """Owe the webhook of ``job`` (its config's ``notify``): written in the transaction that ends the job."""
    notify = job.config["notify"]
    conn.execute(
        insert(notifications).values(
            job_id=job.id,
            url=notify["url"],
            secret=notify["secret"],
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def delivery_id(job: Job) -> str:
    """Stable across retries and workers; derived from what the receiver already knows (no row ids)."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{job.id}/job.{job.status.value}"))


def payload(job: Job) -> bytes:
    document = {"event": f"job.{job.status.value}", "delivery_id": delivery_id(job), "job": job.to_public()}
    return json.dumps(document, ensure_ascii=False).encode()


def _due(db: Database, limit: int, skip: Iterable[int] = ()) -> list[Due]:
    skip = list(skip)
    query = (
        select(notifications)
        .where(notifications.c.status == "pending", notifications.c.next_attempt_at <= utcnow())
        .order_by(notifications.c.next_attempt_at)
        .limit(limit)
    )
    if skip:
        query = query.where(notifications.c.id.not_in(skip))
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [Due(r.id, r.job_id, r.url, r.secret, r.attempts, r.next_attempt_at) for r in rows]


def _claim(db: Database, due: Due, config: NotifyConfig) -> datetime | None:
    """Take one delivery for its time limit plus the margin; None if another worker has it."""
    until = utcnow() + timedelta(seconds=config.claim_seconds)
    with db.write() as conn:
        done = conn.execute(
            update(notifications)
            .where(
                notifications.c.id == due.id,
                notifications.c.status == "pending",
                notifications.c.next_attempt_at == due.next_attempt_at,
            )
            .values(next_attempt_at=until)
        )
    return until if done.rowcount == 1 else None


class DeliveryFailed(Exception):
    """An answer that is not 2xx, or a stored URL the sender cannot use (``final``: retrying cannot help)."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


def _send(db: Database, due: Due, config: NotifyConfig) -> None:
    """POST once; returns on a 2xx, raises anything else."""
    try:
        url = parse_url(due.url, field="notify_url")
    except InvalidInput as exc:
        raise DeliveryFailed(exc.message, final=True) from None
    job = get_job(db, due.job_id)
    body = payload(job)
    timestamp = str(int(utcnow().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ProspectPro-Webhook/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(due.secret, timestamp, body),
        DELIVERY_HEADER: delivery_id(job),
    }
    with public_client(config.policy, timeout=config.timeout_seconds, budget_seconds=config.timeout_seconds) as client:
        response = client.post(url, content=body, headers=headers)
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}")


def _describe(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}"
    return text[:2000]


def _record(db: Database, due: Due, claimed_until: datetime, error: Exception | None, config: NotifyConfig) -> None:
    attempt = due.attempts + 1
    values: dict[str, object] = {"attempts": attempt, "last_error": None if error is None else _describe(error)}
    if error is None:
        values.update(status="delivered", delivered_at=utcnow())
    elif (isinstance(error, DeliveryFailed) and error.final) or attempt >= config.max_attempts:
        values.update(status="failed")
        log.warning("webhook for job %s failed for good: %s", due.job_id, values["last_error"])
    else:
        delay = retry_delay(attempt, config.retry_base_seconds, config.retry_max_seconds)
        values.update(next_attempt_at=utcnow() + timedelta(seconds=delay))
    with db.write() as conn:
        done = conn.execute(
            update(notifications)
            .where(notifications.c.id == due.id, notifications.c.next_attempt_at == claimed_until)
            .values(**values)
        )
    if done.rowcount != 1:  # the claim ran out and another worker took over: its outcome stands
        log.warning("webhook for job %s: the claim ran out before its outcome was recorded", due.job_id)


def deliver(db: Database, due: Due, config: NotifyConfig) -> bool:
    """Claim, send and record one delivery; False when another worker had it."""
    claimed_until = _claim(db, due, config)
    if claimed_until is None:
        return False
    error: Exception | None = None
    try:
        _send(db, due, config)
    except Exception as exc:  # whatever goes wrong here is this delivery's failure alone
        if not isinstance(exc, (DeliveryFailed, httpx.HTTPError)):  # a surprise: keep its traceback
            log.exception("webhook for job %s raised", due.job_id)
        error = exc
    _record(db, due, claimed_until, error, config)
    return True


@dataclass
class Deliveries:
    """A worker's webhook sender: ``poll()`` starts what is due, up to ``concurrency`` at once."""

    db: Database
    config: NotifyConfig
    _pool: ThreadPoolExecutor = field(init=False)
    _busy: set[int] = field(init=False, default_factory=set)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="webhook")

    def poll(self, limit: int | None = None) -> list[Future[bool]]:
        """Start due deliveries (as many as there are idle threads, unless ``limit`` says)."""
        with self._lock:
            busy = set(self._busy)
        room = self.config.concurrency - len(busy) if limit is None else limit
        if room <= 0:
            return []
        started = []
        for due in _due(self.db, room, busy):
            with self._lock:
                self._busy.add(due.id)
            started.append(self._pool.submit(self._run, due))
        return started

    def _run(self, due: Due) -> bool:
        try:
            return deliver(self.db, due, self.config)
        except Exception:  # the claim or the record failed (the database): the claim runs out, then a retry
            log.exception("webhook delivery for job %s could not be claimed or recorded", due.job_id)
            return False
        finally:
            with self._lock:
                self._busy.discard(due.id)

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


def deliver_due(db: Database, config: NotifyConfig, limit: int = 20) -> int:
    """Deliver what is due now, concurrently, and wait; returns how many this call attempted."""
    deliveries = Deliveries(db, config)
    try:
        return sum(future.result() for future in deliveries.poll(limit))
    finally:
        deliveries.close()
