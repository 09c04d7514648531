"""No test reaches the internet: one that tries fails at once instead of hanging."""

from __future__ import annotations

import socket
import time

import httpx
import pytest


def test_a_connection_to_a_public_address_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://93.184.215.14/", timeout=30)
    assert time.monotonic() - started < 2


def test_a_public_name_does_not_resolve() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("places.googleapis.com", 443)


def test_loopback_still_works(sim) -> None:  # type: ignore[no-untyped-def]
    from tests.sim.server import SimResponse

    sim.route("GET", "/ping", lambda r: SimResponse(body={"pong": True}))
    assert httpx.get(f"{sim.url}/ping").json() == {"pong": True}
    assert sim.count("/ping") == 1


def test_a_process_a_test_starts_is_guarded_too() -> None:
    import subprocess
    import sys

    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('places.googleapis.com', 443)\n"
        "except socket.gaierror as exc:\n"
        "    print('refused', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused" in out.stdout and "tests may not resolve" in out.stdout, out.stdout + out.stderr
