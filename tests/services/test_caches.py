"""The submit path's caches: recently authenticated tokens, and the parsed localities.

A change made in this process is seen at once; one made by another process
(another API process, the CLI) within the cache's period. "Another process" is
a real subprocess here, so that this process's cache is not told.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cachetools import TTLCache
from sqlalchemy import update

from prospectpro.errors import InvalidInput
from prospectpro.places import locations
from prospectpro.places.importer import import_pbf
from prospectpro.places.locations import resolve_location
from prospectpro.services import users
from prospectpro.services.users import authenticate, create_user, recently_authenticated, revoke_user
from prospectpro.store import migrate
from prospectpro.store.db import Database
from prospectpro.store.schema import users as users_table

ROOT = Path(__file__).parents[2]


def run_python(script: str, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# -- recently authenticated tokens ----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The module's token cache, same size and period, on a clock the test moves."""
    fake = FakeClock()
    cache: TTLCache[tuple[str, str], users.Principal] = TTLCache(
        maxsize=users._RECENT.maxsize, ttl=users.AUTH_CACHE_SECONDS, timer=fake
    )
    monkeypatch.setattr(users, "_RECENT", cache)
    return fake


def test_the_token_cache_keeps_entries_for_auth_cache_seconds() -> None:
    assert users._RECENT.ttl == users.AUTH_CACHE_SECONDS == 1.0


def test_a_revoke_in_another_process_is_honoured_by_the_cache_within_its_period(db: Database, clock: FakeClock) -> None:
    principal, key = create_user(db, "carol")
    assert recently_authenticated(db, key) is None  # nothing cached before the first lookup
    assert authenticate(db, key) == principal
    assert recently_authenticated(db, key) == principal

    run_python(
        """
        import sys
        from prospectpro.services.users import revoke_user
        from prospectpro.store.db import Database
        revoke_user(Database(sys.argv[1]), sys.argv[2])
        """,
        db.url,
        "carol",
    )
    # This process was not told: the cache still answers (that is the documented window)...
    assert recently_authenticated(db, key) == principal
    # ... but a lookup in the store refuses the key.
    assert authenticate(db, key) is None
    clock.now += users.AUTH_CACHE_SECONDS / 2
    assert recently_authenticated(db, key) == principal
    clock.now += users.AUTH_CACHE_SECONDS / 2 + 0.01
    assert recently_authenticated(db, key) is None
    assert authenticate(db, key) is None
    assert recently_authenticated(db, key) is None  # a refused lookup caches nothing


def test_the_real_cache_forgets_a_token_revoked_elsewhere_after_auth_cache_seconds(db: Database) -> None:
    principal, key = create_user(db, "dave")
    other = Database(db.url)  # another handle, writing the revoke directly: this process's cache is not cleared
    try:
        assert authenticate(db, key) == principal
        with other.write() as conn:
            conn.execute(
                update(users_table).where(users_table.c.id == principal.user_id).values(revoked_at=datetime.now(UTC))
            )
        assert recently_authenticated(db, key) == principal
        assert authenticate(db, key) is None
        time.sleep(users.AUTH_CACHE_SECONDS + 0.15)
        assert recently_authenticated(db, key) is None
    finally:
        other.dispose()


def test_a_revoke_in_this_process_clears_the_cache_at_once(db: Database, clock: FakeClock) -> None:
    principal, key = create_user(db, "erin")
    bystander, bystander_key = create_user(db, "frank")
    assert authenticate(db, key) == principal
    assert authenticate(db, bystander_key) == bystander
    revoke_user(db, "erin")
    assert recently_authenticated(db, key) is None
    assert authenticate(db, key) is None
    assert authenticate(db, bystander_key) == bystander  # only erin was revoked


def test_the_cache_is_per_store(tmp_path: Path, clock: FakeClock) -> None:
    one, two = (Database(f"sqlite:///{tmp_path / name}") for name in ("one.sqlite3", "two.sqlite3"))
    try:
        for db in (one, two):
            migrate.upgrade(db)
        principal, key = create_user(one, "gina")
        assert authenticate(one, key) == principal
        assert recently_authenticated(one, key) == principal
        assert recently_authenticated(two, key) is None  # a token of one store is nothing in another
        assert authenticate(two, key) is None
    finally:
        one.dispose()
        two.dispose()


# -- localities ------------------------------------------------------------------------


def osm_file(path: Path, name: str, *, node_id: int = 1, lat: float = 61.4978, lon: float = 23.7610) -> Path:
    """A one-town OSM extract (XML; the importer reads it like a .pbf)."""
    path.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="prospectpro-tests">
  <node id="{node_id}" version="1" timestamp="2024-01-01T00:00:00Z" lat="{lat}" lon="{lon}">
    <tag k="place" v="town"/>
    <tag k="name" v="{name}"/>
    <tag k="is_in:country_code" v="FI"/>
  </node>
</osm>
""",
        encoding="utf-8",
    )
    return path


IMPORT = """
import sys
from pathlib import Path
from prospectpro.places.importer import import_pbf
from prospectpro.store.db import Database
import_pbf(Database(sys.argv[1]), Path(sys.argv[2]), dataset=sys.argv[3])
"""


@pytest.fixture
def slow_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A version check period long enough that only forgetting (or the test) can end it."""
    monkeypatch.setattr(locations, "VERSION_CHECK_SECONDS", 3600.0)
    yield


def unknown(db: Database, text: str) -> bool:
    try:
        resolve_location(db, text)
    except InvalidInput:
        return True
    return False


def test_an_import_in_this_process_is_seen_at_once(db: Database, tmp_path: Path, slow_checks: None) -> None:
    assert unknown(db, "Testikylä")  # also caches the (empty) localities
    assert unknown(db, "Testville")
    import_pbf(db, osm_file(tmp_path / "extra.osm", "Testville"), dataset="extra")
    area = resolve_location(db, "Testville")
    assert area.label == "Testville" and area.country == "FI"
    assert area.latitude == pytest.approx(61.4978) and area.radius_m == locations.LOCALITY_KINDS["town"]
    # A second dataset adds to the first.
    import_pbf(db, osm_file(tmp_path / "more.osm", "Otherton", node_id=2, lat=62.0, lon=25.0), dataset="more")
    assert resolve_location(db, "Otherton").latitude == pytest.approx(62.0)
    assert resolve_location(db, "Testville, Finland").label == "Testville, Finland"


def test_an_import_in_another_process_is_seen_after_the_version_check_period(
    db: Database, tmp_path: Path, slow_checks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_pbf(db, osm_file(tmp_path / "first.osm", "Testville"), dataset="first")
    assert resolve_location(db, "Testville").label == "Testville"
    assert unknown(db, "Otherton")

    # A new dataset, imported by another process.
    run_python(IMPORT, db.url, str(osm_file(tmp_path / "second.osm", "Otherton", node_id=2, lat=62.0)), "second")
    assert unknown(db, "Otherton"), "the cache was re-read before its period ended"
    monkeypatch.setattr(locations, "VERSION_CHECK_SECONDS", 0.05)
    time.sleep(0.1)
    assert resolve_location(db, "Otherton").latitude == pytest.approx(62.0)

    # The same dataset re-imported with a renamed town: as many datasets as before, only newer.
    monkeypatch.setattr(locations, "VERSION_CHECK_SECONDS", 3600.0)
    assert resolve_location(db, "Testville").label == "Testville"
    run_python(IMPORT, db.url, str(osm_file(tmp_path / "renamed.osm", "Renamedville")), "first")
    assert not unknown(db, "Testville")  # still the cached view
    monkeypatch.setattr(locations, "VERSION_CHECK_SECONDS", 0.05)
    time.sleep(0.1)
    assert resolve_location(db, "Renamedville").latitude == pytest.approx(61.4978)
    assert unknown(db, "Testville")
    assert resolve_location(db, "Otherton").latitude == pytest.approx(62.0)
