"""A PostgREST-style read surface for the original product's clients (issue 17).

``GET /rest/v1/{discovery_jobs,campaigns,leads}`` answers what PostgREST answered the
original's scripts and supabase-js: ``select=`` (``*`` or columns, ``alias:column``),
filters ``column=[not.]op.value`` (eq, neq, gt, gte, lt, lte, like, ilike, in.(a,b),
is.null / is.not_null), ``order=column[.asc|.desc][.nullsfirst|.nullslast],…``,
``limit``, ``offset``, a single object with ``Accept: application/vnd.pgrst.object+json``
(406 unless exactly one row), and PostgREST's error body ``{code, message, details, hint}``.
Columns are the original's (``api/original_shape.py``). Every row is the caller's own:
the key is an identity, so another owner's ids match nothing. Writes answer 405.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import ColumnElement, false, not_, select, true

from prospectpro.api.auth import identify
from prospectpro.api.original_shape import TABLES, Column, OriginalTable, record
from prospectpro.domain.text import parse_id
from prospectpro.errors import UserError
from prospectpro.store.db import Database

router = APIRouter()

SINGLE_OBJECT = "application/vnd.pgrst.object+json"
MAX_ROWS = 1000  # PostgREST's db-max-rows: no answer is larger, whatever limit asks
MAX_IN_VALUES = 500
NUMERIC_BOUND = Decimal(10) ** 9
MAX_SCALE = 30  # fractional digits of a numeric literal
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is"})
_RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})


class PgrstError(Exception):
    """An answer in PostgREST's error shape."""

    def __init__(
        self, status: int, code: str, message: str, details: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details, self.hint = status, code, message, details, hint

    def response(self) -> JSONResponse:
        body = {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}
        return JSONResponse(body, status_code=self.status)


def _parse_error(what: str, value: str, details: str) -> PgrstError:
    # PostgREST's own wording for a query string it cannot parse
    return PgrstError(400, "PGRST100", f'"failed to parse {what} ({value})" (line 1, column 1)', details)


def _no_column(table: OriginalTable, name: str) -> PgrstError:
    return PgrstError(400, "42703", f"column {table.name}.{name} does not exist")


def _invalid_input(column: Column, value: str) -> PgrstError:
    kind = {"int4": "integer", "timestamptz": "timestamp with time zone"}.get(column.type, column.type)
    return PgrstError(400, "22P02", f'invalid input syntax for type {kind}: "{value}"')


@dataclass
class Query:
    table: OriginalTable
    names: list[tuple[str, str]] = field(default_factory=list)  # (output name, column)
    where: list[ColumnElement[bool]] = field(default_factory=list)
    order: list[Any] = field(default_factory=list)
    limit: int = MAX_ROWS
    offset: int = 0


def _typed(column: Column, value: str) -> Any:
    """A filter value as the column's type reads it; 22P02 as PostgreSQL answers a bad one."""
    if column.type == "uuid":
        found = parse_id(value)
        if found is None:
            raise _invalid_input(column, value)
        return found
    if column.type == "int4":
        try:
            integer = int(value)
        except ValueError:
            raise _invalid_input(column, value) from None
        if not -(2**31) <= integer < 2**31:
            raise PgrstError(400, "22003", f'value "{value[:40]}" is out of range for type integer')
        return integer
    if column.type == "numeric":
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise _invalid_input(column, value) from None
        if not number.is_finite() or number.as_tuple().exponent < -MAX_SCALE:  # type: ignore[operator]
            raise _invalid_input(column, value[:40])
        # Beyond every stored amount (Numeric(12, 4)), any larger literal compares the same:
        # clamped, it stays inside what each database's numeric type can bind.
        return max(-NUMERIC_BOUND, min(NUMERIC_BOUND, number))
    if column.type == "timestamptz":
        try:
            moment = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except ValueError:
            raise _invalid_input(column, value[:40]) from None
        except OverflowError:  # e.g. year 1 at +05:00: before datetime's first UTC instant
            raise PgrstError(400, "22008", f'timestamp out of range: "{value[:40]}"') from None
    return _text(value)


def _text(value: str) -> str:
    if "\x00" in value:  # PostgreSQL's text cannot hold it, and says so
        raise PgrstError(400, "22021", 'invalid byte sequence for encoding "UTF8": 0x00')
    return value


def _in_values(raw: str) -> list[str]:
    """``(a,b,"c,d")`` → ['a', 'b', 'c,d'] (PostgREST's list syntax; double quotes protect commas)."""
    if not (raw.startswith("(") and raw.endswith(")")):
        raise _parse_error("filter", f"in.{raw}", 'unexpected end of input expecting "("')
    values: list[str] = []
    current, quoted, escaped, had_quote = "", False, False, False
    for ch in raw[1:-1]:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted, had_quote = not quoted, True
        elif ch == "," and not quoted:
            values.append(current if had_quote else current.strip())
            current, had_quote = "", False
        else:
            current += ch
    if quoted:
        raise _parse_error("filter", f"in.{raw}", 'unexpected end of input expecting "\\""')
    if current or had_quote or values:
        values.append(current if had_quote else current.strip())
    return values


def _like(value: str) -> str:
    return value.replace("*", "%")  # PostgREST's URL-safe wildcard


def _glob(value: str) -> str:
    """A LIKE pattern as SQLite's GLOB (case-sensitive, as PostgreSQL's LIKE; SQLite's LIKE is not)."""
    special = {"[": "[[]", "?": "[?]", "*": "*", "%": "*", "_": "?"}
    return "".join(special.get(ch, ch) for ch in value)


def _filter(table: OriginalTable, name: str, raw: str, dialect: str) -> ColumnElement[bool]:
    column = table.column(name)
    if column is None:
        raise _no_column(table, name)
    negate = raw.startswith("not.")
    body = raw[4:] if negate else raw
    op, dot, value = body.partition(".")
    if not dot or op not in _OPERATORS:
        raise _parse_error("filter", raw, f'unexpected "{op[:1]}" expecting operator (eq, gt, ...)')
    sql = column.sql
    if op == "is":
        if value not in ("null", "not_null"):
            raise _parse_error("filter", raw, 'unexpected "' + value[:1] + '" expecting null or not_null')
        if sql is None:  # a JSON column's SQL NULL: ours are never NULL (results always is)
            condition: ColumnElement[bool] = true() if (value == "null") == (name == "results") else false()
        else:
            condition = sql.is_(None) if value == "null" else sql.is_not(None)
        return not_(condition) if negate else condition
    if sql is None:
        raise PgrstError(400, "42883", f"operator does not exist: jsonb {op} unknown", hint="No operator matches")
    if op == "in":
        values = _in_values(value)
        if len(values) > MAX_IN_VALUES:
            raise _parse_error("filter", name, f"at most {MAX_IN_VALUES} values in in.(…)")
        condition = sql.in_([_typed(column, v) for v in values])
    elif op in ("like", "ilike"):
        if column.type != "text":
            raise PgrstError(400, "42883", f"operator does not exist: {column.type} ~~ unknown")
        value = _text(value)
        if op == "ilike":
            condition = sql.ilike(_like(value))
        else:
            condition = sql.op("GLOB")(_glob(value)) if dialect == "sqlite" else sql.like(_like(value))
    else:
        typed = _typed(column, value)
        condition = {
            "eq": lambda: sql == typed,
            "neq": lambda: sql != typed,
            "gt": lambda: sql > typed,
            "gte": lambda: sql >= typed,
            "lt": lambda: sql < typed,
            "lte": lambda: sql <= typed,
        }[op]()
    return not_(condition) if negate else condition


def _select(table: OriginalTable, raw: str) -> list[tuple[str, str]]:
    names: list[tuple[str, str]] = []
    for part in raw.split(","):
        item = part.strip()
        if item == "*":
            names.extend((n, n) for n in table.columns)
            continue
        alias, colon, name = item.rpartition(":") if ":" in item else ("", "", item)
        alias, name = alias.strip(), name.strip()
        if not _IDENT.fullmatch(name) or (colon and not _IDENT.fullmatch(alias)):
            raise _parse_error("select", raw, f'unexpected "{item[:1]}" expecting field name (* or [a..z0..9_$])')
        if table.column(name) is None:
            raise _no_column(table, name)
        names.append((alias or name, name))
    return names


def _order(table: OriginalTable, raw: str) -> list[Any]:
    terms: list[Any] = []
    for part in raw.split(","):
        name, *modifiers = part.strip().split(".")
        column = table.column(name)
        if column is None:
            raise _no_column(table, name) if _IDENT.fullmatch(name) else _parse_error("order", raw, "unexpected")
        if column.sql is None:
            raise PgrstError(400, "42883", f"could not identify an ordering operator for type {column.type}")
        direction = {"asc", "desc"} & set(modifiers)
        nulls = {"nullsfirst", "nullslast"} & set(modifiers)
        if len(modifiers) > 2 or len(direction) > 1 or len(nulls) > 1 or set(modifiers) - direction - nulls:
            raise _parse_error(
                "order", raw, 'unexpected modifier, expecting "asc", "desc", "nullsfirst" or "nullslast"'
            )
        term = column.sql.desc() if "desc" in direction else column.sql.asc()
        if nulls:
            term = term.nulls_first() if "nullsfirst" in nulls else term.nulls_last()
        terms.append(term)
    return terms


def _count(what: str, raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise _parse_error(what, raw, "unexpected, expecting a non-negative integer")
    return int(raw)


def parse_query(table: OriginalTable, items: list[tuple[str, str]], dialect: str = "postgresql") -> Query:
    query = Query(table)
    selected: str | None = None
    for key, value in items:
        if key == "select":
            selected = value
        elif key == "order":
            query.order = _order(table, value)
        elif key == "limit":
            query.limit = min(_count("limit", value), MAX_ROWS)
        elif key == "offset":
            query.offset = _count("offset", value)
        elif key in _RESERVED:
            continue  # columns / on_conflict belong to writes, which are refused anyway
        else:
            query.where.append(_filter(table, key, value, dialect))
    query.names = _select(table, selected) if selected not in (None, "") else [(n, n) for n in table.columns]
    return query


def run_query(db: Database, query: Query, owner_id: str) -> list[dict[str, Any]]:
    table = query.table
    statement = (
        select(*table.fetch)
        .select_from(table.source)
        .where(table.owner == owner_id, *query.where)
        .order_by(*query.order, table.key)
        .limit(query.limit)
        .offset(query.offset)
    )
    with db.read() as conn:
        rows = conn.execute(statement).all()
    out = []
    for row in rows:
        full = record(table, row._mapping, [name for _, name in query.names])
        out.append({alias: full[name] for alias, name in query.names})
    return out


def _json(rows: Any, status: int, media_type: str, headers: dict[str, str]) -> Response:
    body = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status, media_type=f"{media_type}; charset=utf-8", headers=headers)


def _wants_single(request: Request) -> bool:
    return SINGLE_OBJECT in request.headers.get("accept", "").lower()


@router.get("/rest/v1/{table_name}", include_in_schema=False)
async def read_table(table_name: str, request: Request) -> Response:
    try:
        table = TABLES.get(table_name)
        if table is None:
            raise PgrstError(400, "42P01", f'relation "public.{table_name[:100]}" does not exist')
        state = request.app.state
        query = parse_query(table, list(request.query_params.multi_items()), state.db.dialect)
        try:
            caller = await identify(request, state.db)
        except UserError as exc:
            raise PgrstError(exc.http_status, "PGRST301" if exc.http_status == 401 else "42501", exc.message) from None
        owner_id = caller.owner_id
        rows = [] if owner_id is None else await anyio.to_thread.run_sync(run_query, state.db, query, owner_id)
    except PgrstError as exc:
        return exc.response()
    if _wants_single(request):
        if len(rows) != 1:
            return PgrstError(
                406,
                "PGRST116",
                "Cannot coerce the result to a single JSON object",
                f"The result contains {len(rows)} rows",
            ).response()
        return _json(rows[0], 200, SINGLE_OBJECT, {})
    first = query.offset
    span = f"{first}-{first + len(rows) - 1}/*" if rows else "*/*"
    return _json(rows, 200, "application/json", {"Content-Range": span})


@router.api_route("/rest/v1/{table_name}", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def refuse_write(table_name: str, request: Request) -> Response:
    """Read-only: campaigns are submitted through /functions/v1/business-discovery-background or /api/v1/campaigns."""
    return PgrstError(
        405,
        "PGRST117",
        f"Unsupported HTTP method: {request.method}",
        f"ProspectPro's /rest/v1/{table_name[:100]} is read-only",
        "Submit campaigns with POST /functions/v1/business-discovery-background",
    ).response()
