"""Idempotency-Key: a retried submission returns the first job, never a second one."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from prospectpro.services import submitter as submitter_module
from prospectpro.services.submissions import IDEMPOTENCY_KEY_MAX_LENGTH
from prospectpro.store.db import Database
from prospectpro.store.schema import campaigns, discovery_jobs, users
from tests.api.conftest import LiveServer
from tests.api.helpers import CAFES, assert_error, new_api_key

URL = "/api/v1/campaigns"
COMPAT = "/functions/v1/business-discovery-background"


@pytest.fixture
def idle_server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(workers=0)


def jobs_with_key(server: LiveServer, key: str) -> list[Any]:
    with server.db.read() as conn:
        return conn.execute(select(discovery_jobs).where(discovery_jobs.c.idempotency_key == key)).all()


def count(server: LiveServer, table: Any) -> int:
    with server.db.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_same_key_same_body_same_owner_is_the_same_job(idle_server: LiveServer) -> None:
    with idle_server.client() as client:  # the session cookie makes every call the same owner
        first = client.post(URL, json=CAFES, headers={"Idempotency-Key": "order-1"})
        assert first.status_code == 202 and first.json()["created"] is True
        for _ in range(3):
            again = client.post(URL, json=CAFES, headers={"Idempotency-Key": "order-1"})
            assert again.status_code == 202
            assert again.json()["created"] is False
            assert again.json()["job_id"] == first.json()["job_id"]
            assert again.json()["campaign_id"] == first.json()["campaign_id"]
            assert again.headers["location"] == first.headers["location"]
            assert again.json()["session_token"] is None
    assert len(jobs_with_key(idle_server, "order-1")) == 1
    assert count(idle_server, discovery_jobs) == 1 and count(idle_server, campaigns) == 1


def test_equivalent_bodies_count_as_the_same_request(idle_server: LiveServer) -> None:
    key = new_api_key(idle_server.db)
    with idle_server.client(key) as client:
        first = client.post(URL, json=CAFES, headers={"Idempotency-Key": "same"}).json()
        spelled_out = {
            "business_type": "  cafe ",
            "location": "Helsinki",
            "max_results": 20,
            "budget_limit": 5,
            "min_confidence_score": 50,
            "tier": "base",
            "include_delivered": False,
        }
        again = client.post(URL, json=spelled_out, headers={"Idempotency-Key": "same"})
        assert again.status_code == 202 and again.json()["job_id"] == first["job_id"]
    assert count(idle_server, discovery_jobs) == 1


@pytest.mark.parametrize(
    "change", [{"max_results": 21}, {"location": "60.17,24.94"}, {"business_type": "bar"}, {"tier": "enterprise"}]
)
def test_same_key_different_body_is_409(idle_server: LiveServer, change: dict[str, Any]) -> None:
    key = new_api_key(idle_server.db)
    with idle_server.client(key) as client:
        first = client.post(URL, json=CAFES, headers={"Idempotency-Key": "order-2"})
        assert first.status_code == 202
        conflict = client.post(URL, json={**CAFES, **change}, headers={"Idempotency-Key": "order-2"})
        body = assert_error(conflict, 409, "conflict")
        assert "Idempotency-Key" in body["error"]["message"]
        # The first request still replays.
        assert client.post(URL, json=CAFES, headers={"Idempotency-Key": "order-2"}).json()["created"] is False
    assert len(jobs_with_key(idle_server, "order-2")) == 1 and count(idle_server, discovery_jobs) == 1


def test_same_key_from_another_owner_is_another_job(idle_server: LiveServer) -> None:
    alice, bob = new_api_key(idle_server.db, "alice"), new_api_key(idle_server.db, "bob")
    answers = []
    for key in (alice, bob):
        with idle_server.client(key) as client:
            response = client.post(URL, json=CAFES, headers={"Idempotency-Key": "shared"})
            assert response.status_code == 202 and response.json()["created"] is True
            answers.append(response.json())
    assert answers[0]["job_id"] != answers[1]["job_id"]
    rows = jobs_with_key(idle_server, "shared")
    assert len(rows) == 2 and len({r.owner_id for r in rows}) == 2
    # ... even with a different body: another owner's key is no conflict.
    with idle_server.client(new_api_key(idle_server.db)) as client:
        assert client.post(URL, json={**CAFES, "max_results": 3}, headers={"Idempotency-Key": "shared"}).status_code == 202


def test_anonymous_callers_without_a_session_are_different_owners(idle_server: LiveServer) -> None:
    ids = set()
    for _ in range(2):
        with idle_server.client() as client:
            ids.add(client.post(URL, json=CAFES, headers={"Idempotency-Key": "anon"}).json()["job_id"])
    assert len(ids) == 2


def test_without_a_key_every_submission_is_new(idle_server: LiveServer) -> None:
    key = new_api_key(idle_server.db)
    with idle_server.client(key) as client:
        ids = {client.post(URL, json=CAFES).json()["job_id"] for _ in range(3)}
    assert len(ids) == 3


MALFORMED_KEYS = ["", "a b", "tab\tinside", "x" * (IDEMPOTENCY_KEY_MAX_LENGTH + 1), b"caf\xe9"]


# Regression test; the bug it caught (since fixed): an empty Idempotency-Key was "no key" on lookup but stored
# in the unique (owner, key) column, so the owner's next empty key was a 500 (IntegrityError).
@pytest.mark.parametrize("path", [URL, COMPAT])
@pytest.mark.parametrize("key", MALFORMED_KEYS, ids=["empty", "space", "tab", "too-long", "latin-1"])
def test_an_empty_overlong_or_invisible_key_is_422_and_writes_nothing(
    idle_server: LiveServer, path: str, key: str | bytes
) -> None:
    body = CAFES if path == URL else {"businessType": "cafe", "location": "Helsinki"}
    api_key = new_api_key(idle_server.db)
    users_before = count(idle_server, users)
    with idle_server.client() as anonymous, idle_server.client(api_key) as keyed:
        for client in (anonymous, keyed, keyed):  # twice for one owner: the second used to be the 500
            response = client.post(path, json=body, headers={"Idempotency-Key": key})
            error = assert_error(response, 422, "invalid_input")
            assert "Idempotency-Key must be 1–" in error["error"]["message"]
            assert "set-cookie" not in response.headers  # no session opened for a refused request
            assert error.get("success", False) is False
    assert count(idle_server, discovery_jobs) == 0
    assert count(idle_server, users) == users_before


@pytest.mark.parametrize("path", [URL, COMPAT])
def test_the_longest_key_of_visible_characters_is_accepted(idle_server: LiveServer, path: str) -> None:
    body = CAFES if path == URL else {"businessType": "cafe", "location": "Helsinki"}
    key = "!~" + "k" * (IDEMPOTENCY_KEY_MAX_LENGTH - 2)
    with idle_server.client(new_api_key(idle_server.db)) as client:
        first = client.post(path, json=body, headers={"Idempotency-Key": key})
        again = client.post(path, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert len(jobs_with_key(idle_server, key)) == 1


def test_the_key_rule_is_in_the_openapi_schema(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        spec = client.get("/openapi.json").json()
    for path in (URL, COMPAT):
        [param] = [p for p in spec["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
        schema = param["schema"]
        assert (schema["minLength"], schema["maxLength"]) == (1, IDEMPOTENCY_KEY_MAX_LENGTH)
        assert schema["pattern"] == rf"^[\x21-\x7E]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}$"


class HeldWriter:
    """Holds the API's group-commit writer in its first group until released, so that the
    requests sent meanwhile are written together, as one group."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.released = threading.Event(), threading.Event()
        self.groups: list[int] = []
        real = submitter_module.write_submissions

        def held(db: Any, settings: Any, requests: Any) -> Any:
            self.groups.append(len(requests))
            if len(self.groups) == 1:
                self.entered.set()
                assert self.released.wait(20), "the test never released the writer"
            return real(db, settings, requests)

        monkeypatch.setattr(submitter_module, "write_submissions", held)


def owner_of(server: LiveServer, job_id: str) -> str:
    with server.db.read() as conn:
        return conn.execute(select(discovery_jobs.c.owner_id).where(discovery_jobs.c.id == job_id)).scalar_one()


def jobs_of(server: LiveServer, owner_id: str) -> list[str]:
    with server.db.read() as conn:
        return list(conn.execute(select(discovery_jobs.c.id).where(discovery_jobs.c.owner_id == owner_id)).scalars())


# Regression test; the bug it caught (since fixed): a tenant's two empty keys in one group commit raised an
# IntegrityError that the group writer handed to every request of the group, other tenants' included, even
# those whose jobs the one-by-one fallback had committed: they got a 500 for a job that exists.
@pytest.mark.parametrize("faulty", ["api_key", "anonymous"])
def test_an_empty_key_does_not_disturb_another_tenant_in_the_same_group(
    idle_server: LiveServer, monkeypatch: pytest.MonkeyPatch, faulty: str
) -> None:
    server = idle_server
    with server.client() as browser:  # the anonymous tenant: a session cookie from its first submission
        opened = browser.post(URL, json=CAFES)
        assert opened.status_code == 202
        cookies = dict(browser.cookies)
    tenants: dict[str, dict[str, Any]] = {
        "anonymous": {"cookies": cookies},
        "api_key": {"token": new_api_key(server.db, "keyed")},
        "third": {"token": new_api_key(server.db, "third")},
    }
    innocent = "anonymous" if faulty == "api_key" else "api_key"
    sent = [
        (faulty, {"Idempotency-Key": ""}),
        (innocent, {"Idempotency-Key": "mine-1"}),
        (faulty, {"Idempotency-Key": ""}),
        (innocent, {}),
        (faulty, {"Idempotency-Key": ""}),
    ]
    submitter = server.server.config.app.state.submitter
    writer = HeldWriter(monkeypatch)
    answers: dict[int, Any] = {}

    def post(i: int, tenant: str, headers: dict[str, str]) -> None:
        with server.client(**tenants[tenant]) as client:
            answers[i] = client.post(URL, json=CAFES, headers=headers)

    blocker = threading.Thread(target=post, args=(-1, "third", {}))  # its group holds the writer
    blocker.start()
    assert writer.entered.wait(10)
    threads = [threading.Thread(target=post, args=(i, tenant, headers)) for i, (tenant, headers) in enumerate(sent)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    while submitter._queue.qsize() + len(answers) < len(sent):  # each one queued behind the writer, or answered
        assert time.monotonic() < deadline, "the requests never queued"
        time.sleep(0.005)
    writer.released.set()
    for t in [blocker, *threads]:
        t.join(30)

    assert answers[-1].status_code == 202
    for i, (tenant, headers) in enumerate(sent):
        if tenant == faulty:
            assert_error(answers[i], 422, "invalid_input")
    mine, plain = answers[1], answers[3]
    assert mine.status_code == 202 and mine.json()["created"] is True, mine.text
    assert plain.status_code == 202 and plain.json()["created"] is True, plain.text
    owner = owner_of(server, mine.json()["job_id"])
    assert owner_of(server, plain.json()["job_id"]) == owner
    assert writer.groups[0] == 1 and max(writer.groups[1:]) >= 2, writer.groups  # the two were one group
    # The innocent tenant's jobs: exactly the ones it was told about, and its retry finds the first.
    told = {mine.json()["job_id"], plain.json()["job_id"]} | ({opened.json()["job_id"]} if innocent == "anonymous" else set())
    assert set(jobs_of(server, owner)) == told
    with server.client(**tenants[innocent]) as client:
        retry = client.post(URL, json=CAFES, headers={"Idempotency-Key": "mine-1"})
    assert retry.status_code == 202 and retry.json()["created"] is False
    assert retry.json()["job_id"] == mine.json()["job_id"]
    assert len(jobs_with_key(server, "")) == 0 and len(jobs_with_key(server, "mine-1")) == 1


def test_compat_endpoint_honours_the_key(idle_server: LiveServer) -> None:
    key = new_api_key(idle_server.db)
    body = {"businessType": "cafe", "location": "Helsinki"}
    with idle_server.client(key) as client:
        first = client.post(COMPAT, json=body, headers={"Idempotency-Key": "legacy-1"})
        again = client.post(COMPAT, json=body, headers={"Idempotency-Key": "legacy-1"})
        assert first.status_code == again.status_code == 202
        assert first.json()["jobId"] == again.json()["jobId"]
        conflict = client.post(COMPAT, json={**body, "maxResults": 9}, headers={"Idempotency-Key": "legacy-1"})
        assert assert_error(conflict, 409, "conflict")["success"] is False
    assert len(jobs_with_key(idle_server, "legacy-1")) == 1


# Regression test; the bug it caught (since fixed): api/routes.py business_discovery_background declares
# responses 400/401/413/415/422/429 but not 409, which it returns for a reused Idempotency-Key (schemathesis
# flags it as undocumented)
def test_compat_endpoint_documents_409(idle_server: LiveServer) -> None:
    with idle_server.client() as client:
        spec = client.get("/openapi.json").json()
    assert "409" in spec["paths"][COMPAT]["post"]["responses"]


# Regression test; the bug it caught (since fixed): services/campaigns.py request_hash() hashes only the
# CampaignRequest, not notify_url; reusing a key with a different notify_url silently returns the old job (no
# webhook) instead of 409
def test_same_key_different_notify_url_is_409(idle_server: LiveServer) -> None:
    key = new_api_key(idle_server.db)
    with idle_server.client(key) as client:
        assert client.post(URL, json=CAFES, headers={"Idempotency-Key": "hook"}).status_code == 202
        with_hook = {**CAFES, "notify_url": "http://127.0.0.1:9/hook"}
        assert_error(client.post(URL, json=with_hook, headers={"Idempotency-Key": "hook"}), 409, "conflict")


@pytest.mark.postgres
# Regression test; the bug it caught (since fixed): services/campaigns.py submit_campaign() looks the key up,
# then inserts; on PostgreSQL two concurrent requests with the same key both miss the lookup and the loser's
# INSERT hits uq_discovery_jobs_owner_id_idempotency_key -> IntegrityError -> 500
def test_concurrent_submissions_with_one_key_on_postgres(
    pg_db: Database, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server(workers=0, database_url=pg_db.url, import_bundled_places=False)
    body = {"business_type": "cafe", "location": "60.1699,24.9384"}  # coordinates: no places data needed
    api_key = new_api_key(server.db)
    statuses: list[int] = []
    for _ in range(5):
        key = str(uuid.uuid4())
        barrier = threading.Barrier(8)
        answers: list[tuple[int, str | None]] = []

        def go() -> None:
            with server.client(api_key) as client:
                barrier.wait()  # noqa: B023
                response = client.post(URL, json=body, headers={"Idempotency-Key": key})  # noqa: B023
                answers.append((response.status_code, response.json().get("job_id") if response.status_code == 202 else None))  # noqa: B023

        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses += [status for status, _ in answers]
        assert len(jobs_with_key(server, key)) == 1
        assert len({job for _, job in answers}) == 1, answers
    assert statuses == [202] * 40, statuses
