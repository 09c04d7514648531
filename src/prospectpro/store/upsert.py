"""Dialect-aware INSERT … ON CONFLICT, for the two databases we run on: the one place that builds them.

Statements are built once per (dialect, table, columns) and cached: the
places import and the rate limits run the same one many times, and
SQLAlchemy's compiled cache then finds it at once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

_DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}


def _insert(dialect: str, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    module = _DIALECTS.get(dialect)
    if module is None:
        raise NotImplementedError(f"ProspectPro does not support {dialect} (PostgreSQL and SQLite only)")
    return module.insert(table)


@functools.cache
def _ignore_statement(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=list(keys))


@functools.cache
def upsert_statement(
    dialect: str, table: Table, keys: tuple[str, ...], update: tuple[str, ...], returning: tuple[str, ...] = ()
) -> Any:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET each ``update`` column to the new row's, RETURNING ``returning``.

    An existing row keeps its primary key (a place's id stays stable across
    re-imports). With ``update`` = ``keys`` the statement changes nothing
    but still locks and returns the row, inserting it when missing (see
    ``lock_or_insert_statement``).
    """
    stmt = _insert(dialect, table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    return stmt.returning(*(table.c[c] for c in returning)) if returning else stmt


def lock_or_insert_statement(dialect: str, table: Table, keys: tuple[str, ...], returning: tuple[str, ...]) -> Any:
    """One statement that returns a row, created from the parameters if missing, locked for this transaction.

    An upsert that sets the key to itself: unlike DO NOTHING it returns (and,
    on PostgreSQL, locks) a row that already exists.
    """
    return upsert_statement(dialect, table, keys, keys, returning)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, skipping those whose unique ``keys`` already exist."""
    conn.execute(_ignore_statement(conn.dialect.name, table, tuple(keys)), list(rows))


def insert_ignore_returning(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], column: str
) -> list[Any]:
    """Insert rows, skipping those whose unique ``keys`` already exist; ``column`` of the rows inserted.

    One multi-row statement, in the order given. On PostgreSQL a row that a
    concurrent transaction is inserting waits for it, then counts as existing
    if it committed: of two such inserts, each key is returned to one.
    """
    if not rows:
        return []
    stmt = _insert(conn.dialect.name, table).values(list(rows)).on_conflict_do_nothing(index_elements=list(keys))
    return list(conn.execute(stmt.returning(table.c[column])).scalars())


def upsert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], update: Sequence[str]
) -> None:
    """Insert rows; where the unique ``keys`` exist, overwrite the ``update`` columns."""
    conn.execute(upsert_statement(conn.dialect.name, table, tuple(keys), tuple(update)), list(rows))


def upsert_returning(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
    returning: Sequence[str],
) -> list[Any]:
    """``upsert``, and the ``returning`` columns of each row written (inserted or updated)."""
    stmt = upsert_statement(conn.dialect.name, table, tuple(keys), tuple(update), tuple(returning))
    return list(conn.execute(stmt, list(rows)))
