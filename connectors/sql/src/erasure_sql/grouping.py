"""Findings handed back to the connector, grouped by table and decoded to typed primary keys."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence

from erasure import Finding

from .mapping import Mapping
from .values import NO_MATCH, Key, coerce, decode_ref, json_str

__all__ = ["Group", "group_findings", "int_ref_heads"]


class Group:
    """The findings of one table, each beside the primary key of its row (same order).

    Two parallel lists rather than a dict of lists: a batch holds thousands of rows, nearly
    all with one finding each, and delete only needs the distinct keys and the pairs.
    """

    __slots__ = ("findings", "pks")

    def __init__(self) -> None:
        self.pks: list[Key] = []
        self.findings: list[Finding] = []

    def keys(self) -> list[Key]:
        """The distinct primary keys, in first-seen order."""
        return list(dict.fromkeys(self.pks))

    def by_pk(self) -> dict[Key, list[Finding]]:
        """Findings by primary key."""
        out: dict[Key, list[Finding]] = {}
        for pk, f in zip(self.pks, self.findings, strict=True):
            out.setdefault(pk, []).append(f)
        return out


def int_ref_heads(m: Mapping) -> dict[str, str]:
    """``'["table"'`` -> table, for tables whose key is one integer column.

    Their refs (``["table",[123]]``) are the bulk of every batch and are decoded with string
    operations; anything else goes through the JSON decoder.
    """
    return {f"[{json_str(name)}": name for name, tm in m.tables.items() if tm.pk_types == (int,)}


def group_findings(
    m: Mapping, heads: dict[str, str], memo: dict[str, dict[str, Key]],
    findings: Sequence[Finding], take: bool = False,
) -> tuple[dict[str, Group], list[Finding]]:
    """Findings by table; the second list holds references not in this mapping.

    ``memo`` holds, per table, the refs this connector handed out with their keys (the usual
    case in one process); a finding's kind says which table's memo to try first. With
    ``take`` the refs found there are removed from it (rows being erased): the memo stays the
    size of the batches in flight, and lookups in a small dict stay in the CPU's caches.
    """
    by_kind: dict[str, list[Finding]] = {}
    # Findings come table by table: groupby splits the runs of one kind without a Python
    # step per finding.
    for kind, run in itertools.groupby(findings, _kind):
        by_kind.setdefault(kind, []).extend(run)
    groups: dict[str, Group] = {}
    bad: list[Finding] = []
    for kind, fs in by_kind.items():
        table_memo = memo.get(kind)
        if not table_memo:
            pks: list[Key | None] = [None] * len(fs)
        elif take:
            pks = list(map(table_memo.pop, map(_ref, fs), itertools.repeat(None)))
        else:
            pks = list(map(table_memo.get, map(_ref, fs)))
        known = [pk for pk in pks if pk is not None]
        if len(known) == len(pks):
            _add(groups, kind, known, fs)
            continue
        for f, pk in zip(fs, pks, strict=True):
            if pk is not None:
                _add(groups, kind, [pk], [f])
                continue
            decoded = _decode_fast(m, heads, f.ref)
            if decoded is None:
                bad.append(f)
            else:
                _add(groups, decoded[0], [decoded[1]], [f])
    return groups, bad


_ref = operator.attrgetter("ref")
_kind = operator.attrgetter("kind")


def _add(groups: dict[str, Group], table: str, pks: list[Key], fs: list[Finding]) -> None:
    g = groups.get(table)
    if g is None:
        g = groups[table] = Group()
    g.pks.extend(pks)
    g.findings.extend(fs)


def _decode_fast(m: Mapping, heads: dict[str, str], ref: str) -> tuple[str, Key] | None:
    head, _sep, tail = ref.rpartition(",[")
    tname = heads.get(head)
    digits = tail[:-2]
    if (
        tname is not None and tail.endswith("]]") and digits.isascii() and digits.isdigit()
        and (digits[0] != "0" or digits == "0")
    ):
        return tname, (int(digits),)
    return _decode(m, ref)


def _decode(m: Mapping, ref: str) -> tuple[str, Key] | None:
    decoded = decode_ref(ref)
    tm = m.tables.get(decoded[0]) if decoded else None
    if decoded is None or tm is None or len(decoded[1]) != len(tm.pk):
        return None
    pk = decoded[1]
    if not all(type(v) is t for v, t in zip(pk, tm.pk_types, strict=True)):
        pk = tuple(coerce(c, v) for c, v in zip(tm.pk_cols(), pk, strict=True))
        if any(v is NO_MATCH or v is None for v in pk):
            return None
    return tm.name, pk
