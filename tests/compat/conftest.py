"""One live server with two owners and a finished campaign, shared by the compatibility tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer, start_server
from tests.api.helpers import new_api_key, wait_until
from tests.conftest import _drop_pg_database, _fresh_pg_database

ORIGINAL_REQUEST = {"businessType": "cafe", "location": "Helsinki", "maxResults": 3, "budgetLimit": 5}


def supabase_headers(key: str) -> dict[str, str]:
    """What the original's scripts and supabase-js send: the key as both headers."""
    return {"apikey": key, "Authorization": f"Bearer {key}"}


@dataclass
class Compat:
    server: LiveServer
    alice: str  # API keys
    bob: str
    job_id: str  # alice's finished job
    campaign_id: str

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=supabase_headers(key) if key else {}, timeout=30)


def submit_original(client: httpx.Client, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/functions/v1/business-discovery-background", json=body or ORIGINAL_REQUEST)
    assert response.status_code == 202, response.text
    return dict(response.json())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def compat(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compat]:
    """Both stores: the queries are built from SQL expressions, compared and ordered in each one's SQL."""
    overrides: dict[str, Any] = {}
    pg_name = None
    if request.param == "postgresql":
        admin = request.getfixturevalue("pg_server")
        pg_name, overrides["database_url"] = _fresh_pg_database(admin)
    server = start_server(tmp_path_factory.mktemp("compat"), workers=1, **overrides)
    try:
        alice, bob = new_api_key(server.db, "alice"), new_api_key(server.db, "bob")
        with httpx.Client(base_url=server.url, headers=supabase_headers(alice), timeout=30) as client:
            answer = submit_original(client)
            wait_until(
                lambda: client.get(f"/api/v1/jobs/{answer['jobId']}").json()["status"] == "completed",
                what="the job to complete",
            )
        yield Compat(server, alice, bob, answer["jobId"], answer["campaignId"])
    finally:
        server.stop()
        if pg_name is not None:
            _drop_pg_database(request.getfixturevalue("pg_server"), pg_name)
