"""Outbound URLs a user chose (webhooks, later business websites): only to
public addresses, never into our own network (OWASP SSRF advice)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from prospectpro.errors import InvalidInput


def resolve_public(url: str, *, allow_private: bool = False) -> list[str]:
    """Check an http(s) URL and return the addresses it resolves to; InvalidInput if any is not public.

    Callers connect to one of the returned addresses, so a DNS answer that
    changes between the check and the connection cannot steer them inside.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. "http://[::1/x": an unbalanced IPv6 literal
        raise InvalidInput("notify_url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("notify_url must be an http or https URL")
    if not host:
        raise InvalidInput("notify_url has no host")
    if parts.username or parts.password:
        raise InvalidInput("notify_url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput("notify_url has an invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidInput(f"notify_url host {host!r} does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise InvalidInput(f"notify_url must point at a public address, not {address}")
        if port not in (80, 443):
            raise InvalidInput("notify_url must use port 80 or 443")
    return addresses
