"""The browser the tests drive reaches no internet name either: it fails at once, it does not hang."""

from __future__ import annotations

import time
from typing import Any

import pytest


def test_the_test_browser_cannot_resolve_internet_names(chromium: Any) -> None:
    context = chromium.new_context()
    page = context.new_page()
    started = time.monotonic()
    with pytest.raises(Exception, match="ERR_NAME_NOT_RESOLVED"):
        page.goto("https://tile.openstreetmap.org/0/0/0.png", timeout=10_000)
    assert time.monotonic() - started < 5
    context.close()
