"""Enrichment steps plugged in by tests through PROSPECTPRO_EXTRA_ENRICHERS."""

from __future__ import annotations

import os
import threading
import time

from prospectpro.domain.business import Business
from prospectpro.providers.protocols import CallContext, Enrichment


class SlowEnricher:
    """Widens the window of the enriching stage so a test can kill or cancel inside it."""

    name = "slow"

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay if delay is not None else float(os.environ.get("PROSPECTPRO_TEST_ENRICH_DELAY", "0.2"))

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        time.sleep(self.delay)
        return found


class FailingEnricher:
    """A provider that is always down."""

    name = "failing"

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        raise RuntimeError("simulated provider outage")


class HangingEnricher:
    """A provider call that does not return until the test lets it (then it raises, or passes).

    The first ``after`` calls pass straight through; ``entered`` is set once a
    call hangs. Each call after ``release`` is set hangs no more.
    """

    name = "hanging"

    def __init__(self, *, after: int = 0, fail: bool = False) -> None:
        self.after = after
        self.fail = fail
        self.entered = threading.Event()
        self.release = threading.Event()
        self._calls = 0
        self._lock = threading.Lock()

    def enrich(self, business: Business, found: Enrichment, ctx: CallContext) -> Enrichment:
        with self._lock:
            self._calls += 1
            if self._calls <= self.after:
                return found
        self.entered.set()
        self.release.wait()
        if self.fail:
            raise RuntimeError("simulated provider outage")
        return found
