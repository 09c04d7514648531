"""The campaign config: built once at submit, stored as the job's JSON, read back by attribute."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from prospectpro.config import Settings
from prospectpro.domain.area import Area
from prospectpro.domain.campaign import CampaignConfig, CampaignRequest, Notify, Tier
from prospectpro.places.importer import ensure_bundled_places
from prospectpro.services.submissions import submit_campaign
from prospectpro.store.db import Database
from prospectpro.store.schema import LOCAL_USER_ID

CONFIG = CampaignConfig(
    business_type="cafe",
    business_type_label="Cafe",
    tags=("amenity=cafe",),
    location="Helsinki",
    area=Area(latitude=60.17, longitude=24.94, radius_m=3000.0, label="Helsinki, Finland", country="FI"),
    max_results=7,
    budget_limit=Decimal("12.5000"),
    min_score=30,
    tier=Tier.professional,
    include_delivered=True,
    notify=Notify(url="https://hooks.example/x", secret="s3cret"),
)


def test_the_json_form_round_trips_and_keeps_money_exact() -> None:
    stored = json.loads(json.dumps(CONFIG.to_dict()))  # as the job's config column holds it
    assert stored["budget_limit"] == "12.5000" and stored["tier"] == "professional"
    assert stored["notify"] == {"url": "https://hooks.example/x", "secret": "s3cret"}
    assert CampaignConfig.from_dict(stored) == CONFIG
    without = CampaignConfig.from_dict({k: v for k, v in stored.items() if k != "notify"})
    assert without.notify is None and "notify" not in without.to_dict()


def test_a_config_lacking_what_a_campaign_needs_is_refused_with_the_keys() -> None:
    stored = CONFIG.to_dict()
    del stored["tags"], stored["min_score"]
    with pytest.raises(ValueError, match="job config lacks tags, min_score"):
        CampaignConfig.from_dict(stored)


def test_submit_stores_the_config_the_stages_read_back(db: Database) -> None:
    ensure_bundled_places(db)
    request = CampaignRequest.model_validate(
        {"business_type": "coffee shop", "location": "Helsinki", "max_results": 9, "budget_limit": "2.50"}
    )
    job = submit_campaign(db, Settings(), LOCAL_USER_ID, request).job
    config = CampaignConfig.from_dict(job.config)
    assert (config.business_type, config.tags, config.max_results) == ("cafe", ("amenity=cafe",), 9)
    assert config.budget_limit == Decimal("2.50") and config.tier is Tier.base and config.include_delivered is False
    assert config.location == "Helsinki" and config.area.label.startswith("Helsinki")
    assert config.notify is None
    assert config.to_dict() == job.config  # the same JSON as before the typed model
