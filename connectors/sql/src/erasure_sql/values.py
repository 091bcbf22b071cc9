"""Value helpers: row references, type coercion of identifiers, JSON-safe export values."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from erasure import Identifier, IdentifierType

__all__ = [
    "NO_MATCH",
    "Key",
    "chunks",
    "coerce",
    "db_normaliser",
    "decode_ref",
    "encode_ref",
    "int_range",
    "json_safe",
    "json_str",
    "python_type",
]

NO_MATCH = object()
Key = tuple[Any, ...]  # a row's primary key values
_json_str = json.encoder.encode_basestring_ascii
json_str = _json_str  # a str as a JSON string literal (what encode_ref writes)
_INT = re.compile(r"^[+-]?\d{1,19}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def python_type(column: sa.Column[Any]) -> type | None:
    """The Python type of a column's values, or None when SQLAlchemy does not know it."""
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def coerce(column: sa.Column[Any], value: Any, dialect: str = "") -> Any:
    """Convert ``value`` (a string from an identifier or a ref) to the column's type.

    Returns :data:`NO_MATCH` when the value cannot be of that type: such a value can match no
    row, and comparing it anyway would let a database's lax casting (MySQL turns
    ``'1abc'`` into ``1``) match rows it should not. So is a number out of the column's
    range (``dialect``: the database's, see :func:`int_range`).
    """
    ptype = python_type(column)
    if value is None:
        return None
    try:
        if ptype is bool:
            return value if isinstance(value, bool) else NO_MATCH
        if ptype is int:
            if not isinstance(value, int):
                if not (isinstance(value, str) and _INT.match(value)):
                    return NO_MATCH
                value = int(value)
            # A number the column cannot hold is in no row (the server would refuse the
            # statement: PostgreSQL's NumericValueOutOfRange).
            low, high = int_range(column, dialect)
            return value if low <= value <= high else NO_MATCH
        if ptype is str:
            return value if isinstance(value, str) else str(value)
        if ptype is float:
            return float(value)
        if ptype is decimal.Decimal:
            number = decimal.Decimal(str(value))
            precision = getattr(column.type, "precision", None)
            scale = getattr(column.type, "scale", None) or 0
            if not number.is_finite() or (
                    precision and abs(number) >= decimal.Decimal(10) ** (precision - scale)):
                return NO_MATCH  # no row holds it (NUMERIC(10,2) stops below 10^8)
            return number
        if ptype is uuid.UUID:
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        if ptype is dt.datetime:
            return dt.datetime.fromisoformat(str(value))
        if ptype is dt.date:
            return dt.date.fromisoformat(str(value))
        if ptype is bytes:
            return base64.b64decode(str(value), validate=True)
    except (ValueError, TypeError, ArithmeticError):
        return NO_MATCH
    return value


def int_range(column: sa.Column[Any], dialect: str = "") -> tuple[int, int]:
    """The smallest and largest value an integer column can hold: by its reflected type,
    64 bits on SQLite (whose integers are 64 bits whatever the declared type)."""
    name = type(column.type).__name__.upper()
    bits = 64
    if dialect != "sqlite" and "BIG" not in name:
        bits = 8 if "TINY" in name else 16 if "SMALL" in name else (
            24 if "MEDIUM" in name else 32)
    if getattr(column.type, "unsigned", False):
        return 0, 2 ** bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def json_safe(value: Any) -> Any:
    """A JSON-serialisable form of a database value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        finite = value == value and value not in (float("inf"), float("-inf"))
        return value if finite else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def encode_ref(table: str, pk: Sequence[Any]) -> str:
    """A stable reference to one row: ``["table",[pk values]]`` as compact JSON."""
    parts = []
    for v in pk:
        if type(v) is int:
            parts.append(str(v))
        elif type(v) is str:
            parts.append(_json_str(v))
        else:
            parts.append(json.dumps(json_safe(v), separators=(",", ":")))
    return f"[{_json_str(table)},[{','.join(parts)}]]"


def decode_ref(ref: str) -> tuple[str, tuple[Any, ...]] | None:
    """The (table, pk values) of a reference, or None if it is not one of ours."""
    try:
        data = json.loads(ref)
    except ValueError:
        return None
    if (
        not isinstance(data, list)
        or len(data) != 2
        or not isinstance(data[0], str)
        or not isinstance(data[1], list)
    ):
        return None
    return data[0], tuple(data[1])


def _email(value: Any) -> str | None:
    text = value.strip() if type(value) is str else str(value).strip()
    return text.lower() if "@" in text else None


def _phone(value: Any) -> str | None:
    text = value.strip() if type(value) is str else str(value).strip()
    if _E164.match(text):
        return text
    return _parsed(IdentifierType.PHONE, text)


def _plain(value: Any) -> str | None:
    text = value.strip() if type(value) is str else str(value).strip()
    return text if text and text.isprintable() else None


def _name(value: Any) -> str | None:
    text = _plain(value)
    return " ".join(text.split()) if text else None


def _parsed(itype: IdentifierType, text: str) -> str | None:
    if not text:
        return None
    try:
        return Identifier.parse(itype, text).value
    except Exception:  # noqa: BLE001 - any unparsable value is simply not an identifier
        return None


_NORMALISERS: dict[IdentifierType, Any] = {
    IdentifierType.EMAIL: _email,
    IdentifierType.PHONE: _phone,
    IdentifierType.CUSTOMER_ID: _plain,
    IdentifierType.USER_ID: _plain,
    IdentifierType.NAME: _name,
}


def db_normaliser(itype: IdentifierType) -> Any:
    """A function giving the host's normal form of an identifier read from a row, or None.

    Cheap paths for the common types; anything else goes through ``Identifier.parse``.
    """
    fn = _NORMALISERS.get(itype)
    if fn is not None:
        return fn
    return lambda value: _parsed(itype, str(value).strip())


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    size = max(1, size)
    for start in range(0, len(items), size):
        yield items[start:start + size]
