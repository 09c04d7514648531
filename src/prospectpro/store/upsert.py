"""Dialect-aware INSERT … ON CONFLICT, for the two databases we run on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, skipping those whose unique ``keys`` already exist."""
    conn.execute(_insert(conn, table).on_conflict_do_nothing(index_elements=list(keys)), list(rows))


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
    stmt = _insert(conn, table).values(list(rows)).on_conflict_do_nothing(index_elements=list(keys))
    return list(conn.execute(stmt.returning(table.c[column])).scalars())


def upsert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str], update: Sequence[str]
) -> None:
    """Insert rows; where the unique ``keys`` exist, overwrite the ``update`` columns."""
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    conn.execute(stmt, list(rows))
