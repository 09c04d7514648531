"""A real HTTP server on a free port, for API, stream and browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from prospectpro.api.app import create_app
from prospectpro.bootstrap import open_database
from prospectpro.config import Settings
from prospectpro.store.db import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    db: Database
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.db.dispose()


def start_server(tmp_path: Path, *, workers: int = 1, **overrides: Any) -> LiveServer:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "poll_interval": 0.05,
        "sse_poll_interval": 0.05,
        "allow_private_notify_urls": True,
    }
    settings = Settings(**{**defaults, **overrides})
    db = open_database(settings)
    port = free_port()
    server, thread = serve_in_thread(
        create_app(settings, workers=workers, db=db), host="127.0.0.1", port=port, log_level="warning"
    )
    return LiveServer(url=f"http://127.0.0.1:{port}", db=db, settings=settings, server=server, thread=thread)


def serve_in_thread(app: Any, **options: Any) -> tuple[uvicorn.Server, threading.Thread]:
    """A uvicorn server for ``app`` in a daemon thread, returned once it accepts connections."""
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return server, thread


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """For tests that need their own settings: make_server(workers=0, submissions_per_minute=2)."""
    started: list[LiveServer] = []

    def make(**overrides: Any) -> LiveServer:
        server = start_server(tmp_path / f"s{len(started)}", **overrides)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
