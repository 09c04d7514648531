"""Webhooks: POST the final job to its notify_url, signed, retried with backoff.

The delivery row is written with the job's terminal change, so a crash
between finishing and notifying loses nothing; a worker delivers it later.
Receivers verify ``X-ProspectPro-Signature: sha256=HMAC(secret, "<timestamp>.<body>")``
with the secret returned at submit time, and reject stale timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from prospectpro.errors import InvalidInput
from prospectpro.jobs.model import Job, utcnow
from prospectpro.jobs.queue import get_job, retry_delay
from prospectpro.net import resolve_public
from prospectpro.store.db import Database
from prospectpro.store.schema import notifications

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-ProspectPro-Signature"
TIMESTAMP_HEADER = "X-ProspectPro-Timestamp"
CLAIM_SECONDS = 60  # a delivery in flight is not picked up by another worker for this long


@dataclass(frozen=True)
class NotifyConfig:
    allow_private: bool = False
    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    timeout_seconds: float = 10.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def payload(job: Job) -> bytes:
    return json.dumps({"event": f"job.{job.status.value}", "job": job.to_public()}, ensure_ascii=False).encode()


def _claim_due(db: Database, limit: int) -> list[tuple[int, str, str, str, int]]:
    now = utcnow()
    claimed = []
    with db.write() as conn:
        rows = conn.execute(
            select(notifications)
            .where(notifications.c.status == "pending", notifications.c.next_attempt_at <= now)
            .order_by(notifications.c.next_attempt_at)
            .limit(limit)
        ).all()
        for row in rows:
            done = conn.execute(
                update(notifications)
                .where(notifications.c.id == row.id, notifications.c.next_attempt_at == row.next_attempt_at)
                .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
            )
            if done.rowcount == 1:
                claimed.append((row.id, row.job_id, row.url, row.secret, row.attempts))
    return claimed


def _send(url: str, secret: str, body: bytes, config: NotifyConfig) -> str | None:
    """POST once; None on success, else what went wrong."""
    try:
        resolve_public(url, allow_private=config.allow_private)
    except InvalidInput as exc:
        return exc.message
    timestamp = str(int(utcnow().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ProspectPro-Webhook/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=config.timeout_seconds, follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def deliver_due(db: Database, config: NotifyConfig, limit: int = 20) -> int:
    """Deliver what is due; returns how many were attempted."""
    claimed = _claim_due(db, limit)
    for note_id, job_id, url, secret, attempts in claimed:
        error = _send(url, secret, payload(get_job(db, job_id)), config)
        attempt = attempts + 1
        values: dict[str, object] = {"attempts": attempt, "last_error": error}
        if error is None:
            values.update(status="delivered", delivered_at=utcnow())
        elif attempt >= config.max_attempts:
            values.update(status="failed")
            log.warning("webhook for job %s failed for good: %s", job_id, error)
        else:
            delay = retry_delay(attempt, config.retry_base_seconds, config.retry_max_seconds)
            values.update(next_attempt_at=utcnow() + timedelta(seconds=delay))
        with db.write() as conn:
            conn.execute(update(notifications).where(notifications.c.id == note_id).values(**values))
    return len(claimed)
