"""What one client must not get from, or do to, the others (issue 7, item 11): the URLs it is
told, the operator's endpoints, cookie-authenticated changes from other origins, the client
address the per-address limits count, and the `serve` options."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from prospectpro.api.app import create_app
from prospectpro.bootstrap import open_database
from prospectpro.cli import LogLevel, server_options
from prospectpro.cli import app as cli_app
from prospectpro.config import Settings
from tests.api.conftest import LiveServer, free_port, serve_in_thread
from tests.api.helpers import CAFES, assert_error, get_job, new_api_key

URL = "/api/v1/campaigns"
COMPAT = "/functions/v1/business-discovery-background"


# -- the URLs the API answers with ---------------------------------------------------


def _urls(client: httpx.Client, host: str | None = None) -> tuple[dict[str, str], str]:
    headers = {"Host": host} if host else {}
    submitted = client.post(URL, json=CAFES, headers=headers)
    compat = client.post(COMPAT, json={"businessType": "cafe", "location": "Helsinki"}, headers=headers)
    assert submitted.status_code == compat.status_code == 202, (submitted.text, compat.text)
    return submitted.json()["urls"], compat.json()["realtimeChannel"]


def test_a_host_header_is_reflected_only_when_allowed(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, allowed_hosts=["localhost", "leads.internal"])
    port = server.url.rsplit(":", 1)[1]
    with server.client() as client:
        for host in ("evil.example", f"evil.example:{port}", "localhost@evil.example", "localhost/x", "[::2]"):
            urls, channel = _urls(client, host)
            assert all(url.startswith("/") for url in urls.values()), (host, urls)  # relative: no one's host
            assert channel.startswith("/api/v1/jobs/") and channel.endswith("/events")
        # Allowed: a name in PROSPECTPRO_ALLOWED_HOSTS, or the address the connection reached.
        for host in (f"localhost:{port}", f"leads.internal:{port}", f"127.0.0.1:{port}"):
            urls, channel = _urls(client, host)
            assert urls["job"].startswith(f"http://{host}/api/v1/jobs/"), urls
            assert channel.startswith(f"http://{host}/api/v1/jobs/")


def test_the_configured_public_base_url_wins(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0, public_base_url="https://leads.example.com/")
    with server.client() as client:
        urls, channel = _urls(client, "evil.example")
    assert urls["page"].startswith("https://leads.example.com/jobs/")
    assert urls["leads_csv"].startswith("https://leads.example.com/api/v1/campaigns/")
    assert channel.startswith("https://leads.example.com/api/v1/jobs/")


# -- /metrics and /healthz ---------------------------------------------------------------

PROXIED = {"X-Forwarded-For": "203.0.113.9"}  # what a reverse proxy on this machine adds


def test_without_an_operator_token_only_this_machine_sees_the_details(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0)
    with server.client() as client:
        assert client.get("/metrics").status_code == 200
        assert set(client.get("/healthz").json()) >= {"status", "database", "workers_alive", "queue_depth"}
        # Through a proxy, every client of the internet arrives from 127.0.0.1: not "this machine".
        assert_error(client.get("/metrics", headers=PROXIED), 403, "forbidden")
        public = client.get("/healthz", headers=PROXIED)
        assert public.status_code == 200 and public.json() == {"status": "degraded"}  # no worker runs


def test_with_an_operator_token_only_its_bearer_sees_the_details(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=1, operator_token="s3cret-operator")
    api_key = new_api_key(server.db)
    with server.client() as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {api_key}"}):
            refused = client.get("/metrics", headers=headers)
            assert "PROSPECTPRO_OPERATOR_TOKEN" in assert_error(refused, 401, "unauthorized")["error"]["message"]
            assert refused.headers["www-authenticate"].startswith("Bearer")
            health = client.get("/healthz", headers=headers)
            assert health.status_code == 200 and set(health.json()) == {"status"}, headers  # loopback is not enough
        operator = {"Authorization": "Bearer s3cret-operator"}
        metrics = client.get("/metrics", headers=operator)
        assert metrics.status_code == 200 and "prospectpro_jobs" in metrics.text
        assert client.get("/healthz", headers={**operator, **PROXIED}).json()["database"] == "ok"


# -- cookie-authenticated changes from other origins ---------------------------------------


def test_a_cookie_cancel_from_another_origin_is_refused(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(workers=0)
    sibling = server.url.replace("127.0.0.1", "other.localhost")  # same site, another origin
    with server.client() as browser:
        assert browser.get("/").cookies.get("pp_session")
        made = browser.post(URL, json=CAFES).json()
        job_id, token = made["job_id"], made.get("session_token")
        assert token is None  # the browser's cookie session, not a new one
        elsewhere = ({"Origin": sibling}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"})
        for headers in elsewhere:
            assert_error(browser.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers), 403, "forbidden")
            assert_error(browser.post(URL, json=CAFES, headers=headers), 403, "forbidden")
            page = browser.post(f"/jobs/{job_id}/cancel", headers=headers)
            assert page.status_code == 403 and page.headers["content-type"].startswith("text/html"), headers
        job = get_job(browser, job_id)
        assert job["status"] == "pending" and not job["cancel_requested"]
        assert browser.get("/api/v1/jobs").json()["total"] == 1
        # From its own pages (a fetch says same-origin; an older browser sends its own Origin): fine.
        own = browser.post(f"/api/v1/jobs/{job_id}/cancel", headers={"Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 202
        assert browser.post(URL, json=CAFES, headers={"Origin": server.url}).status_code == 202
    # A Bearer token is never attached by a browser on its own: no origin check.
    key = new_api_key(server.db)
    foreign = {"Origin": sibling, "Sec-Fetch-Site": "cross-site"}
    with server.client(key) as client:
        job_id = client.post(URL, json=CAFES, headers=foreign).json()["job_id"]
        cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=foreign)
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"


# -- the client address -------------------------------------------------------------------


@contextmanager
def _serve_like_the_cli(tmp_path: Path, **overrides: Any) -> Iterator[str]:
    """A server started with the uvicorn options `prospectpro serve` uses."""
    settings = Settings(data_dir=tmp_path / "data", sessions_per_minute=1, serve_workers=0, **overrides)
    db = open_database(settings)
    port = free_port()
    options = server_options(settings, "127.0.0.1", port, LogLevel.warning)
    server, thread = serve_in_thread(create_app(settings, db=db), **options)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        db.dispose()


def _new_sessions(url: str, forwarded_for: list[str]) -> list[int]:
    """One anonymous submission per address claimed: the session limit is 1 per address a minute."""
    statuses = []
    for address in forwarded_for:
        with httpx.Client(base_url=url, timeout=30) as client:
            statuses.append(client.post(URL, json=CAFES, headers={"X-Forwarded-For": address}).status_code)
    return statuses


def test_x_forwarded_for_does_not_choose_the_client_address(tmp_path: Path) -> None:
    assert server_options(Settings(), "127.0.0.1", 8000, LogLevel.info)["proxy_headers"] is False
    with _serve_like_the_cli(tmp_path / "default") as url:
        # Each request claims another address; all come from 127.0.0.1, and the limit counts that.
        assert _new_sessions(url, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [202, 429, 429]


def test_x_forwarded_for_is_believed_from_a_configured_proxy(tmp_path: Path) -> None:
    with _serve_like_the_cli(tmp_path / "proxied", trusted_proxies=["127.0.0.1"]) as url:
        assert _new_sessions(url, ["203.0.113.1", "203.0.113.2", "203.0.113.2"]) == [202, 202, 429]


# -- serve's options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--log-level", "bogus"], "'bogus' is not one of"),
        (["--host", ""], "give an address to listen on"),
        (["--host", "  "], "give an address to listen on"),
    ],
)
def test_serve_refuses_bad_options_before_doing_anything(tmp_path: Path, args: list[str], says: str) -> None:
    result = CliRunner().invoke(cli_app, ["serve", *args], env={"PROSPECTPRO_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2, result.output
    assert says in result.output and "KeyError" not in result.output
    assert not (tmp_path / "data").exists()  # refused before opening (or creating) the database


def test_serve_log_levels_are_uvicorns() -> None:
    assert {level.value for level in LogLevel} == set(uvicorn.config.LOG_LEVELS)
    assert server_options(Settings(), "h", 1, LogLevel.debug)["access_log"] is True
