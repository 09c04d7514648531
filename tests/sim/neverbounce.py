"""NeverBounce v4 as external-apis.md §3 describes it: single/check and the bulk jobs API.

``install(sim, results=..., api_key=...)`` returns a ``NeverBounceState``:
address → result (default "valid"), and counts. As NeverBounce does:

* errors come back as **HTTP 200** with ``status`` ``auth_failure`` (a wrong ``key``),
  ``throttle_triggered`` (over ``rate_per_second``), ``temp_unavail``, ``general_failure``
  (``credits`` used up: "Insufficient credits") — inject others with ``sim.fail(CHECK_PATH, failure(...))``;
* every single check is billed, duplicates included (``billed`` counts them, ``checks`` per address);
* ``/v4/jobs/create`` (input_location "supplied") bills one credit per address and queues the job; jobs are
  verified at ``bulk_per_second`` addresses a second, one after another, so ``/v4/jobs/status`` says
  ``running`` until then and ``complete`` after; ``/v4/jobs/results`` pages the results.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.sim.server import SimRequest, SimResponse, Simulator

CHECK_PATH = "/v4/single/check"
JOBS_CREATE_PATH = "/v4/jobs/create"
JOBS_STATUS_PATH = "/v4/jobs/status"
JOBS_RESULTS_PATH = "/v4/jobs/results"
_FLAGS = {"valid": ["has_dns", "has_dns_mx", "smtp_connectable"], "catchall": ["has_dns", "accepts_all"],
          "invalid": ["has_dns"], "disposable": ["disposable_email"], "unknown": []}


def failure(status: str, message: str = "") -> SimResponse:
    """An error inside HTTP 200, as NeverBounce answers them."""
    return SimResponse(200, {"status": status, "message": message or status, "execution_time": 1})


@dataclass
class _Job:
    emails: list[str]
    done_at: float


@dataclass
class NeverBounceState:
    sim: Simulator
    api_key: str
    results: dict[str, str]
    credits: int | None = None
    bulk_per_second: float = 1000.0
    billed: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    bulk_verified: Counter[str] = field(default_factory=Counter)
    jobs: dict[int, _Job] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1001))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queue_free_at: float = 0.0

    def _key(self, request: SimRequest) -> str | None:
        key = request.arg("key")
        if key is None and request.body:
            try:
                key = (request.json() or {}).get("key")
            except ValueError:
                key = None
        return key

    def _bill(self, n: int) -> bool:
        with self._lock:
            if self.credits is not None and self.billed + n > self.credits:
                return False
            self.billed += n
            return True

    def result_of(self, address: str) -> str:
        return self.results.get(address.lower(), "valid")

    def check(self, request: SimRequest) -> SimResponse:
        if self._key(request) != self.api_key:
            return failure("auth_failure", "Invalid API key 'secret_…'")
        address = (request.arg("email") or "").lower()
        if not self._bill(1):
            return failure("general_failure", "Insufficient credits")
        with self._lock:
            self.checks[address] += 1
        result = self.result_of(address)
        return SimResponse(200, {"status": "success", "result": result, "flags": _FLAGS.get(result, []),
                                 "suggested_correction": "", "execution_time": 285})

    def create(self, request: SimRequest) -> SimResponse:
        body = request.json() or {}
        if self._key(request) != self.api_key:
            return failure("auth_failure", "Invalid API key")
        rows = body.get("input") or []
        emails = [str(r.get("email") if isinstance(r, dict) else r[0]).lower() for r in rows]
        if not emails:
            return failure("general_failure", "input is empty")
        if not self._bill(len(emails)):
            return failure("general_failure", "Insufficient credits")
        with self._lock:
            job_id = next(self._ids)
            start = max(time.monotonic(), self._queue_free_at)
            done_at = start + len(emails) / self.bulk_per_second
            self._queue_free_at = done_at
            self.jobs[job_id] = _Job(emails, done_at)
            for e in emails:
                self.bulk_verified[e] += 1
        return SimResponse(200, {"status": "success", "job_id": job_id, "execution_time": 20})

    def _job(self, request: SimRequest) -> _Job | SimResponse:
        if self._key(request) != self.api_key:
            return failure("auth_failure", "Invalid API key")
        job = self.jobs.get(int(request.arg("job_id", "0") or 0))
        return job if job is not None else failure("general_failure", "job not found")

    def status(self, request: SimRequest) -> SimResponse:
        job = self._job(request)
        if isinstance(job, SimResponse):
            return job
        complete = time.monotonic() >= job.done_at
        return SimResponse(200, {"status": "success", "job_status": "complete" if complete else "running",
                                 "total": {"records": len(job.emails)},
                                 "percent_complete": 100 if complete else 50, "execution_time": 5})

    def read_results(self, request: SimRequest) -> SimResponse:
        job = self._job(request)
        if isinstance(job, SimResponse):
            return job
        if time.monotonic() < job.done_at:
            return failure("general_failure", "job is not complete")
        per_page = int(request.arg("items_per_page", "10") or 10)
        page = int(request.arg("page", "1") or 1)
        items = job.emails[(page - 1) * per_page : page * per_page]
        pages = max(1, -(-len(job.emails) // per_page))
        return SimResponse(200, {
            "status": "success", "total_results": len(job.emails), "total_pages": pages, "query": {},
            "results": [{"data": {"email": e}, "verification": {"result": self.result_of(e),
                                                                 "flags": _FLAGS.get(self.result_of(e), [])}}
                        for e in items],
        })


def install(
    sim: Simulator,
    results: dict[str, str] | None = None,
    *,
    api_key: str = "sim-neverbounce-key",
    credits: int | None = None,
    rate_per_second: float | None = 10.0,
    latency: float = 0.0,
    bulk_per_second: float = 1000.0,
) -> NeverBounceState:
    state = NeverBounceState(sim=sim, api_key=api_key, results={k.lower(): v for k, v in (results or {}).items()},
                             credits=credits, bulk_per_second=bulk_per_second)
    sim.route("GET", CHECK_PATH, state.check)
    sim.route("POST", CHECK_PATH, state.check)
    sim.route("POST", JOBS_CREATE_PATH, state.create)
    sim.route("GET", JOBS_STATUS_PATH, state.status)
    sim.route("GET", JOBS_RESULTS_PATH, state.read_results)
    if rate_per_second:
        sim.rate_limit(CHECK_PATH, rate_per_second, lambda: failure("throttle_triggered", "Too many requests"))
    if latency:
        sim.set_latency(CHECK_PATH, latency)
    return state
