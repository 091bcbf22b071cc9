"""What a column holds, judged by its name, its type and (in discover) the shape of sampled
values: emails, phones, IPs, card numbers (Luhn), card codes, names, addresses, birth dates.

Used by ``discover`` to propose a mapping and by the mapping check, which refuses a table
mapped for ``anonymise`` that leaves a personal column without a rule. Sampled values are
only classified and counted here, never kept or returned.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .values import python_type

__all__ = [
    "PEOPLE_WORDS", "STRONG", "Guess", "by_name", "is_surrogate", "is_text", "luhn",
    "personal_columns", "shape_of", "summarise",
]

#: Kinds whose value points at one person (searched by the deep scan, owners of rows).
STRONG = frozenset({"email", "phone"})
#: Words in a table name that say its rows are people (a ``name`` column there is a person's).
PEOPLE_WORDS = ("customer", "client", "user", "employee", "person", "people", "member",
                "contact", "account", "patient", "student", "subscriber", "staff", "visitor",
                "applicant", "guest", "login")

_I = re.I
# (kind, pattern on the column name, confidence). The first match wins.
_NAMES: list[tuple[str, re.Pattern[str], str]] = [
    ("email", re.compile(r"(^|_)e?-?mail(_?addr(ess)?)?$|^email|_email$", _I), "high"),
    ("phone", re.compile(r"(phone|mobile|tel(ephone)?|msisdn|fax)(_?(number|no))?$", _I), "high"),
    ("ip", re.compile(r"(^|_)ip(_?addr(ess)?)?$|remote_addr", _I), "high"),
    ("card_number", re.compile(r"^(cc_?n(um(ber)?)?|ccn|pan|card_?(number|no|num))$", _I), "high"),
    ("card_code", re.compile(r"^(cvv2?|cvc2?|csc|code|security_?code|card_?code)$", _I), "medium"),
    ("birth_date", re.compile(r"(^|_)(dob|birth_?date|date_?of_?birth|birthday)$", _I), "high"),
    ("national_id", re.compile(r"(^|_)(ssn|nin|passport(_?no)?|tax_?id|national_?id)$", _I),
     "high"),
    ("address", re.compile(r"^(house|street|street_?address|address(_?line)?\d?|city|zip|"
                           r"zip_?code|postcode|postal_?code|state)$", _I), "medium"),
    ("name", re.compile(r"^(first|last|full|given|family|sur|display|middle|customer|contact|"
                        r"maiden|holder|card_?holder|member|account_?holder|recipient|"
                        r"billing|shipping|patient|guest|client|person)_?name$|^surname$", _I),
     "high"),
]
_PLAIN_NAME = re.compile(r"^name$", _I)
# Kinds the mapping check treats as personal when a column's name says so.
_PERSONAL = frozenset({"email", "phone", "ip", "card_number", "card_code", "birth_date",
                       "national_id", "address", "name"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{6,18}[0-9]$")
_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}|^\d{1,2}[./]\d{1,2}[./]\d{2,4}")
_CARD = re.compile(r"^[0-9][0-9 -]{11,21}[0-9]$")
_PERSON = re.compile(r"^[A-ZÀ-Þ][a-zà-ÿ'’-]+( [A-ZÀ-Þ][a-zà-ÿ'’-]+){1,3}$")


@dataclass(frozen=True)
class Guess:
    """What a column probably holds, how sure, and why (names and counts only)."""

    kind: str
    confidence: str  # "high", "medium", "low"
    evidence: str


def is_text(column: sa.Column[Any]) -> bool:
    """A string column (not an enum) that can hold an identifier."""
    return (isinstance(column.type, sa.String) and not isinstance(column.type, sa.Enum)
            and python_type(column) is str)


def is_surrogate(table: sa.Table, column: sa.Column[Any]) -> bool:
    """An auto-numbered integer key: the same number means different people elsewhere
    (another schema, a backup), so it is never proposed as an identifier."""
    pk = list(table.primary_key.columns)
    return len(pk) == 1 and pk[0].name == column.name and python_type(column) is int


def luhn(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def shape_of(text: str) -> str | None:
    """The kind a single value looks like, or None."""
    text = text.strip()
    if _EMAIL.match(text):
        return "email"
    try:
        ipaddress.ip_address(text)
        return "ip"
    except ValueError:
        pass
    if _CARD.match(text):
        digits = re.sub(r"[ -]", "", text)
        if 13 <= len(digits) <= 19 and luhn(digits):
            return "card_number"
    if _PHONE.match(text) and not _DATE.match(text) and sum(c.isdigit() for c in text) >= 7:
        return "phone"
    if _PERSON.match(text):
        return "name"
    return None


def summarise(values: Iterable[Any]) -> tuple[int, dict[str, int]]:
    """(values looked at, count per kind) over sampled values; the values are dropped."""
    total = 0
    counts: dict[str, int] = {}
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # card numbers kept as integers
        if not isinstance(value, str):
            continue
        total += 1
        kind = shape_of(value)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    return total, counts


def people_table(name: str) -> bool:
    """Whether a table's name says its rows are people."""
    lowered = name.lower()
    return any(w in lowered for w in PEOPLE_WORDS)


def by_name(table: sa.Table, column: sa.Column[Any]) -> Guess | None:
    """The kind a column's name and type suggest (no values read)."""
    if is_surrogate(table, column):
        return None
    for kind, pattern, confidence in _NAMES:
        if pattern.search(column.name):
            if kind in ("email", "phone", "ip", "address", "name") and not is_text(column):
                continue
            if kind == "card_code" and not people_or_payment(table.name):
                continue  # "code" of a product or a country is not a card's
            if (kind == "address" and column.name.lower() in ("state", "city")
                    and not (people_table(table.name) or "address" in table.name.lower())):
                continue  # an order's state is "shipped"
            return Guess(kind, confidence, "column name")
    if _PLAIN_NAME.match(column.name) and is_text(column) and people_or_payment(table.name):
        # "name" is a person's only in a people (or card) table: products, tiers, reports
        # have names too.
        return Guess("name", "medium", "column name in a people or card table")
    return None


def people_or_payment(table: str) -> bool:
    """People tables and payment/card tables (where ``code`` is a card's security code)."""
    lowered = table.lower()
    return people_table(table) or any(w in lowered for w in ("card", "payment"))


def from_sample(table: sa.Table, column: sa.Column[Any], named: Guess | None,
                total: int, counts: dict[str, int]) -> Guess | None:
    """Combine the name's guess with the sampled shapes (counts only in the evidence)."""
    best = max(counts.items(), key=lambda kv: kv[1], default=None)
    if not total or best is None or best[1] / total < 0.6:
        if named is not None and total and not counts and named.kind in STRONG:
            return Guess(named.kind, "low",
                         f"{named.evidence}; none of {total} sampled values look like one")
        return named
    kind, hits = best
    share = f"{hits} of {total} sampled values look like {kind}"
    if kind == "name" and not people_table(table.name) and (named is None or named.kind != kind):
        # Capitalised words in a catalogue's "name" are product names; a "..._name" column
        # of names (a loyalty member's, a card holder's) holds people's.
        low = column.name.lower()
        if named is None and low != "name" and low.endswith("name"):
            return Guess(kind, "medium", f"{share}, column named like a name")
        return named
    if named is None:
        return Guess(kind, "medium" if kind != "name" else "low", share)
    if named.kind == kind:
        return Guess(kind, "high", f"{named.evidence}; {share}")
    return named


def personal_columns(table: sa.Table) -> dict[str, Guess]:
    """Columns the name and type alone class as personal (the mapping check's view)."""
    out = {}
    for column in table.columns:
        guess = by_name(table, column)
        if guess is not None and guess.kind in _PERSONAL:
            out[column.name] = guess
    return out
