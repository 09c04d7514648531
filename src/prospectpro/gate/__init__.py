"""The gate: the one place every external call goes through.

Two layers, used together by every provider:

* ``Gate.call(ctx, request, fn)`` — the ledger layer. Looks the request up in
  ``api_calls`` (an answer this job already recorded is returned as is; one
  the same owner recorded within the answer-cache time is reused at no cost),
  reserves ``request.max_cost`` against the campaign's budget and the owner's
  monthly cap in one locked transaction (``OverBudget`` when it would cross
  either: the call is not made), runs ``fn`` (which makes the HTTP call),
  and settles the row with the real cost and the (redacted) answer.
* ``Gate.http(provider)`` — the transport layer: one ``ProviderClient`` per
  provider, shared by every job of the process, with its rate limit and
  concurrency cap, timeouts, response size cap, retries with backoff and
  jitter that honour ``Retry-After``, a circuit breaker, and redaction of the
  provider's secrets from everything it raises or logs.

A provider module (``providers/google_places.py``…) declares a
``ProviderSpec`` (its base URL, secrets, limits and how to read its answers:
``classify``) and makes each call as::

    answer = ctx.gate.call(ctx, GateRequest("google", "text_search", key=..., max_cost=price),
                           lambda: client.request("POST", "/v1/places:searchText", json=body).json())

Names of providers are the shared source names: ``osm``, ``google``,
``overture``, ``website``, ``hunter``, ``neverbounce`` (plus ``nominatim`` and
``overpass`` for the services behind live ``osm``).
"""

from __future__ import annotations

from prospectpro.gate.errors import OverBudget, ProviderError, ProviderErrorKind
from prospectpro.gate.types import Answer, GateRequest, ProviderSpec, Verdict

__all__ = [
    "Answer",
    "GateRequest",
    "OverBudget",
    "ProviderError",
    "ProviderErrorKind",
    "ProviderSpec",
    "Verdict",
]
