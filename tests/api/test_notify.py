"""notify_url: the final job is POSTed, signed, and retried until it is accepted."""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from prospectpro.jobs.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from prospectpro.store.schema import notifications
from tests.api.conftest import LiveServer


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses  # answers in order; the last one repeats
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses[min(len(receiver.requests), len(receiver.statuses)) - 1]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_final_job_is_posted_signed_and_retried(make_server: Callable[..., LiveServer], receiver) -> None:  # type: ignore[no-untyped-def]
    hook = receiver([500, 200])
    server = make_server(notify_retry_base_seconds=0.05)
    with server.client() as client:
        answer = client.post(
            "/api/v1/campaigns",
            json={"business_type": "cafe", "location": "Helsinki", "max_results": 2, "notify_url": hook.url},
        ).json()
        secret = answer["notify_secret"]
        assert secret and len(secret) == 64
        job = client.get(f"/api/v1/jobs/{answer['job_id']}", headers={"Authorization": f"Bearer {answer['session_token']}"}).json()
        assert job["config"]["notify_url"] == hook.url and "notify" not in job["config"]
    wait_for(lambda: len(hook.requests) >= 2)
    for headers, body in hook.requests:
        expected = sign(secret, headers[TIMESTAMP_HEADER], body)
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
        document = json.loads(body)
        assert document["event"] == "job.completed" and document["job"]["id"] == answer["job_id"]
        assert document["job"]["metrics"]["leads"] == 2

    def delivered() -> bool:  # the receiver sees the request before the worker records the answer
        with server.db.read() as conn:
            return conn.execute(select(notifications.c.status)).scalar() == "delivered"

    wait_for(delivered)
    with server.db.read() as conn:
        row = conn.execute(select(notifications)).one()
    assert row.attempts == 2
    time.sleep(0.3)
    assert len(hook.requests) == 2  # delivered once accepted, never again


def test_delivery_gives_up_after_the_attempt_limit(make_server: Callable[..., LiveServer], receiver) -> None:  # type: ignore[no-untyped-def]
    hook = receiver([503])
    server = make_server(notify_retry_base_seconds=0.01, notify_max_attempts=3)
    with server.client() as client:
        client.post(
            "/api/v1/campaigns",
            json={"business_type": "cafe", "location": "Helsinki", "max_results": 1, "notify_url": hook.url},
        )

    def failed() -> bool:
        with server.db.read() as conn:
            row = conn.execute(select(notifications)).first()
        return row is not None and row.status == "failed"

    wait_for(failed)
    assert len(hook.requests) == 3
    with server.db.read() as conn:
        assert conn.execute(select(notifications.c.last_error)).scalar() == "HTTP 503"


def test_private_notify_url_is_refused_at_submit(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(allow_private_notify_urls=False, workers=0)
    with server.client() as client:
        for url in ("http://127.0.0.1/hook", "http://10.0.0.8/x", "http://169.254.169.254/latest", "ftp://example.com/x"):
            answer = client.post(
                "/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki", "notify_url": url}
            )
            assert answer.status_code == 422, url
            assert "notify_url" in answer.json()["error"]["message"]
        listed = client.get("/api/v1/jobs").json()
        assert listed["total"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://[::127.0.0.1]/hook",  # IPv4-compatible: ipaddress calls it global
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
        "http://224.0.0.1/hook",  # multicast
    ],
)
def test_ipv6_and_multicast_disguises_are_refused_at_submit(make_server: Callable[..., LiveServer], url: str) -> None:
    server = make_server(allow_private_notify_urls=False, workers=0)
    with server.client() as client:
        answer = client.post("/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki", "notify_url": url})
        assert answer.status_code == 422, url
        assert "notify_url" in answer.json()["error"]["message"]
        assert client.get("/api/v1/jobs").json()["total"] == 0


def test_urls_the_sender_cannot_send_are_refused_at_submit(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0)  # private addresses allowed: only the URL itself is wrong
    with server.client() as client:
        for url in (
            "http://１２７.０.０.１/hook",  # getaddrinfo resolves fullwidth digits; httpx refuses them
            "http://127.0.0.1/a\rb",
            "http://127.0.0.1/a\nb",
            "http://127.0.0.1/a\x7fb",
            "http://127.0.0.1/a b",
            "http://127.0.0.1:99999/hook",
        ):
            answer = client.post(
                "/api/v1/campaigns", json={"business_type": "cafe", "location": "Helsinki", "notify_url": url}
            )
            assert answer.status_code == 422, url
            assert "notify_url" in answer.text, url
        assert client.get("/api/v1/jobs").json()["total"] == 0


def test_a_poisoned_webhook_does_not_stop_another_tenants(make_server: Callable[..., LiveServer], receiver) -> None:  # type: ignore[no-untyped-def]
    """Mallory's URL was stored before submit refused such URLs; Alice's webhook is delivered anyway."""
    from sqlalchemy import update

    from prospectpro.bootstrap import build_worker
    from prospectpro.services.users import create_user
    from prospectpro.store.schema import discovery_jobs

    hook = receiver([200])
    server = make_server(workers=0)
    _, alice_key = create_user(server.db, "alice")
    campaign = {"business_type": "cafe", "location": "Helsinki", "max_results": 1, "notify_url": hook.url}
    with server.client() as anonymous, server.client(alice_key) as alice:
        mallory_job = anonymous.post("/api/v1/campaigns", json=campaign).json()["job_id"]
        alice_job = alice.post("/api/v1/campaigns", json=campaign).json()["job_id"]
    poisoned = hook.url.replace("127.0.0.1", "１２７.０.０.１")
    with server.db.write() as conn:
        config = conn.execute(select(discovery_jobs.c.config).where(discovery_jobs.c.id == mallory_job)).scalar_one()
        config["notify"]["url"] = poisoned
        conn.execute(update(discovery_jobs).where(discovery_jobs.c.id == mallory_job).values(config=config))
    worker = build_worker(server.db, server.settings, 2).start()
    try:
        wait_for(lambda: len(hook.requests) >= 1)

        def settled() -> bool:
            with server.db.read() as conn:
                return {r.status for r in conn.execute(select(notifications)).all()} == {"delivered", "failed"}

        wait_for(settled)
    finally:
        worker.stop()
    assert [json.loads(body)["job"]["id"] for _, body in hook.requests] == [alice_job]
    with server.db.read() as conn:
        states = {r.job_id: (r.status, r.attempts) for r in conn.execute(select(notifications)).all()}
    assert states == {alice_job: ("delivered", 1), mallory_job: ("failed", 1)}
