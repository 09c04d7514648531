"""Schema migrations (Alembic), applied by ``prospectpro migrate`` and at start.

Two processes starting at once must not both run a migration: on SQLite the
upgrade runs inside a ``BEGIN IMMEDIATE`` transaction (DDL is transactional
there), on PostgreSQL under a transaction-scoped advisory lock.

On SQLite, changing a column means rebuilding its table (Alembic's batch
mode: create the new table, copy the rows, drop the old one, rename), and
dropping a table that others reference fails while foreign keys are
enforced. So the upgrade's transaction does not enforce them, and checks
every reference itself (``PRAGMA foreign_key_check``) before it commits.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from prospectpro.store.db import Database

_ADVISORY_LOCK_ID = 0x70726F73  # "pros"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("prospectpro.store") / "migrations"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    if revision == "head" and is_current(db):
        return
    cfg = _config()
    with db.write(foreign_keys=False) as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        if db.is_sqlite:
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:  # raising rolls the whole upgrade back
                raise RuntimeError(f"the migration to {revision} left broken references: {broken[:5]}")
