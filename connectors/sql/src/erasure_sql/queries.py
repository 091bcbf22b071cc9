"""Statement builders shared by the connector: key filters and chunk sizes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = ["at_places", "in_values", "param_limit", "pk_filter", "tuple_in"]

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
    # Still one bound parameter, written as an array literal the server reads: psycopg's
    # list adapter costs about a microsecond per element, building the text a fraction.
    kinds = set(map(type, values))
    if kinds == {int}:
        literal = "{" + ",".join(map(str, values)) + "}"
    elif kinds == {str}:
        literal = "{" + ",".join(map(_quoted, values)) + "}"
    else:
        return expr == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(type_)))
    array = sa.cast(sa.bindparam(None, literal, type_=_Untyped()), postgresql.ARRAY(type_))
    return expr == sa.any_(array)


def _quoted(value: str) -> str:
    """An element of a PostgreSQL array literal: quoted, with backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
