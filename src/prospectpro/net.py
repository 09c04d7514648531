"""Outbound requests to URLs a user chose (webhooks now, business websites later):
only to public addresses, never into our own network (OWASP SSRF advice).

One mechanism, used for every such request: ``public_client()`` returns an
``httpx.Client`` whose every connection — the first one and each redirect
hop's — resolves the host name once, refuses it unless every address is
public, and then connects to one of exactly those addresses. The URL, the
``Host`` header, the TLS server name (SNI) and certificate checks stay the host
name's; only the socket is pinned. So a name that answers a public address to a
check and 127.0.0.1 to the connection (DNS rebinding) cannot steer a request
inside: there is no second lookup.

``parse_url()`` is the parser the client sends with (``httpx.URL``) plus what
we refuse on top, so a URL accepted at submit time is one the sender can use.

Configured provider base URLs (Google, Hunter, the local simulators) are the
operator's choice, not a user's, and go through plain ``httpx`` clients, not
through this module.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import httpcore
import httpx

from prospectpro.errors import InvalidInput

Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> the addresses to connect to; raises OSError when the name does not resolve."""

DEFAULT_PORTS = frozenset({80, 443})
RESOLVE_TIMEOUT_SECONDS = 10.0  # when the caller gives no connect timeout


class BlockedAddress(httpx.ConnectError):
    """The policy refused a connection: a non-public address or an unusual port.

    An ``httpx.ConnectError``, so code that handles network failures handles
    this one too; catch it first to tell the two apart.
    """


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# -- which addresses are public -------------------------------------------

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use only
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated "::a.b.c.d"


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (mapped, compatible, NAT64, 6to4, Teredo)."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client); the client is the real host
    return found


def is_public_address(address: str) -> bool:
    """True when an address is globally reachable unicast, and so is any IPv4 address inside it.

    ``is_global`` alone is not enough: Python counts multicast, ``::127.0.0.1``
    and ``64:ff9b::7f00:1`` as global, and the kernel or a NAT64 gateway would
    deliver those to a loopback or private IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        return False
    if not ip.is_global or ip.is_multicast or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        return all(is_public_address(str(inner)) for inner in embedded_ipv4(ip))
    return True


# -- the policy: one check, at the connection -----------------------------


@dataclass(frozen=True)
class Policy:
    """Where outbound requests to user-chosen URLs may go.

    ``allow_private`` lifts both rules (addresses and ports) for tests and local
    development; connections are still pinned to the resolved address.
    """

    allow_private: bool = False
    resolver: Resolver = system_resolver
    ports: frozenset[int] = DEFAULT_PORTS

    def addresses(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """Resolve once and check; the addresses to connect to, or BlockedAddress / ConnectError."""
        if not self.allow_private and port not in self.ports:
            raise BlockedAddress(f"port {port} is not allowed (only {', '.join(map(str, sorted(self.ports)))})")
        found = [host] if _is_ip_literal(host) else _resolve(self.resolver, host, port, timeout)
        if not found:
            raise httpx.ConnectError(f"{host} does not resolve")
        if not self.allow_private:
            for address in found:
                if not is_public_address(address):
                    raise BlockedAddress(f"{host} resolves to {address}, which is not a public address")
        return found


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


# getaddrinfo has no timeout of its own; a few threads let a lookup be given up
# on time (the thread finishes on its own later).
_lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="net-resolve")


def _resolve(resolver: Resolver, host: str, port: int, timeout: float | None) -> list[str]:
    future = _lookups.submit(resolver, host, port)
    try:
        return [str(address) for address in future.result(timeout or RESOLVE_TIMEOUT_SECONDS)]
    except FutureTimeout:
        future.cancel()  # if it is still queued behind hung lookups, it never runs
        raise httpx.ConnectTimeout(f"resolving {host} took too long") from None
    except (OSError, UnicodeError) as exc:
        raise httpx.ConnectError(f"{host} does not resolve ({exc})") from None


# -- URLs -----------------------------------------------------------------


def parse_url(raw: str, *, field: str = "url") -> httpx.URL:
    """The URL as the sender will see it; InvalidInput for what it would refuse or we do.

    httpx refuses control characters and hosts that are not valid IDNA (e.g.
    fullwidth digits, which getaddrinfo would accept); it silently
    percent-encodes spaces, which we refuse too since no sane endpoint has one.
    """
    if any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise InvalidInput(f"{field} must not contain spaces or control characters")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise InvalidInput(f"{field} must be an http or https URL")
    if not url.host:
        raise InvalidInput(f"{field} has no host")
    if url.userinfo:
        raise InvalidInput(f"{field} must not carry credentials")
    if url.port is not None and not 0 < url.port < 65536:
        raise InvalidInput(f"{field} has an invalid port")
    return url


def default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def resolve_public(url: str, policy: Policy = Policy(), *, field: str = "notify_url") -> list[str]:
    """Check a user's URL up front (at submit time) for a clear 422; returns its addresses.

    This is a courtesy to the user, not the protection: ``public_client()``
    checks again at every connection, and only that check decides.
    """
    parsed = parse_url(url, field=field)
    try:
        return policy.addresses(parsed.raw_host.decode("ascii"), default_port(parsed))
    except BlockedAddress as exc:
        raise InvalidInput(f"{field} is refused: {exc}") from None
    except httpx.TransportError:
        raise InvalidInput(f"{field} host {parsed.host!r} does not resolve") from None


# -- the pinned client ----------------------------------------------------


@dataclass
class _PinnedBackend(httpcore.NetworkBackend):
    """httpcore's socket opener, checking and pinning every connection.

    httpcore passes the origin's host name here and later uses it as the TLS
    server name, so swapping the name for a checked address at this one point
    changes nothing else about the request.
    """

    policy: Policy
    deadline: float | None = None  # time.monotonic() after which no more I/O is done
    inner: httpcore.NetworkBackend = field(default_factory=httpcore.SyncBackend)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.policy.addresses(host, port, _left(self.deadline, timeout, httpcore.ConnectTimeout))
        failure: Exception | None = None
        for address in addresses:  # what create_connection does with a name's addresses, but only these
            try:
                stream = self.inner.connect_tcp(
                    address,
                    port,
                    timeout=_left(self.deadline, timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self.deadline) if self.deadline is not None else stream
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise BlockedAddress("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _left(deadline: float | None, timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout for the next step: the step's own, cut to what is left of the whole budget."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request took longer than its time limit")
    return left if timeout is None else min(timeout, left)


@dataclass
class _DeadlineStream(httpcore.NetworkStream):
    """Every read and write gets at most what is left of the budget: a receiver that
    drips a byte a second cannot hold a request open past it."""

    stream: httpcore.NetworkStream
    deadline: float

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, _left(self.deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, _left(self.deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self.stream.start_tls(ssl_context, server_hostname, _left(self.deadline, timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls, self.deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self.stream.get_extra_info(info)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR; loaded once


def public_transport(
    policy: Policy,
    *,
    budget_seconds: float | None = None,
    verify: ssl.SSLContext | bool = True,
    inner: httpcore.NetworkBackend | None = None,
) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through ``policy`` (see the module docstring).

    ``budget_seconds`` bounds all of this transport's network I/O from now on,
    resolving included (httpx's timeouts apply per step, so a slow receiver
    could otherwise hold a request for many times its timeout).
    """
    ssl_context = _default_ssl_context() if verify is True else httpx.create_ssl_context(verify=verify)
    backend = _PinnedBackend(policy, None if budget_seconds is None else time.monotonic() + budget_seconds)
    if inner is not None:
        backend.inner = inner
    transport = httpx.HTTPTransport(verify=ssl_context, trust_env=False)
    # httpx 0.28 takes no httpcore network backend (encode/httpx#3749), but its
    # transport sends everything through this one pool: give it a pool that
    # opens sockets through ours. The pinning tests fail if httpx changes that.
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
        raise RuntimeError("this httpx version's HTTPTransport has no connection pool to pin")
    transport._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend, keepalive_expiry=5.0)
    return transport


def public_client(
    policy: Policy,
    *,
    timeout: float = 10.0,
    budget_seconds: float | None = None,
    follow_redirects: bool = False,
    headers: dict[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
    inner: httpcore.NetworkBackend | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for user-chosen URLs: every connection, each redirect hop's
    included, is checked against ``policy`` and pinned to the checked address.

    Environment proxies are ignored (``trust_env=False``): a proxy would resolve
    the name itself, after our check. ``inner`` replaces the socket layer (tests).
    """
    return httpx.Client(
        transport=public_transport(policy, budget_seconds=budget_seconds, verify=verify, inner=inner),
        timeout=timeout,
        follow_redirects=follow_redirects,
        headers=headers,
        trust_env=False,
    )
