"""Webhook delivery: each delivery's failure is its own, each webhook is sent once
however many workers deliver, and a slow receiver holds up no one else."""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from prospectpro.domain.clock import utcnow
from prospectpro.jobs.model import Job
from prospectpro.jobs.notify import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Deliveries,
    NotifyConfig,
    deliver_due,
    schedule_notification,
    sign,
)
from prospectpro.services.users import create_user
from prospectpro.store.db import Database
from prospectpro.store.schema import notifications
from tests.support import make_job

SECRET = "ab" * 32


class Receiver:
    """A webhook receiver on 127.0.0.1 that takes ``delay`` seconds and answers from ``statuses``."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses = statuses  # in order; the last one repeats
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((time.monotonic(), dict(self.headers), body))
                    status = receiver.statuses[min(len(receiver.requests), len(receiver.statuses)) - 1]
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int], delay: float = 0.0) -> Receiver:
        made.append(Receiver(statuses, delay))
        return made[-1]

    yield make
    for r in made:
        r.httpd.shutdown()
        r.httpd.server_close()


def owe_webhook(db: Database, owner_id: str, url: str, *, due_in: float = 0.0) -> Job:
    """A finished job's pending webhook, written as the queue writes it (the URL as stored, unchecked)."""
    job = make_job(db, owner_id=owner_id, config={"notify": {"url": url, "secret": SECRET}})
    with db.write() as conn:
        schedule_notification(conn, job, utcnow() + timedelta(seconds=due_in))
    return job


def rows(db: Database) -> dict[str, object]:
    with db.read() as conn:
        return {r.job_id: r for r in conn.execute(select(notifications)).all()}


def tenant(db: Database, name: str) -> str:
    return create_user(db, name)[0].user_id


def test_a_poisoned_url_fails_alone_and_the_innocent_tenant_is_delivered(any_db: Database, receiver) -> None:  # type: ignore[no-untyped-def]
    db = any_db
    mallory, alice = tenant(db, "mallory"), tenant(db, "alice")
    hook = receiver([200])
    port = hook.url.split(":")[2].split("/")[0]
    # Stored before submit checked them; each makes httpx raise InvalidURL, which is no HTTPError.
    poisoned = [
        owe_webhook(db, mallory, url, due_in=-10)
        for url in (
            f"http://１２７.０.０.１:{port}/hook",  # getaddrinfo takes fullwidth digits, httpx does not
            f"http://127.0.0.1:{port}/a\rb",
            f"http://127.0.0.1:{port}/a\nb",
            f"http://127.0.0.1:{port}/a\x7fb",
        )
    ]

    def explode(host: str, port: int) -> list[str]:
        if host == "boom.example":
            raise RuntimeError("resolver bug")
        return ["127.0.0.1"]

    crashing = owe_webhook(db, mallory, f"http://boom.example:{port}/hook", due_in=-10)
    innocent = owe_webhook(db, alice, hook.url)
    # One at a time, poison first: the innocent delivery must not depend on running beside it.
    config = NotifyConfig(allow_private=True, concurrency=1, resolver=explode)

    assert deliver_due(db, config) == 6
    assert len(hook.requests) == 1
    assert json.loads(hook.requests[0][2])["job"]["id"] == innocent.id
    after = rows(db)
    assert after[innocent.id].status == "delivered"
    for job in poisoned:  # an unusable URL cannot get better: failed for good, at once
        assert after[job.id].status == "failed" and after[job.id].attempts == 1
        assert "notify_url" in after[job.id].last_error
    # An unexpected exception is an attempt like any other: counted and retried later.
    assert after[crashing.id].status == "pending" and after[crashing.id].attempts == 1
    assert after[crashing.id].last_error == "RuntimeError: resolver bug"
    assert after[crashing.id].next_attempt_at > utcnow()
    assert deliver_due(db, config) == 0  # nothing is re-claimed over and over


def test_the_delivery_id_is_the_same_on_every_retry_and_signed(db: Database, receiver) -> None:  # type: ignore[no-untyped-def]
    hook = receiver([500, 200])
    job = owe_webhook(db, tenant(db, "alice"), hook.url)
    config = NotifyConfig(allow_private=True, retry_base_seconds=0.01)
    assert deliver_due(db, config) == 1
    time.sleep(0.05)
    assert deliver_due(db, config) == 1
    assert rows(db)[job.id].status == "delivered"
    ids = {headers[DELIVERY_HEADER] for _, headers, _ in hook.requests}
    assert len(hook.requests) == 2 and len(ids) == 1
    for _, headers, body in hook.requests:
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], sign(SECRET, headers[TIMESTAMP_HEADER], body))
        assert json.loads(body)["delivery_id"] == headers[DELIVERY_HEADER]
    other = owe_webhook(db, tenant(db, "bob"), hook.url)
    deliver_due(db, config)
    assert json.loads(hook.requests[-1][2])["job"]["id"] == other.id
    assert hook.requests[-1][1][DELIVERY_HEADER] not in ids


def test_a_slow_receiver_does_not_hold_up_another_tenant(db: Database, receiver) -> None:  # type: ignore[no-untyped-def]
    slow, fast = receiver([200], delay=1.5), receiver([200])
    mallory, alice = tenant(db, "mallory"), tenant(db, "alice")
    for _ in range(3):
        owe_webhook(db, mallory, slow.url, due_in=-10)  # due first
    owe_webhook(db, alice, fast.url)
    started = time.monotonic()
    thread = threading.Thread(target=deliver_due, args=(db, NotifyConfig(allow_private=True, timeout_seconds=3)))
    thread.start()
    deadline = started + 5
    while not fast.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.join(10)
    assert fast.requests, "alice's webhook was never sent"
    assert fast.requests[0][0] - started < 1.0  # not after mallory's 3 × 1.5 s (nor after one of them)
    assert len(slow.requests) == 3
    assert {r.status for r in rows(db).values()} == {"delivered"}


def test_two_workers_deliver_each_webhook_exactly_once(any_db: Database, receiver) -> None:  # type: ignore[no-untyped-def]
    """Each claim lasts the timeout plus a margin and is taken when that delivery starts:
    with 2 threads per worker the last deliveries start 1.5 s after the first, so a
    claim taken for the whole batch (3.5 s here) would run out and be taken again."""
    db = any_db
    hook = receiver([200], delay=1.5)
    jobs = [owe_webhook(db, tenant(db, f"tenant-{i}"), hook.url) for i in range(8)]
    config = NotifyConfig(allow_private=True, timeout_seconds=3, claim_margin_seconds=0.5, concurrency=2)
    workers = [Deliveries(db, config), Deliveries(db, config)]
    done = threading.Event()

    def loop(deliveries: Deliveries) -> None:
        while not done.is_set():
            deliveries.poll()
            time.sleep(0.02)

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(r.status != "pending" for r in rows(db).values()):
            break
        time.sleep(0.05)
    time.sleep(1.0)  # room for a second, duplicate delivery to show up
    done.set()
    for thread in threads:
        thread.join(10)
    for w in workers:
        w.close()
    after = rows(db)
    assert [after[j.id].status for j in jobs] == ["delivered"] * 8
    assert [after[j.id].attempts for j in jobs] == [1] * 8
    sent = [json.loads(body)["job"]["id"] for _, _, body in hook.requests]
    assert sorted(sent) == sorted(j.id for j in jobs)  # each once
    assert len({headers[DELIVERY_HEADER] for _, headers, _ in hook.requests}) == 8


def test_a_delivery_never_outlasts_its_claim(db: Database) -> None:
    """A receiver that answers a byte at a time: httpx's per-read timeout alone would wait
    for ever; the delivery's time limit ends it before its claim runs out."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 1000:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.05)

    threading.Thread(target=drip, daemon=True).start()
    job = owe_webhook(db, tenant(db, "alice"), f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
    config = NotifyConfig(allow_private=True, timeout_seconds=1.0, claim_margin_seconds=0.5)
    started = time.monotonic()
    assert deliver_due(db, config) == 1
    took = time.monotonic() - started
    stop.set()
    listener.close()
    row = rows(db)[job.id]
    assert took < config.claim_seconds
    assert row.status == "pending" and row.attempts == 1 and "Timeout" in row.last_error


def test_a_lost_claim_does_not_overwrite_the_new_holder(db: Database, receiver) -> None:  # type: ignore[no-untyped-def]
    """If a claim ever runs out anyway, the late worker's outcome does not clobber the row."""
    hook = receiver([200], delay=0.5)
    job = owe_webhook(db, tenant(db, "alice"), hook.url)
    config = NotifyConfig(allow_private=True, timeout_seconds=2)
    thread = threading.Thread(target=deliver_due, args=(db, config))
    thread.start()
    while not hook.requests:
        time.sleep(0.01)
    with db.write() as conn:  # another worker took it over meanwhile
        conn.execute(update(notifications).where(notifications.c.job_id == job.id).values(next_attempt_at=utcnow()))
    thread.join(10)
    assert rows(db)[job.id].status == "pending" and rows(db)[job.id].attempts == 0
