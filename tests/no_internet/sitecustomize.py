"""No test reaches the internet, in the test process and in every Python process it starts.

tests/conftest.py imports this module and puts its folder on PYTHONPATH, so
Python runs it at the start of each child process (``sitecustomize``). A
connection to anything but this machine fails at once (instead of hanging
until a timeout on a machine without a route), and so does a lookup of a name
that is not this machine's: the simulators and the databases live on loopback.
"""

from __future__ import annotations

import ipaddress
import os
import socket


def _install() -> None:
    if getattr(socket, "_prospectpro_guarded", False) or os.environ.get("PROSPECTPRO_TESTS_NO_INTERNET") != "1":
        return
    _LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
    _real_connect = socket.socket.connect
    _real_connect_ex = socket.socket.connect_ex
    _real_getaddrinfo = socket.getaddrinfo

    def _is_local(host: object) -> bool:
        if not isinstance(host, str):
            return True
        if host.lower() in _LOCAL_NAMES:
            return True
        try:
            return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            return False

    def _refuse_remote(sock: socket.socket, address: object) -> None:
        family_ok = sock.family in (socket.AF_INET, socket.AF_INET6)
        if family_ok and isinstance(address, tuple) and not _is_local(address[0]):
            raise ConnectionRefusedError(f"tests may not reach the internet (connect to {address[0]!r})")

    def _guarded_connect(self: socket.socket, address: object) -> None:
        _refuse_remote(self, address)
        return _real_connect(self, address)  # type: ignore[arg-type]

    def _guarded_connect_ex(self: socket.socket, address: object) -> int:
        _refuse_remote(self, address)
        return _real_connect_ex(self, address)  # type: ignore[arg-type]

    def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local(name):
            try:
                ipaddress.ip_address(str(name))  # a literal address resolves to itself; connect() checks it
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve internet names ({name!r})") from None
        return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    socket._prospectpro_guarded = True  # type: ignore[attr-defined]


_install()
