"""Enrichment steps plugged in by tests through PROSPECTPRO_EXTRA_ENRICHERS."""

from __future__ import annotations

import os
import time

from prospectpro.domain.business import Business
from prospectpro.providers.protocols import Enrichment


class SlowEnricher:
    """Widens the window of the enriching stage so a test can kill or cancel inside it."""

    name = "slow"

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay if delay is not None else float(os.environ.get("PROSPECTPRO_TEST_ENRICH_DELAY", "0.2"))

    def enrich(self, business: Business, found: Enrichment) -> Enrichment:
        time.sleep(self.delay)
        return found


class FailingEnricher:
    """A provider that is always down."""

    name = "failing"

    def enrich(self, business: Business, found: Enrichment) -> Enrichment:
        raise RuntimeError("simulated provider outage")
