"""NeverBounce v4: verification of the address a lead's waterfall chose (step 4).

Wire format: external-apis.md §3. NeverBounce bills every call, duplicates
included, and has no idempotency of its own: the gate's ledger is what keeps
us from verifying one address twice (a job's own answer, or the owner's
answer within the cache time, is returned instead of calling).

Errors arrive inside HTTP 200 (``status`` other than ``success``), so
``classify`` reads the body before the result: ``throttle_triggered`` and
``temp_unavail`` are retried, ``auth_failure``/``bad_referrer`` open the
breaker, a ``general_failure`` about credits is ``quota_exhausted``.

Results map to the lead's ``email_status``: valid | invalid | accept_all
(NeverBounce's catchall) | disposable | unknown. An address nobody verified
stays ``unverified`` (the waterfall's default), never "valid".

A campaign with more than ``neverbounce_bulk_min`` addresses to verify uses
the bulk jobs API (create, poll, read results), as NeverBounce asks: the
creation is the paid, ledgered call (keyed by the addresses), the results
one free ledgered call keyed by the job id — so a worker that dies while
the job runs resumes polling the same job instead of paying for a new one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import httpx

from prospectpro.config import Settings
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.prices import price
from prospectpro.gate.types import GateRequest, ProviderSpec, Verdict
from prospectpro.providers.protocols import CallContext

NAME = "neverbounce"
CHECK_PATH = "/v4/single/check"
JOBS_CREATE_PATH = "/v4/jobs/create"
JOBS_STATUS_PATH = "/v4/jobs/status"
JOBS_RESULTS_PATH = "/v4/jobs/results"
PRICE = "neverbounce.verification"
STATUSES = ("valid", "invalid", "accept_all", "disposable", "unknown", "unverified")
_RESULT = {"valid": "valid", "invalid": "invalid", "catchall": "accept_all", "disposable": "disposable", "unknown": "unknown"}
_RETRIED = {"throttle_triggered": ProviderErrorKind.rate_limited, "temp_unavail": ProviderErrorKind.unavailable}
_AUTH = frozenset({"auth_failure", "bad_referrer"})
_RESULTS_PAGE = 1000
_BULK_WAIT_SECONDS = 600.0  # a bulk job not done by then fails the step (the job's next attempt polls it again)


def spec(settings: Settings) -> ProviderSpec | None:
    key = settings.neverbounce_api_key.strip()
    if not key:
        return None
    return ProviderSpec(
        name=NAME,
        base_url=settings.neverbounce_base_url.rstrip("/"),
        secrets=(key,),
        params={"key": key},
        rate_per_second=settings.neverbounce_rate_per_second,
        concurrency=max(8, math.ceil(settings.neverbounce_rate_per_second * 0.5)),
        classify=classify,
        paid=True,
    )


def classify(response: httpx.Response) -> Verdict:
    code = response.status_code
    if code >= 500:
        return Verdict(retry=True, kind=ProviderErrorKind.unavailable, message=f"HTTP {code}")
    if code == 429:
        return Verdict(retry=True, kind=ProviderErrorKind.rate_limited, message="HTTP 429")
    if code in (401, 403):
        return Verdict(kind=ProviderErrorKind.auth, message=f"HTTP {code}")
    if code >= 300:
        return Verdict(kind=ProviderErrorKind.bad_request, message=f"HTTP {code}")
    try:
        body = response.json()
    except ValueError:
        return Verdict(retry=True, kind=ProviderErrorKind.malformed, message="answer is not JSON")
    if not isinstance(body, dict):
        return Verdict(kind=ProviderErrorKind.malformed, message="answer is not an object")
    status = str(body.get("status") or "")
    if status == "success":
        return Verdict.success()
    message = f"{status or 'no status'}: {str(body.get('message') or '')[:300]}"
    if status in _RETRIED:
        return Verdict(retry=True, kind=_RETRIED[status], message=message)
    if status in _AUTH:
        return Verdict(kind=ProviderErrorKind.auth, message=message)
    if "credit" in message.lower():
        return Verdict(kind=ProviderErrorKind.quota_exhausted, message=message)
    return Verdict(kind=ProviderErrorKind.bad_request, message=message)


def verification_price(settings: Settings) -> Decimal:
    return price(PRICE, settings.prices)


def email_status(result: Any) -> str:
    """NeverBounce's result as the lead's email_status (catchall → accept_all); anything else is unknown."""
    return _RESULT.get(str(result or "").lower(), "unknown")


def check(ctx: CallContext, settings: Settings, address: str) -> tuple[str, Decimal, bool]:
    """single/check of one address: (email_status, cost to this job, reused). Raises OverBudget / ProviderError."""
    request = GateRequest(NAME, "single_check", key={"email": address}, max_cost=verification_price(settings))

    def fetch() -> Any:
        response = ctx.gate.http(NAME).request("GET", CHECK_PATH, params={"email": address})
        body = _json(response)
        return {"result": body.get("result"), "flags": body.get("flags") or []}

    answer = ctx.gate.call(ctx, request, fetch)
    return email_status((answer.body or {}).get("result")), answer.cost, answer.reused


def bulk_check(
    ctx: CallContext,
    settings: Settings,
    addresses: Sequence[str],
    *,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, str], Decimal]:
    """The bulk jobs API for many addresses: ({address: email_status}, cost to this job).

    One paid call creates the job (reserving a verification per address),
    then a free ledgered call polls until it is complete and reads every
    page of results.
    """
    emails = sorted(set(addresses))
    create = GateRequest(
        NAME, "bulk_create", key={"emails": emails}, max_cost=verification_price(settings) * len(emails)
    )

    def make_job() -> Any:
        body = {
            "input_location": "supplied",
            "input": [{"email": e} for e in emails],
            "auto_parse": 1,
            "auto_start": 1,
        }
        answer = _json(ctx.gate.http(NAME).request("POST", JOBS_CREATE_PATH, json=body))
        job_id = answer.get("job_id")
        if job_id is None:
            raise ProviderError(NAME, ProviderErrorKind.malformed, "jobs/create answered no job_id")
        return {"job_id": job_id}

    created = ctx.gate.call(ctx, create, make_job)
    job_id = (created.body or {}).get("job_id")
    results = GateRequest(NAME, "bulk_results", key={"job_id": job_id}, max_cost=Decimal(0))
    read = ctx.gate.call(
        ctx, results, lambda: _bulk_results(ctx, settings, job_id, sleep=sleep, should_stop=should_stop)
    )
    found = {str(k): email_status(v) for k, v in dict(read.body or {}).items()}
    return {e: found.get(e.lower(), "unknown") for e in emails}, created.cost


def _bulk_results(
    ctx: CallContext, settings: Settings, job_id: Any, *, sleep: Callable[[float], None], should_stop: Callable[[], bool]
) -> dict[str, str]:
    client = ctx.gate.http(NAME)
    waited = 0.0
    while True:
        status = _json(client.request("GET", JOBS_STATUS_PATH, params={"job_id": job_id}))
        job_status = str(status.get("job_status") or "")
        if job_status == "complete":
            break
        if job_status in ("failed", "under_review"):
            raise ProviderError(NAME, ProviderErrorKind.unavailable, f"bulk job {job_id} is {job_status}")
        if should_stop() or waited > _BULK_WAIT_SECONDS:
            raise ProviderError(NAME, ProviderErrorKind.timeout, f"bulk job {job_id} not complete ({job_status})")
        sleep(settings.neverbounce_poll_seconds)
        waited += settings.neverbounce_poll_seconds
    out: dict[str, str] = {}
    page = 1
    while True:
        params = {"job_id": job_id, "page": page, "items_per_page": _RESULTS_PAGE}
        body = _json(client.request("GET", JOBS_RESULTS_PATH, params=params))
        for item in body.get("results") or []:
            email = str(((item or {}).get("data") or {}).get("email") or "").lower()
            if email:
                out[email] = str(((item or {}).get("verification") or {}).get("result") or "unknown")
        if page >= int(body.get("total_pages") or 1):
            return out
        page += 1


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(NAME, ProviderErrorKind.malformed, "answer is not JSON") from None
    if not isinstance(body, dict):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "answer is not an object")
    return body
