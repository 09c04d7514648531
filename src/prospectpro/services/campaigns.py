"""Campaigns as the edges (CLI, API, web) use them: prepare, look up, list leads.

Submitting is ``services.submissions``.

Every read is scoped by owner: another owner's id is "not found", exactly
like an id that does not exist.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.business_types import BusinessType, resolve_business_type
from prospectpro.domain.campaign import CampaignRequest
from prospectpro.domain.clock import iso
from prospectpro.domain.tiers import money_text
from prospectpro.errors import NotFound
from prospectpro.places.locations import resolve_location
from prospectpro.store import campaigns as campaign_store
from prospectpro.store import leads as lead_store
from prospectpro.store.db import Database
from prospectpro.store.leads import LEAD_COLUMNS


@dataclass(frozen=True)
class PreparedCampaign:
    """A request whose type and location resolved: it can be enqueued."""

    request: CampaignRequest
    business_type: BusinessType
    area: Area
    notify_url: str | None = None

    @functools.cached_property
    def digest(self) -> str:
        """What an Idempotency-Key must be reused with."""
        body = {
            **self.request.model_dump(mode="json"),
            "budget_limit": f"{self.request.budget_limit:.4f}",  # 5 and 5.00 are the same request
            "notify_url": self.notify_url,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def prepare_campaign(
    db: Database, request: CampaignRequest, *, notify_url: str | None = None, settings: Settings | None = None
) -> PreparedCampaign:
    """Everything that can reject a campaign, before anything is written (``settings``: live places too)."""
    return PreparedCampaign(
        request=request,
        business_type=resolve_business_type(request.business_type),
        area=resolve_location(db, request.location, settings=settings),
        notify_url=notify_url,
    )


def get_campaign(db: Database, campaign_id: str, owner_id: str) -> dict[str, Any]:
    with db.read() as conn:
        found = campaign_store.owned_campaign(conn, campaign_id, owner_id)
    if found is None:
        raise NotFound(f"campaign {campaign_id} not found")
    row, job_id = found
    m = row._mapping
    return {
        "id": m["id"],
        "job_id": job_id,
        "business_type": m["business_type"],
        "location": m["location"],
        "max_results": m["max_results"],
        "budget_limit": str(m["budget_limit"]),
        "min_score": m["min_score"],
        "tier": m["tier"],
        "include_delivered": bool(m["include_delivered"]),
        "status": m["status"],
        "results_count": m["results_count"],
        "total_cost": money_text(m["total_cost"]),  # "0.105" on both stores (PostgreSQL says 0.1050)
        "created_at": iso(m["created_at"]),
        "updated_at": iso(m["updated_at"]),
        "completed_at": iso(m["completed_at"]),
    }


def lead_to_public(row: Any) -> dict[str, Any]:
    m = row._mapping
    lead = {"id": m["id"], **{column: m[column] for column in LEAD_COLUMNS}}
    lead["cost"] = str(lead["cost"])  # money leaves as a decimal string, never a float
    lead["google_expires_at"] = iso(lead["google_expires_at"])
    return lead


def list_leads(
    db: Database, campaign_id: str, owner_id: str, *, limit: int | None = None, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A campaign's leads, best first (404 for another owner's campaign)."""
    get_campaign(db, campaign_id, owner_id)
    with db.read() as conn:
        rows, total = lead_store.list_leads(conn, owner_id, campaign_id, limit=limit, offset=offset)
    return [lead_to_public(r) for r in rows], total
