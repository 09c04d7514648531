"""One local HTTP server that the provider simulators install their routes on.

It records every call (method, path, query, headers, body, time), and can be
told, per path prefix, to add latency, to enforce a rate limit the way the
real API answers it, or to answer the next calls with a fault (an error
status, a malformed or truncated body, ``{}``, a hang past the client's
timeout). Threaded: concurrent calls are served at once, as a real API would.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class SimRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() when received

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class SimResponse:
    status: int = 200
    body: Any = b""  # bytes, str, or anything JSON-able (sent as JSON)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    truncate_to: int | None = None  # send only this many bytes of the body, announcing the whole length
    close_without_answer: bool = False  # drop the connection without a status line

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/html; charset=utf-8")
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[SimRequest], SimResponse]


@dataclass
class _Limit:
    per_second: float
    answer: Callable[[], SimResponse]
    times: deque[float] = field(default_factory=deque)


class Simulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: list[tuple[str, str, bool, Handler]] = []
        self._faults: dict[str, deque[SimResponse]] = {}
        self._latency: dict[str, float] = {}
        self._limits: dict[str, _Limit] = {}
        self._lock = threading.Lock()
        self.calls: list[SimRequest] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._on_stop: list[Callable[[], None]] = []  # what simulators tied to this one stop with it

    # -- lifecycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulator", daemon=True)
        self._thread.start()
        return self

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when this simulator stops (e.g. the websites' own server: tests/sim/sites.py)."""
        self._on_stop.append(fn)

    def stop(self) -> None:
        while self._on_stop:
            self._on_stop.pop()()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it serves --------------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Answer ``method path`` (or every path under ``path`` when prefix) with handler; the latest wins."""
        with self._lock:
            self._routes.insert(0, (method.upper(), path, prefix, handler))

    def fail(self, path: str, response: SimResponse, times: int = 1) -> None:
        """The next ``times`` calls to a path starting with ``path`` get ``response`` instead of the route's."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend([response] * times)

    def set_latency(self, path: str, seconds: float) -> None:
        """Every call to a path starting with ``path`` waits this long before it is answered."""
        with self._lock:
            self._latency[path] = seconds

    def rate_limit(self, path: str, per_second: float, answer: Callable[[], SimResponse]) -> None:
        """More than ``per_second`` calls in any second to paths under ``path`` get ``answer()``."""
        with self._lock:
            self._limits[path] = _Limit(per_second, answer)

    # -- what it saw ----------------------------------------------------------------
    def calls_to(self, path: str, method: str | None = None) -> list[SimRequest]:
        with self._lock:
            return [c for c in self.calls if c.path.startswith(path) and (method is None or c.method == method)]

    def count(self, path: str = "/", method: str | None = None) -> int:
        return len(self.calls_to(path, method))

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- serving --------------------------------------------------------------------
    def _answer(self, request: SimRequest) -> SimResponse:
        with self._lock:
            self.calls.append(request)
            delay = max((s for p, s in self._latency.items() if request.path.startswith(p)), default=0.0)
            fault = next(
                (q.popleft() for p, q in sorted(self._faults.items(), key=lambda i: -len(i[0]))
                 if request.path.startswith(p) and q),
                None,
            )
            limited = None
            for p, limit in self._limits.items():
                if request.path.startswith(p):
                    while limit.times and request.at - limit.times[0] >= 1.0:
                        limit.times.popleft()
                    if len(limit.times) >= limit.per_second:
                        limited = limit.answer()
                    else:
                        limit.times.append(request.at)
            handler = next(
                (
                    h
                    for m, p, is_prefix, h in self._routes
                    if m == request.method and (request.path.startswith(p) if is_prefix else request.path == p)
                ),
                None,
            )
        if delay:
            time.sleep(delay)
        if fault is not None:
            return fault
        if limited is not None:
            return limited
        if handler is None:
            return SimResponse(404, {"error": f"no simulated route for {request.method} {request.path}"})
        return handler(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sim = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms on Linux), which would swamp every latency measured.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = SimRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                response = sim._answer(request)
                if response.delay:
                    time.sleep(response.delay)
                if response.close_without_answer:
                    self.close_connection = True
                    return
                payload, content_type = response.payload()
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                if response.truncate_to is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload if response.truncate_to is None else payload[: response.truncate_to])

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        return _Handler
