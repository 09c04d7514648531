"""Hunter.io v2 as external-apis.md §2 describes it: Domain Search and the Email Verifier.

``install(sim, domains=..., api_key=...)`` adds the routes and returns a
``HunterState``: the dataset (domain → addresses) and per-request counts.
What it enforces, as Hunter does:

* the key (``api_key=`` query or ``X-API-KEY``): else 401 ``authentication_failed``;
* ``domain`` required (400 ``wrong_params``); ``limit`` 1..100 (default 10), ``offset``, ``type=personal|generic``;
* its rate limit (``rate_per_second``, default 15/s) answered with **403**, credits (``credits``, None:
  unlimited) answered with **429** once used up; Domain Search charges one credit per 1-10 addresses
  returned and nothing when none (``credits_used`` counts them);
* ``claimed``: addresses whose owner asked not to be processed — the verifier answers **451**
  ``claimed_email`` for them, and a domain in ``claimed_domains`` answers 451 on Domain Search;
* ``pending``: addresses the verifier answers **202** for that many times first.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.sim.server import SimRequest, SimResponse, Simulator

DOMAIN_SEARCH_PATH = "/v2/domain-search"
VERIFIER_PATH = "/v2/email-verifier"


def error(code: int, ident: str, details: str) -> SimResponse:
    return SimResponse(code, {"errors": [{"id": ident, "code": code, "details": details}]})


def email(
    value: str,
    *,
    kind: str = "generic",
    confidence: int = 90,
    first_name: str | None = None,
    last_name: str | None = None,
    position: str | None = None,
    seniority: str | None = None,
    verified: tuple[str, str] | None = None,  # (date, status)
) -> dict[str, Any]:
    """One Domain Search address as Hunter returns it."""
    return {
        "value": value,
        "type": kind,
        "confidence": confidence,
        "sources": [{"domain": value.split("@")[1], "uri": f"https://{value.split('@')[1]}/contact",
                     "extracted_on": "2026-01-02", "last_seen_on": "2026-11-01", "still_on_page": True}],
        "first_name": first_name,
        "last_name": last_name,
        "position": position,
        "seniority": seniority,
        "department": None,
        "linkedin": None,
        "twitter": None,
        "phone_number": None,
        "verification": {"date": verified[0], "status": verified[1]} if verified else {"date": None, "status": None},
    }


@dataclass
class HunterState:
    sim: Simulator
    api_key: str
    domains: dict[str, list[dict[str, Any]]]
    credits: float | None = None
    credits_used: float = 0.0
    claimed: set[str] = field(default_factory=set)
    claimed_domains: set[str] = field(default_factory=set)
    pending: dict[str, int] = field(default_factory=dict)
    verifier: dict[str, str] = field(default_factory=dict)  # address → status (default "valid")
    searches: Counter[str] = field(default_factory=Counter)  # domain → Domain Search calls answered 200
    verifications: Counter[str] = field(default_factory=Counter)

    def _key_ok(self, request: SimRequest) -> bool:
        return (request.arg("api_key") or request.headers.get("x-api-key")) == self.api_key

    def _credits_left(self) -> bool:
        return self.credits is None or self.credits_used < self.credits

    def domain_search(self, request: SimRequest) -> SimResponse:
        if not self._key_ok(request):
            return error(401, "authentication_failed", "No user found for the API key supplied")
        domain = (request.arg("domain") or "").lower()
        if not domain:
            return error(400, "wrong_params", "You are missing the domain parameter")
        if not self._credits_left():
            return error(429, "too_many_requests", "You have reached your usage limit. Upgrade your plan.")
        if domain in self.claimed_domains:
            return error(451, "claimed_email", f"{sorted(self.claimed)[0] if self.claimed else domain}: "
                                               "the person asked for their data not to be processed")
        limit = min(100, max(1, int(request.arg("limit", "10") or 10)))
        offset = int(request.arg("offset", "0") or 0)
        kind = request.arg("type")
        emails = [e for e in self.domains.get(domain, []) if kind is None or e["type"] == kind]
        page = emails[offset : offset + limit]
        self.credits_used += math.ceil(len(page) / 10)
        self.searches[domain] += 1
        return SimResponse(200, {
            "data": {"domain": domain, "disposable": False, "webmail": False, "accept_all": False,
                     "pattern": "{first}", "organization": domain.split(".")[0].title(), "emails": page},
            "meta": {"results": len(emails), "limit": limit, "offset": offset,
                     "params": {"domain": domain, "type": kind}},
        })

    def email_verifier(self, request: SimRequest) -> SimResponse:
        if not self._key_ok(request):
            return error(401, "authentication_failed", "No user found for the API key supplied")
        address = (request.arg("email") or "").lower()
        if not address:
            return error(400, "wrong_params", "You are missing the email parameter")
        if address in self.claimed:
            return error(451, "claimed_email", f"{address}: the person asked for their data not to be processed")
        if not self._credits_left():
            return error(429, "too_many_requests", "You have reached your usage limit.")
        if self.pending.get(address, 0) > 0:
            self.pending[address] -= 1
            return SimResponse(202, {"data": {"status": None, "email": address}})
        self.credits_used += 0.5
        self.verifications[address] += 1
        status = self.verifier.get(address, "valid")
        return SimResponse(200, {"data": {"status": status, "result": "deliverable", "score": 91, "email": address},
                                 "meta": {"params": {"email": address}}})


def install(
    sim: Simulator,
    domains: dict[str, list[dict[str, Any]]] | None = None,
    *,
    api_key: str = "sim-hunter-key",
    credits: float | None = None,
    rate_per_second: float | None = 15.0,
    latency: float = 0.0,
) -> HunterState:
    state = HunterState(sim=sim, api_key=api_key, domains={k.lower(): v for k, v in (domains or {}).items()},
                        credits=credits)
    sim.route("GET", DOMAIN_SEARCH_PATH, state.domain_search)
    sim.route("GET", VERIFIER_PATH, state.email_verifier)
    if rate_per_second:
        sim.rate_limit("/v2/", rate_per_second, lambda: error(403, "too_many_requests", "Rate limit reached"))
    if latency:
        sim.set_latency("/v2/", latency)
    return state
