"""Query text: SOQL literals and SOSL terms escaped, long value lists cut to fit a URL.

Identifiers are never put into a query as they are: every value goes through
:func:`literal`, :func:`like_literal` or :func:`sosl_term`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar
from urllib.parse import quote_plus

__all__ = ["SOSL_RESERVED", "chunked", "is_record_id", "like_literal", "literal", "sosl_term"]

#: Characters SOSL reserves in a FIND clause (escaped with a backslash in a search term).
SOSL_RESERVED = frozenset("?&|!{}[]()^~*:\\\"'+-")
T = TypeVar("T")
_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}
_RECORD_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")
#: Characters of one request's query string: Salesforce refuses URIs over 16,384 bytes;
#: the rest is the path and headroom.
URL_BUDGET = 15000


def literal(value: str) -> str:
    """A SOQL string literal: quotes, backslashes and control characters escaped."""
    return "'" + "".join(_SOQL_ESCAPES.get(c, c) for c in value) + "'"


def like_literal(value: str) -> str:
    """A SOQL LIKE pattern matching ``value`` anywhere (its ``%`` and ``_`` taken literally)."""
    inner = "".join(_SOQL_ESCAPES.get(c, "\\" + c if c in "%_" else c) for c in value)
    return f"'%{inner}%'"


def sosl_term(value: str) -> str:
    """A SOSL phrase for ``value``: every reserved character escaped, then quoted."""
    return '"' + "".join("\\" + c if c in SOSL_RESERVED else c for c in value) + '"'


def is_record_id(value: str) -> bool:
    """Whether ``value`` has the shape of a Salesforce record id (15 or 18 characters)."""
    return bool(_RECORD_ID.match(value))


def chunked(values: Sequence[T], render: Callable[[Sequence[T]], str],
            budget: int = URL_BUDGET) -> Iterator[str]:
    """Queries ``render(part)`` over consecutive parts of ``values``, each within
    ``budget`` characters once URL-encoded (a single value too long alone still goes)."""
    # Sizes are added up per value (rendering the growing part again and again would cost
    # the square of a thousand subjects' values); separators count three characters.
    base = len(quote_plus(render([])))
    part: list[T] = []
    size = base
    for value in values:
        cost = len(quote_plus(render([value]))) - base + 3
        if part and size + cost > budget:
            yield render(part)
            part, size = [], base
        part.append(value)
        size += cost
    if part:
        yield render(part)
