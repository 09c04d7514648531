"""Hunter.io v2: Domain Search (step 3 of the contact waterfall) and its verifier (when NeverBounce is not configured).

Wire format, statuses and credits: external-apis.md §2. Every call goes
through the gate, so a domain already searched — by this job before a crash,
or by the same owner's campaign within the cache time — is never paid again.

Statuses as Hunter documents them: 202 → ask again later (retried), 403 →
rate limited (retried), 429 → credits used up (the breaker opens for
``hunter_credits_reset_hours``: nobody on this installation calls Hunter
until then), 451 → the person asked not to be processed (``forbidden``: the
address is dropped and suppressed by the caller), 401 → bad key (the
breaker opens at once; ``prospectpro doctor`` shows it).

Cost: Domain Search costs one credit per 1-10 addresses returned and nothing
when none is found, so ``cost_of`` reads the answer; we ask for at most
``LIMIT`` addresses, so one credit is what is reserved. The credit's price
comes from configuration (``hunter.credit`` in gate/prices.py, overridable).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from prospectpro.config import Settings
from prospectpro.domain.clock import utcnow
from prospectpro.domain.normalize import normalize_email
from prospectpro.gate.errors import ProviderError, ProviderErrorKind
from prospectpro.gate.prices import price
from prospectpro.gate.types import GateRequest, ProviderSpec, Verdict
from prospectpro.providers.protocols import CallContext

NAME = "hunter"
DOMAIN_SEARCH_PATH = "/v2/domain-search"
VERIFIER_PATH = "/v2/email-verifier"
CREDIT_PRICE = "hunter.credit"
LIMIT = 10  # addresses asked per domain: one credit at most
VERIFIER_CREDITS = Decimal("0.5")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Hunter's verifier statuses mapped to the lead's email_status (webmail: a deliverable free-mail box).
_VERIFIER_STATUS = {
    "valid": "valid",
    "invalid": "invalid",
    "accept_all": "accept_all",
    "webmail": "valid",
    "disposable": "disposable",
    "unknown": "unknown",
}


def spec(settings: Settings) -> ProviderSpec | None:
    """Hunter as the gate calls it; None without an API key (the step is then not offered)."""
    key = settings.hunter_api_key.strip()
    if not key:
        return None
    return ProviderSpec(
        name=NAME,
        base_url=settings.hunter_base_url.rstrip("/"),
        secrets=(key,),
        headers={"X-API-KEY": key},
        rate_per_second=settings.hunter_rate_per_second,
        shared_per_minute=500,  # Hunter's 500 requests a minute, for the whole installation
        shared_burst=max(1, int(settings.hunter_rate_per_second)),
        concurrency=max(8, math.ceil(settings.hunter_rate_per_second * 0.6)),  # 15/s at 400 ms needs 6+ in flight
        classify=classify,
        quota_seconds=settings.hunter_credits_reset_hours * 3600,
        paid=True,
    )


def classify(response: httpx.Response) -> Verdict:
    code = response.status_code
    if code in (200, 201, 204):
        return Verdict.success()
    text = _error_text(response)
    if code == 202:  # a verification still running: the same call again counts once
        return Verdict(retry=True, retry_after=1.0, kind=ProviderErrorKind.unavailable, message=f"HTTP 202 {text}")
    if code == 222:  # the mail server answered oddly: Hunter says retry later
        return Verdict(retry=True, kind=ProviderErrorKind.unavailable, message=f"HTTP 222 {text}")
    if code == 401:
        return Verdict(kind=ProviderErrorKind.auth, message=f"HTTP 401 {text}")
    if code == 403:  # Hunter's rate limit (not an auth failure)
        return Verdict(retry=True, kind=ProviderErrorKind.rate_limited, message=f"HTTP 403 {text}")
    if code == 429:  # usage limit: credits used up until the plan resets
        return Verdict(kind=ProviderErrorKind.quota_exhausted, message=f"HTTP 429 {text}")
    if code == 451:
        return Verdict(kind=ProviderErrorKind.forbidden, message=f"HTTP 451 {text}")
    if code >= 500:
        return Verdict(retry=True, kind=ProviderErrorKind.unavailable, message=f"HTTP {code} {text}")
    return Verdict(kind=ProviderErrorKind.bad_request, message=f"HTTP {code} {text}")


def _error_text(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('id', '')}: {e.get('details', '')}" for e in errors if isinstance(e, dict))
    except Exception:  # not Hunter's error envelope: the status says enough
        return ""


def credit_price(settings: Settings) -> Decimal:
    return price(CREDIT_PRICE, settings.prices)


def search_cost(settings: Settings, body: Any) -> Decimal:
    """Hunter's credit rule: one credit per 1-10 addresses returned, nothing when none."""
    emails = ((body or {}).get("data") or {}).get("emails") or []
    return credit_price(settings) * math.ceil(len(emails) / 10)


@dataclass(frozen=True, slots=True)
class HunterEmail:
    address: str
    kind: str  # "role" (Hunter's generic) | "personal"
    confidence: int | None
    first_name: str | None
    last_name: str | None
    position: str | None
    seniority: str | None
    verified_status: str | None  # Hunter's own verification, when recent enough to count
    verified_on: str | None
    sources: tuple[str, ...]  # the pages Hunter found it on

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "kind": self.kind,
            "confidence": self.confidence,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "position": self.position,
            "seniority": self.seniority,
            "verified_status": self.verified_status,
            "verified_on": self.verified_on,
            "sources": list(self.sources),
        }


def domain_search(ctx: CallContext, settings: Settings, domain: str, *, personal: bool) -> tuple[list[HunterEmail], Decimal, bool]:
    """Hunter's addresses for ``domain`` (generic only unless ``personal``): (addresses, cost to this job, reused).

    Raises OverBudget (not called) or ProviderError.
    """
    params: dict[str, Any] = {"domain": domain, "limit": LIMIT}
    if not personal:
        params["type"] = "generic"  # role addresses only: fewer returned, fewer credits
    request = GateRequest(
        NAME,
        "domain_search",
        key=dict(params),
        max_cost=credit_price(settings),
        cost_of=lambda body: search_cost(settings, body),
    )

    def fetch() -> Any:
        return _json(ctx.gate.http(NAME).request("GET", DOMAIN_SEARCH_PATH, params=params))

    answer = ctx.gate.call(ctx, request, fetch)
    return parse_emails(answer.body, settings, utcnow()), answer.cost, answer.reused


def verify(ctx: CallContext, settings: Settings, address: str) -> tuple[str, Decimal]:
    """Hunter's verifier (used when only Hunter is configured): (the lead's email_status, cost)."""
    request = GateRequest(
        NAME,
        "email_verifier",
        key={"email": address},
        max_cost=credit_price(settings) * VERIFIER_CREDITS,
        # Nothing is charged when Hunter verifies nothing.
        cost_of=lambda body: Decimal(0)
        if not ((body or {}).get("data") or {}).get("status")
        else credit_price(settings) * VERIFIER_CREDITS,
    )

    def fetch() -> Any:
        return _json(ctx.gate.http(NAME).request("GET", VERIFIER_PATH, params={"email": address}))

    answer = ctx.gate.call(ctx, request, fetch)
    status = str(((answer.body or {}).get("data") or {}).get("status") or "").lower()
    return _VERIFIER_STATUS.get(status, "unknown"), answer.cost


def _json(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        raise ProviderError(NAME, ProviderErrorKind.malformed, "answer is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise ProviderError(NAME, ProviderErrorKind.malformed, "answer has no data object")
    return body


def parse_emails(body: Any, settings: Settings, now: datetime) -> list[HunterEmail]:
    """The addresses of a Domain Search answer, best first (confidence); unusable ones dropped."""
    data = (body or {}).get("data") or {}
    found: list[HunterEmail] = []
    oldest = (now - timedelta(days=settings.hunter_verified_days)).date()
    for raw in data.get("emails") or []:
        if not isinstance(raw, dict):
            continue
        address = normalize_email(str(raw.get("value") or ""))
        if address is None:
            continue
        verification = raw.get("verification") or {}
        status = str(verification.get("status") or "").lower() or None
        checked = _date(verification.get("date"))
        recent = status == "valid" and checked is not None and checked >= oldest
        confidence = raw.get("confidence")
        found.append(
            HunterEmail(
                address=address,
                kind="personal" if raw.get("type") == "personal" else "role",
                confidence=int(confidence) if isinstance(confidence, int | float) else None,
                first_name=_text(raw.get("first_name")),
                last_name=_text(raw.get("last_name")),
                position=_text(raw.get("position")),
                seniority=_text(raw.get("seniority")),
                verified_status="valid" if recent else None,
                verified_on=checked.isoformat() if recent and checked else None,
                sources=tuple(
                    str(s.get("uri")) for s in raw.get("sources") or [] if isinstance(s, dict) and s.get("uri")
                )[:5],
            )
        )
    found.sort(key=lambda e: -(e.confidence or 0))
    return found


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def claimed_address(error: ProviderError) -> str | None:
    """The address a 451 names, when its message carries one (Hunter's details say which)."""
    for word in _ADDRESS.findall(error.message):
        address = normalize_email(word)
        if address is not None:
            return address
    return None
