"""The database goes away under a running server: a clear 503, nothing half-written, and it recovers."""

from __future__ import annotations

from pathlib import Path

import pytest

from prospectpro.store.db import Database
from tests.api.conftest import start_server
from tests.api.helpers import assert_error

URL = "/api/v1/campaigns"
CAFES = {"business_type": "cafe", "location": "Helsinki", "max_results": 5}


def _set_connections(admin: Database, name: str, allowed: bool) -> None:
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %(name)s", {"name": name}
            )


@pytest.mark.postgres
def test_submit_while_postgres_refuses_connections_is_a_503_then_recovers(
    pg_server: Database, pg_db: Database, tmp_path: Path
) -> None:
    name = pg_db.engine.url.database
    assert name
    server = start_server(tmp_path, workers=0, database_url=str(pg_db.engine.url.render_as_string(False)))
    try:
        with server.client() as client:
            first = client.post(URL, json=CAFES)
            assert first.status_code == 202, first.text
            token = first.json()["session_token"]
        _set_connections(pg_server, name, allowed=False)
        try:
            with server.client(token) as client:
                for _ in range(3):  # pooled connections were killed: each attempt must fail cleanly
                    response = client.post(URL, json=CAFES)
                    body = assert_error(response, 503, "unavailable")
                    assert "try again" in body["error"]["message"]
                    assert response.headers["retry-after"] == "2"
        finally:
            _set_connections(pg_server, name, allowed=True)
        with server.client(token) as client:
            again = client.post(URL, json=CAFES)
            assert again.status_code == 202, again.text
            jobs = client.get("/api/v1/jobs").json()
        # Exactly the two accepted submissions exist: the refused ones wrote nothing.
        assert jobs["total"] == 2
        assert {j["id"] for j in jobs["jobs"]} == {first.json()["job_id"], again.json()["job_id"]}
    finally:
        server.stop()
