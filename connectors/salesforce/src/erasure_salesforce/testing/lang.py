"""SOQL and SOSL as the fake Salesforce reads them: a strict subset of the real grammar.

Strict where the real service is: an unescaped quote ends a string literal early and the
rest fails to parse (``MALFORMED_QUERY``), a backslash before anything but the documented
escapes is an error, and an unescaped reserved character inside a SOSL ``FIND {...}``
clause is ``MALFORMED_SEARCH``. Text comparisons are case-insensitive, as in Salesforce.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Malformed", "Query", "Search", "parse_soql", "parse_sosl", "sosl_tokens"]


class Malformed(ValueError):
    """A query the real service would refuse; ``code`` is its errorCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_SOQL_ESCAPES = {"n": "\n", "N": "\n", "r": "\r", "R": "\r", "t": "\t", "T": "\t",
                 "b": "\b", "B": "\b", "f": "\f", "F": "\f", '"': '"', "'": "'", "\\": "\\"}
_TOKEN = re.compile(r"\s*(?:(?P<str>')|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][\w.]*)"
                    r"|(?P<op><=|>=|!=|<>|[=<>(),]))")


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _TOKEN.match(text, i)
        if not m:
            raise Malformed("MALFORMED_QUERY", f"unexpected character at {i}")
        if m.group("str"):
            j = m.end()
            buf = []
            while True:
                if j >= len(text):
                    raise Malformed("MALFORMED_QUERY", "unterminated string literal")
                c = text[j]
                if c == "\\":
                    nxt = text[j + 1:j + 2]
                    if nxt in _SOQL_ESCAPES:
                        buf.append(_SOQL_ESCAPES[nxt])
                    elif nxt in ("%", "_"):
                        buf.append("\\" + nxt)  # meaningful to LIKE only
                    else:
                        raise Malformed("MALFORMED_QUERY", "invalid escape sequence")
                    j += 2
                    continue
                if c == "'":
                    break
                buf.append(c)
                j += 1
            out.append(("str", "".join(buf)))
            i = j + 1
            continue
        if m.group("num"):
            out.append(("num", m.group("num")))
        elif m.group("word"):
            out.append(("word", m.group("word")))
        else:
            out.append(("op", m.group("op")))
        i = m.end()
    return out


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass
class Query:
    """A parsed SOQL SELECT."""

    fields: list[str]
    sobject: str
    where: Predicate | None
    where_fields: set[str] = field(default_factory=set)
    limit: int | None = None
    count: bool = False
    order_by: str | None = None


def _get(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    return value


def _is_id_field(name: str) -> bool:
    """Id and lookup fields (``Id``, ``ContactId``, ``WhoId``...) hold record ids."""
    return name == "Id" or (name.endswith("Id") and "." not in name)


def _text(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _like(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.fields: set[str] = set()

    def peek(self, kind: str | None = None, value: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        k, v = self.toks[self.i]
        return (kind is None or k == kind) and (
            value is None or (isinstance(v, str) and v.upper() == value.upper()))

    def take(self, kind: str | None = None, value: str | None = None) -> Any:
        if not self.peek(kind, value):
            got = self.toks[self.i][1] if self.i < len(self.toks) else "end of query"
            raise Malformed("MALFORMED_QUERY", f"unexpected token: {str(got)[:20]!r}")
        self.i += 1
        return self.toks[self.i - 1][1]

    def value(self) -> Any:
        if self.peek("str"):
            return self.take()
        if self.peek("num"):
            n = self.take()
            return float(n) if "." in n else int(n)
        word = self.take("word")
        low = word.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        raise Malformed("MALFORMED_QUERY", f"unexpected token: {word[:20]!r}")

    def condition(self) -> Predicate:
        left = self.conjunction()
        while self.peek("word", "OR"):
            self.take()
            right = self.conjunction()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.factor()
        while self.peek("word", "AND"):
            self.take()
            right = self.factor()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def factor(self) -> Predicate:
        if self.peek("word", "NOT"):
            self.take()
            inner = self.factor()
            return lambda r: not inner(r)
        if self.peek("op", "("):
            self.take()
            inner = self.condition()
            self.take("op", ")")
            return inner
        name = self.take("word")
        self.fields.add(name)
        negate = False
        if self.peek("word", "NOT"):
            self.take()
            negate = True
            if not self.peek("word", "IN"):
                raise Malformed("MALFORMED_QUERY", "NOT must be followed by IN")
        if self.peek("word", "IN"):
            self.take()
            self.take("op", "(")
            values = [self.value()]
            while self.peek("op", ","):
                self.take()
                values.append(self.value())
            self.take("op", ")")
            if _is_id_field(name):
                # Ids compare on their 15 case-sensitive characters: an 18-character id
                # and its 15-character form name the same record.
                ids = {str(v)[:15] for v in values if v is not None}
                return lambda r: (str(_get(r, name) or "")[:15] in ids) != negate
            wanted = {_text(v) for v in values}
            return lambda r: (_text(_get(r, name)) in wanted) != negate
        if self.peek("word", "LIKE"):
            self.take()
            pattern = self.take("str")
            rx = _like(pattern)
            return lambda r: isinstance(v := _get(r, name), str) and bool(rx.fullmatch(v))
        op = self.take("op")
        raw = self.value()
        if _is_id_field(name) and op in ("=", "!=", "<>") and isinstance(raw, str):
            key, eq = raw[:15], op == "="
            return lambda r: (str(_get(r, name) or "")[:15] == key) == eq
        value = _text(raw)
        compare: dict[str, Callable[[Any], bool]] = {
            "=": lambda v: v == value, "!=": lambda v: v != value, "<>": lambda v: v != value,
            "<": lambda v: v is not None and v < value, ">": lambda v: v is not None and v > value,
            "<=": lambda v: v is not None and v <= value,
            ">=": lambda v: v is not None and v >= value,
        }
        if op not in compare:
            raise Malformed("MALFORMED_QUERY", f"unexpected operator {op}")
        test = compare[op]
        return lambda r: test(_text(_get(r, name)))


def parse_soql(text: str) -> Query:
    """Parse ``SELECT f, ... | COUNT() FROM Obj [WHERE ...] [ORDER BY f] [LIMIT n]``."""
    p = _Parser(text)
    p.take("word", "SELECT")
    fields: list[str] = []
    count = False
    if p.peek("word", "COUNT"):
        p.take()
        p.take("op", "(")
        p.take("op", ")")
        count = True
    else:
        fields.append(p.take("word"))
        while p.peek("op", ","):
            p.take()
            fields.append(p.take("word"))
    p.take("word", "FROM")
    sobject = p.take("word")
    where = None
    if p.peek("word", "WHERE"):
        p.take()
        where = p.condition()
    order_by = None
    if p.peek("word", "ORDER"):
        p.take()
        p.take("word", "BY")
        order_by = p.take("word")
        if p.peek("word", "ASC") or p.peek("word", "DESC"):
            p.take()
    limit = None
    if p.peek("word", "LIMIT"):
        p.take()
        limit = int(p.take("num"))
    if p.i != len(p.toks):
        raise Malformed("MALFORMED_QUERY", "unexpected token after the query")
    return Query(fields, sobject, where, p.fields, limit, count, order_by)


# SOSL -------------------------------------------------------------------------------------

#: Characters SOSL reserves inside FIND {...}: a search term holding one must escape it.
SOSL_RESERVED = frozenset("?&|!{}[]()^~*:\\\"'+-")


@dataclass
class Search:
    """A parsed SOSL search: ``terms`` are phrases (any of them matches: OR only)."""

    terms: list[str]
    scope: str  # ALL, EMAIL, PHONE, NAME
    returning: list[tuple[str, list[str]]]
    limit: int | None


def _find_clause(text: str) -> tuple[str, int]:
    """The raw text between FIND { and its closing brace, and the index after it."""
    m = re.match(r"\s*FIND\s*\{", text, re.IGNORECASE)
    if not m:
        raise Malformed("MALFORMED_SEARCH", "a search must start with FIND {")
    i = m.end()
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "}":
            return text[m.end():i], i + 1
        i += 1
    raise Malformed("MALFORMED_SEARCH", "missing closing brace of FIND")


def _terms(raw: str) -> list[str]:
    terms: list[str] = []
    i = 0
    expect_term = True
    while i < len(raw):
        c = raw[i]
        if c.isspace():
            i += 1
            continue
        if not expect_term:
            m = re.match(r"OR\b", raw[i:])
            if not m:
                raise Malformed("MALFORMED_SEARCH",
                                f"line 1:{i} mismatched character '{c}' (only OR joins terms)")
            i += 2
            expect_term = True
            continue
        quoted = c == '"'
        if quoted:
            i += 1
        buf = []
        while i < len(raw):
            c = raw[i]
            if c == "\\":
                if i + 1 >= len(raw):
                    raise Malformed("MALFORMED_SEARCH", "dangling backslash")
                buf.append(raw[i + 1])
                i += 2
                continue
            if quoted and c == '"':
                i += 1
                break
            if not quoted and c.isspace():
                break
            if c in SOSL_RESERVED:
                raise Malformed("MALFORMED_SEARCH",
                                f"line 1:{i} no viable alternative at character '{c}'")
            buf.append(c)
            i += 1
        else:
            if quoted:
                raise Malformed("MALFORMED_SEARCH", "unterminated phrase")
        term = "".join(buf)
        if len(term.strip()) < 2:
            raise Malformed("MALFORMED_SEARCH", "search term must be longer than one character")
        terms.append(term)
        expect_term = False
    if not terms or expect_term:
        raise Malformed("MALFORMED_SEARCH", "empty or incomplete search query")
    return terms


def parse_sosl(text: str) -> Search:
    """Parse ``FIND {t1 OR "t 2"} [IN X FIELDS] RETURNING Obj(f, ...), ... [LIMIT n]``."""
    raw, i = _find_clause(text)
    terms = _terms(raw)
    rest = text[i:]
    m = re.match(r"\s*(?:IN\s+(ALL|EMAIL|PHONE|NAME)\s+FIELDS)?\s*RETURNING\s+(.*?)"
                 r"(?:\s+LIMIT\s+(\d+))?\s*$", rest, re.IGNORECASE | re.DOTALL)
    if not m:
        raise Malformed("MALFORMED_SEARCH", "expected IN ... FIELDS RETURNING ...")
    returning = []
    for om in re.finditer(r"\s*(\w+)\s*\(([^()]*)\)\s*(,|$)", m.group(2)):
        fields = [f.strip() for f in om.group(2).split(",") if f.strip()]
        returning.append((om.group(1), fields))
    if not returning:
        raise Malformed("MALFORMED_SEARCH", "RETURNING needs at least one object")
    return Search(terms, (m.group(1) or "ALL").upper(), returning,
                  int(m.group(3)) if m.group(3) else None)


def sosl_tokens(value: str) -> list[str]:
    """How the search index splits a value: words of letters and digits, lower-cased."""
    return re.findall(r"[^\W_]+", value.lower())
