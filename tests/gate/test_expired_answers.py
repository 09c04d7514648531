"""Google's content terms reach the ledger: an answer past its reuse time is not kept (issue 9)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from prospectpro.domain.clock import utcnow
from prospectpro.store.db import Database
from prospectpro.store.ledger import clear_expired_answers
from prospectpro.store.schema import LOCAL_USER_ID, api_calls


def _row(key: str, provider: str, reusable_until, **extra):  # type: ignore[no-untyped-def]
    now = utcnow()
    return {
        "idempotency_key": key,
        "request_hash": key,
        "provider": provider,
        "operation": "text_search",
        "request": {},
        "owner_id": LOCAL_USER_ID,
        "job_id": "job-" + key,
        "status": "ok",
        "cost": 0,
        "saved_cost": 0,
        "response": {"places": [{"id": "ChIJ1", "displayName": {"text": "Cafe"}}]},
        "created_at": now,
        "reusable_until": reusable_until,
        **extra,
    }


def test_expired_google_answers_and_their_reused_copies_are_dropped(any_db: Database) -> None:
    now = utcnow()
    with any_db.write() as conn:
        old = conn.execute(api_calls.insert().returning(api_calls.c.id), _row("a", "google", now - timedelta(days=1)))
        old_id = old.scalar_one()
        conn.execute(api_calls.insert(), _row("b", "google", None, status="reused", reused_from=old_id))
        conn.execute(api_calls.insert(), _row("c", "google", now + timedelta(days=5)))
        conn.execute(api_calls.insert(), _row("d", "hunter", now - timedelta(days=1)))
        assert clear_expired_answers(conn, "google", now) == 2
    with any_db.read() as conn:
        kept = dict(conn.execute(select(api_calls.c.idempotency_key, api_calls.c.response)).all())
    assert kept["a"] is None and kept["b"] is None  # the original and its copy
    assert kept["c"] is not None  # still within its reuse time
    assert kept["d"] is not None  # another provider: its own rule
