"""The fake's reading of Zendesk search queries (``/search`` and ``/search/export``).

What it understands, as Zendesk documents it: ``type:user|ticket``; ``key:value`` and
``key:"quoted value"`` terms, where repeating a keyword ORs its values and different
keywords AND; bare words and ``"quoted phrases"`` searched in the text (each one must
occur); a trailing ``*`` on a value for a prefix match. Values are compared without case.
Unlike a tokenising search engine, bare text matches substrings here (``bob@x.org`` matches
``jimbob@x.org``): a connector must re-check what a search returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Query", "QueryError", "parse"]

_TERM = re.compile(r'\s*(?:(-?)([a-z_]+):(?:"([^"]*)"|(\S+))|"([^"]*)"|(\S+))')


class QueryError(ValueError):
    """A query the fake (and Zendesk) answers with 400 invalid query."""


@dataclass
class Query:
    """A parsed query: the result type, keyword terms (ORed per keyword) and text terms."""

    type: str | None = None
    terms: dict[str, list[str]] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)

    def matches_text(self, text: str) -> bool:
        low = text.lower()
        return all(t.lower() in low for t in self.text)


def parse(text: str) -> Query:
    """Parse ``text``; raise :class:`QueryError` for an empty query."""
    query = Query()
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        negated, key, quoted, plain, phrase, word = m.groups()
        if key:
            value = quoted if quoted is not None else plain
            if key == "type":
                query.type = value
            elif not negated:
                query.terms.setdefault(key, []).append(value)
        elif phrase is not None or word:
            query.text.append(phrase if phrase is not None else word)
    if query.type is None and not query.terms and not query.text:
        raise QueryError("empty query")
    return query
