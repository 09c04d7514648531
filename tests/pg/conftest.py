"""PostgreSQL-only tests: LISTEN/NOTIFY wake-ups, the restart, pruning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prospectpro.store.db import Database


@pytest.fixture
def other_process(pg_db: Database) -> Iterator[Database]:
    """A second handle on the same database: its notifier hears nothing of ``pg_db``'s commits, as in another process."""
    other = Database(pg_db.url)
    yield other
    other.dispose()
