"""Outbound requests to user-chosen URLs: resolved once, checked, connected to the checked address.

No test uses real DNS or the internet: names resolve through an injected
resolver, and a "public" address (93.184.215.14) is carried to a server on
127.0.0.1 by a fake socket layer, so the policy sees a public address while the
bytes stay on this machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpcore
import httpx
import pytest

from prospectpro.errors import InvalidInput
from prospectpro.net import (
    BlockedAddress,
    Policy,
    embedded_ipv4,
    is_public_address,
    parse_url,
    public_client,
    resolve_public,
)

PUBLIC = "93.184.215.14"  # looks public to the policy; FakeInternet carries it to a local server


class Server:
    """A local HTTP server that records what it was sent and answers from ``answer``."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None] | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                if answer is None:
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Callable[..., Server]]:
    made: list[Server] = []

    def make(answer: Callable[[BaseHTTPRequestHandler], None] | None = None) -> Server:
        made.append(Server(answer))
        return made[-1]

    yield make
    for s in made:
        s.httpd.shutdown()
        s.httpd.server_close()


class Resolver:
    """Answers from a script per name (the last answer repeats) and counts lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        script = self.answers[host]
        return script[min(self.lookups.count(host), len(script)) - 1]


class FakeInternet(httpcore.NetworkBackend):
    """The socket layer under the policy: records every connection and carries ``routes`` to local ports."""

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = routes
        self.connections: list[tuple[str, int]] = []
        self.real = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kwargs: Any) -> httpcore.NetworkStream:
        self.connections.append((host, port))
        if host in self.routes:
            return self.real.connect_tcp("127.0.0.1", self.routes[host], timeout=timeout, **kwargs)
        return self.real.connect_tcp(host, port, timeout=timeout, **kwargs)


# -- addresses ------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",  # multicast: Python calls it global
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff0e::1",  # global-scope multicast
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "::127.0.0.1",  # IPv4-compatible: Python calls it global
        "::10.0.0.1",
        "64:ff9b::127.0.0.1",  # NAT64 of loopback: Python calls it global
        "64:ff9b::192.168.1.1",
        "64:ff9b:1::8.8.8.8",  # local-use NAT64 prefix
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1: Python calls it global
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "not-an-address",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", PUBLIC, "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(address)


def test_embedded_ipv4_forms() -> None:
    import ipaddress

    def embedded(text: str) -> list[str]:
        return [str(a) for a in embedded_ipv4(ipaddress.IPv6Address(text))]

    assert embedded("::ffff:127.0.0.1") == ["127.0.0.1"]
    assert embedded("::127.0.0.1") == ["127.0.0.1"]
    assert embedded("64:ff9b::10.1.2.3") == ["10.1.2.3"]
    assert embedded("2002:c0a8:101::1") == ["192.168.1.1"]
    # Teredo: (server, client), the client de-obfuscated; here a private one behind NAT
    assert embedded("2001:0:4136:e378:8000:63bf:3f57:fdd2") == ["65.54.227.120", "192.168.2.45"]
    assert embedded("2606:4700::1111") == []


# -- URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://８.８.８.８/",  # fullwidth digits: getaddrinfo takes them, httpx does not
        "http://127.0.0.1/a\rb",
        "http://127.0.0.1/a\nb",
        "http://127.0.0.1/a\x7fb",
        "http://127.0.0.1/a\tb",
        "http://127.0.0.1/a\x00b",
        "http://127.0.0.1/a b",  # httpx would quietly send %20
        "http://exa mple.com/",
        "http://example.com/\u00a0",
        "http://example.com/\u200b",
        "ftp://example.com/x",
        "http://user:pw@example.com/",
        "http://example.com\\@127.0.0.1/",  # userinfo by httpx's reading
        "http://example.com:99999/",
        "http://[::1/x",
        "http:///nohost",
    ],
)
def test_parse_url_refuses_what_the_sender_would_and_more(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_url(url, field="notify_url")
    assert refused.value.message.startswith("notify_url")


def test_parse_url_keeps_the_url_httpx_will_send() -> None:
    assert str(parse_url("https://Hooks.Example/x?y=1")) == "https://hooks.example/x?y=1"
    assert parse_url("http://bücher.de/").raw_host == b"xn--bcher-kva.de"


def test_resolve_public_refuses_private_answers_and_ports() -> None:
    resolver = Resolver({"hooks.example": [["8.8.8.8", "::ffff:127.0.0.1"]], "ok.example": [[PUBLIC]]})
    policy = Policy(resolver=resolver)
    with pytest.raises(InvalidInput, match="::ffff:127.0.0.1"):
        resolve_public("https://hooks.example/x", policy)  # every address must be public
    with pytest.raises(InvalidInput, match="port 8080"):
        resolve_public("http://ok.example:8080/x", policy)
    assert resolve_public("https://ok.example/x", policy) == [PUBLIC]
    for literal in ("http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::1]/", "http://10.0.0.1/"):
        with pytest.raises(InvalidInput, match="not a public address"):
            resolve_public(literal, policy)


def test_resolve_public_says_when_a_name_does_not_resolve() -> None:
    def nothing(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    with pytest.raises(InvalidInput, match="does not resolve"):
        resolve_public("https://nowhere.example/", Policy(resolver=nothing))


# -- pinning --------------------------------------------------------------


def test_connection_goes_to_the_resolved_address_with_the_original_host_header(server) -> None:  # type: ignore[no-untyped-def]
    target = server()
    resolver = Resolver({"hooks.example": [["127.0.0.1"]]})
    with public_client(Policy(allow_private=True, resolver=resolver)) as client:
        response = client.post(f"http://hooks.example:{target.port}/hook", content=b"{}")
    assert response.status_code == 200
    assert [r["host"] for r in target.requests] == [f"hooks.example:{target.port}"]
    assert target.requests[0]["path"] == "/hook"
    assert resolver.lookups == ["hooks.example"]


def test_rebinding_name_never_reaches_loopback(server) -> None:  # type: ignore[no-untyped-def]
    """Public to the submit-time check, 127.0.0.1 afterwards: the connection's own check refuses it."""
    inside = server()
    resolver = Resolver({"hooks.example": [[PUBLIC], ["127.0.0.1"]]})
    policy = Policy(resolver=resolver, ports=frozenset({80, 443, inside.port}))
    url = f"http://hooks.example:{inside.port}/hook"
    assert resolve_public(url, policy) == [PUBLIC]  # what a submit sees
    network = FakeInternet({})
    with public_client(policy, inner=network) as client, pytest.raises(BlockedAddress, match="127.0.0.1"):
        client.post(url, content=b"{}")
    assert network.connections == [] and inside.requests == []


def test_the_checked_answer_is_the_one_connected_to(server) -> None:  # type: ignore[no-untyped-def]
    """One lookup per connection: a name that would say 127.0.0.1 the second time is never asked again."""
    outside, inside = server(), server()
    resolver = Resolver({"hooks.example": [[PUBLIC], ["127.0.0.1"]]})
    network = FakeInternet({PUBLIC: outside.port})
    with public_client(Policy(resolver=resolver), inner=network) as client:
        assert client.post("http://hooks.example/hook", content=b"{}").status_code == 200
    assert network.connections == [(PUBLIC, 80)]
    assert resolver.lookups == ["hooks.example"]
    assert [r["host"] for r in outside.requests] == ["hooks.example"] and inside.requests == []


def test_each_redirect_hop_is_checked(server) -> None:  # type: ignore[no-untyped-def]
    inside = server()

    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", "http://internal.example/admin")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    outside = server(redirect)
    resolver = Resolver({"site.example": [[PUBLIC]], "internal.example": [["127.0.0.1"]]})
    network = FakeInternet({PUBLIC: outside.port, "127.0.0.1": inside.port})
    with public_client(Policy(resolver=resolver), inner=network, follow_redirects=True) as client:
        with pytest.raises(BlockedAddress, match="internal.example resolves to 127.0.0.1"):
            client.get("http://site.example/")
    assert len(outside.requests) == 1 and inside.requests == []
    assert network.connections == [(PUBLIC, 80)]


class _TLSRecorder(httpcore.NetworkBackend):
    """A socket layer that records the TLS server name and what was written, and answers 204."""

    def __init__(self) -> None:
        self.connected: list[str] = []
        self.server_names: list[str | None] = []
        self.written = b""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kwargs: Any) -> httpcore.NetworkStream:
        self.connected.append(host)
        recorder = self

        class Stream(httpcore.NetworkStream):
            answered = False

            def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
                recorder.server_names.append(server_hostname)
                return self

            def write(self, buffer: bytes, timeout: float | None = None) -> None:
                recorder.written += buffer

            def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
                if self.answered:
                    return b""
                self.answered = True
                return b"HTTP/1.1 204 No Content\r\n\r\n"

            def close(self) -> None:
                pass

        return Stream()


def test_tls_keeps_the_host_name_while_connecting_to_the_address() -> None:
    network = _TLSRecorder()
    resolver = Resolver({"hooks.example": [[PUBLIC]]})
    with public_client(Policy(resolver=resolver), inner=network) as client:
        assert client.post("https://hooks.example/hook", content=b"{}").status_code == 204
    assert network.connected == [PUBLIC]
    assert network.server_names == ["hooks.example"]  # SNI, and the certificate is checked against it
    assert b"\r\nHost: hooks.example\r\n" in network.written


def test_budget_bounds_a_receiver_that_drips(server) -> None:  # type: ignore[no-untyped-def]
    """httpx's timeout is per read; the budget is for the whole request."""

    def drip(handler: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.1)

    slow = server(drip)
    resolver = Resolver({"hooks.example": [["127.0.0.1"]]})
    started = time.monotonic()
    with public_client(Policy(allow_private=True, resolver=resolver), timeout=1.0, budget_seconds=1.0) as client:
        with pytest.raises(httpx.TimeoutException):
            client.post(f"http://hooks.example:{slow.port}/", content=b"{}")
    assert time.monotonic() - started < 2.0  # the drip alone takes about 4 s


def test_a_hanging_lookup_is_given_up_on_time() -> None:
    def hang(host: str, port: int) -> list[str]:
        time.sleep(3)
        return [PUBLIC]

    started = time.monotonic()
    with public_client(Policy(resolver=hang), timeout=0.3) as client, pytest.raises(httpx.ConnectTimeout):
        client.get("http://slow-dns.example/")
    assert time.monotonic() - started < 1.5
