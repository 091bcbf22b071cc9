"""Statement builders shared by the connector: key filters and chunk sizes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql

__all__ = [
    "ArrayLookup", "array_literal", "at_places", "in_values", "param_limit", "pk_filter",
    "tuple_in",
]

_LIMITS = {"sqlite": 999, "postgresql": 30000, "mysql": 30000, "mariadb": 30000}


def param_limit(dialect: str, configured: int | None) -> int:
    """Bound parameters allowed in one statement (kept under every driver's limit)."""
    return configured or _LIMITS.get(dialect, 999)


def tuple_in(columns: Sequence[sa.Column[Any]], keys: Sequence[tuple[Any, ...]]) -> Any:
    """``col IN (...)`` for one column, ``(a, b) IN ((..), ..)`` for several; values bound."""
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return sa.tuple_(*columns).in_([tuple(k) for k in keys])


def pk_filter(
    table: sa.Table, pk: Sequence[str], keys: Sequence[tuple[Any, ...]], dialect: str = ""
) -> Any:
    """A WHERE clause selecting the rows whose primary keys are ``keys``."""
    if len(pk) == 1:
        column = table.c[pk[0]]
        return in_values(dialect, column, [k[0] for k in keys], column.type)
    return tuple_in([table.c[c] for c in pk], keys)


class _Untyped(sa.types.UserDefinedType[str]):
    """A parameter sent without a type, so the server reads it as what it is cast to.

    Sent as text and then cast, an array would be a run-time conversion the server redoes
    for every row it filters (the text-to-array cast is not immutable, so never folded).
    """

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "TEXT"


#: see :class:`_Untyped` (for other modules of the connector).
Untyped = _Untyped


def at_places(places: Sequence[str]) -> Any:
    """``ctid = ANY(:places)`` (PostgreSQL): rows at these physical places, one parameter."""
    literal = '{"' + '","'.join(places) + '"}' if places else "{}"
    array = sa.bindparam(None, literal, type_=_Untyped())
    return sa.literal_column("ctid") == sa.any_(sa.cast(array, postgresql.ARRAY(_Tid())))


class _Tid(sa.types.UserDefinedType[str]):
    """PostgreSQL's row place type."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "tid"


def in_values(dialect: str, expr: Any, values: Sequence[Any], type_: Any) -> Any:
    """``expr IN (...)``; on PostgreSQL ``expr = ANY(:array)``, one bound array parameter."""
    if dialect != "postgresql":
        return expr.in_(list(values))
    literal = array_literal(values)
    if literal is None:
        return expr == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(type_)))
    return _any_of(expr, sa.bindparam(None, literal, type_=_Untyped()), type_)


def _any_of(expr: Any, array: sa.BindParameter[Any], type_: Any) -> Any:
    return expr == sa.any_(sa.cast(array, postgresql.ARRAY(type_)))


def array_literal(values: Sequence[Any]) -> str | None:
    """``values`` as one PostgreSQL array literal, if they are all integers or all strings.

    Still sent as one bound parameter, which the server parses: psycopg's list adapter costs
    about a microsecond per element, building the text a fraction of that.
    """
    kinds = set(map(type, values))
    if kinds == {int}:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds == {str}:
        return "{" + ",".join(map(_quoted, values)) + "}"
    return None


class ArrayLookup:
    """``SELECT columns ... WHERE expr = ANY(:keys)`` compiled once, run on psycopg's cursor.

    find reads thousands of rows per batch through a few statement shapes. Compiled once and
    run on the driver's cursor, a read spares SQLAlchemy's per-call compile-cache lookup and
    its per-row ``Row`` objects; rows come back as the driver's tuples. Only for columns
    whose values SQLAlchemy would pass through unchanged (``plain``); errors are raised as
    SQLAlchemy's, so callers classify them as usual.
    """

    def __init__(self, dialect: sa.Dialect, select: sa.Select, expr: Any, type_: Any) -> None:
        stmt = select.where(_any_of(expr, sa.bindparam("keys", type_=_Untyped()), type_))
        self.sql = str(stmt.compile(dialect=dialect))
        self.plain = dialect.driver == "psycopg" and all(
            _passes_through(dialect, c.type) for c in select.selected_columns)

    def rows(self, conn: sa.Connection, literal: str) -> list[tuple[Any, ...]]:
        """The rows whose ``expr`` is in the array ``literal`` (see :func:`array_literal`)."""
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        cursor = dbapi_conn.cursor()
        params = {"keys": literal}
        try:
            cursor.execute(self.sql, params)
            return list(cursor.fetchall())
        except conn.dialect.loaded_dbapi.Error as exc:
            # As SQLAlchemy does for its own statements: a dead connection is not pooled again.
            lost = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
            if lost:
                conn.invalidate()
            raise sa_exc.DBAPIError.instance(
                self.sql, params, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True,
                connection_invalidated=lost, dialect=conn.dialect) from None
        finally:
            cursor.close()


def _passes_through(dialect: sa.Dialect, type_: Any) -> bool:
    """Whether SQLAlchemy hands the driver's values of ``type_`` over unchanged."""
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None) is None
    except Exception:  # some types decide only once they see the driver's type code
        return False


def _quoted(value: str) -> str:
    """An element of a PostgreSQL array literal: quoted, with backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
