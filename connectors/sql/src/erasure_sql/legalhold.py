"""Rows under a legal hold (a table's ``hold_column``): a person with such a row is left as
they are in this system until the hold is released.

A subject any of whose found rows has its hold column set keeps every row here: each of
their findings is RETAINED with ``held`` set and the reason ("legal hold (orders.
legal_hold) on 2 row(s) until released"), so the host keeps the request open and asks
again later (``hold_recheck_hours``) until its give-up time. Nothing of theirs is deleted
or anonymised meanwhile: erasing the rest could cascade into the held rows (``ON DELETE
CASCADE``) or leave them pointing at nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from erasure import ItemOutcome, ItemStatus

from .grouping import Group
from .mapping import Mapping, TableModel
from .queries import pk_filter
from .values import chunks

__all__ = ["held_subjects", "split_held"]


def held_subjects(conn: Any, m: Mapping, grouped: dict[str, Group], dialect: str,
                  chunk_size: Callable[[TableModel], int]) -> dict[str, str]:
    """Subject -> why its rows are kept, for subjects with a found row under a hold."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for tname, group in grouped.items():
        tm = m.tables[tname]
        column = tm.cfg.hold_column
        if not column:
            continue
        by_pk = group.by_pk()
        flag = tm.col(column)
        for chunk in chunks(list(by_pk), chunk_size(tm)):
            stmt = sa.select(*tm.pk_cols(), flag).where(pk_filter(tm.table, tm.pk, chunk,
                                                                  dialect))
            for row in conn.execute(stmt):
                if not row[-1]:
                    continue
                for subject in {f.subject for f in by_pk.get(tuple(row[:-1]), ())}:
                    counts[subject][f"{tname}.{column}"] += 1
    return {subject: "; ".join(f"legal hold ({place}) on {n} row(s) until released"
                               for place, n in sorted(places.items()))
            for subject, places in counts.items()}


def split_held(grouped: dict[str, Group], held: dict[str, str]
               ) -> tuple[dict[str, Group], list[ItemOutcome]]:
    """(the groups without the held subjects' findings, RETAINED outcomes for those)."""
    free: dict[str, Group] = {}
    kept: list[ItemOutcome] = []
    for tname, group in grouped.items():
        rest = Group()
        for pk, f in zip(group.pks, group.findings, strict=True):
            if f.subject in held:
                kept.append(ItemOutcome(f, ItemStatus.RETAINED, error=held[f.subject],
                                        held=True))
            else:
                rest.pks.append(pk)
                rest.findings.append(f)
        if rest.pks:
            free[tname] = rest
    return free, kept
