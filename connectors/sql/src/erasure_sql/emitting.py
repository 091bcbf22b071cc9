"""Building find's findings while the server works: by settled table, or by part of rows."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from erasure import Finding

from .entries import Entry
from .mapping import Edge, Mapping, TableModel
from .values import Key

__all__ = ["Emitter", "only_way_in", "shrinking_parts"]

# Child rows final when read come in up to _PARTS parts (of at least _MIN_PART parent keys):
# each part's findings are built while the server reads the next.
_PARTS = 4
_MIN_PART = 200
_PART_WEIGHTS = {1: (1.0,), 2: (0.6, 0.4), 3: (0.45, 0.35, 0.2), 4: (0.36, 0.30, 0.22, 0.12)}

#: emit(table, {pk: entry}, rows of the table, out): appends the findings of those rows.
EmitRows = Callable[[TableModel, dict[Key, Entry], dict[Key, Any], list[Finding]], None]


def shrinking_parts(keys: list[Any], limit: int) -> list[list[Any]]:
    """``keys`` in up to _PARTS parts of at most ``limit``, each smaller than the one before.

    The last part's findings are built after the last read, with nothing to overlap: it
    should be small; the first part's read overlaps the parent table's findings: large.
    """
    n = len(keys)
    count = max(1, min(_PARTS, n // _MIN_PART))
    weights = _PART_WEIGHTS[count]
    bounds = [0]
    for w in weights[:-1]:
        bounds.append(bounds[-1] + max(1, round(n * w)))
    bounds.append(n)
    out: list[list[Any]] = []
    for a, b in itertools.pairwise(bounds):
        out.extend(keys[i:min(i + limit, b)] for i in range(a, b, limit))
    return [p for p in out if p]


def only_way_in(m: Mapping, e: Edge) -> bool:
    """Whether link ``e`` is the only way to rows of its child table (no identifier columns,
    no other link into it, no cycle back to it)."""
    child = m.tables[e.child]
    return (not child.identifiers
            and [x for x in m.edges if x.child == e.child] == [e]
            and e.child not in m.descendants([e.child]))


class Emitter:
    """Builds the findings of one find call: table by table as tables settle, or part by
    part for rows that are final when read."""

    def __init__(self, emit: EmitRows, m: Mapping, hits: dict[str, dict[Key, Entry]],
                 rows: dict[str, dict[Key, Any]]) -> None:
        self.emit, self.m, self.hits, self.rows = emit, m, hits, rows
        self.out: list[Finding] = []
        self.done: set[str] = set()

    def settled(self, busy: set[str]) -> None:
        """Emit the tables whose rows can no longer change: none reachable from ``busy``."""
        later = self.m.descendants(busy)
        for tname, tm in self.m.tables.items():
            if tname not in self.done and tname not in later:
                self.done.add(tname)
                if self.hits[tname]:
                    self.emit(tm, self.hits[tname], self.rows[tname], self.out)

    def claim(self, table: str) -> None:
        """``table`` is emitted part by part (by :meth:`part`), not when it settles."""
        self.done.add(table)

    def part(self, tm: TableModel, record: Callable[[list[Any]], list[Key]],
             result: list[Any]) -> None:
        """Record one part of a claimed table's rows and emit their findings."""
        table_hits = self.hits[tm.name]
        part = {pk: table_hits[pk] for pk in record(result)}
        if part:
            self.emit(tm, part, self.rows[tm.name], self.out)
