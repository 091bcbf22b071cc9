"""Rectification (Art. 16) and objection (Art. 21) on mapped rows.

A rectification sets the columns mapped to a correction's type (the table's
``identifiers`` columns of that type; ``address`` columns for the postal address) of the
subject's own rows, where they hold an old value (compared normalised, so ``Bob@X.org``
is ``bob@x.org``), to the new value. An objection sets the table's configured ``opt_out``
columns of the scope to their configured values. Neither deletes a row or changes another
column; both are idempotent (a row already holding the values is ALREADY_DONE). Rows are
read and written by primary key, chunked, one transaction per chunk; values are bound.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from erasure import (
    CapabilityNotSupported,
    Correction,
    CorrectionType,
    Finding,
    ItemOutcome,
    ItemStatus,
    ObjectionScope,
)

from .dberrors import db_errors
from .grouping import Group
from .mapping import Mapping, TableModel
from .queries import pk_filter
from .shared import export_only_outcomes
from .values import Key, chunks

__all__ = ["RightsMixin"]


def _columns(tm: TableModel, ctype: CorrectionType) -> list[str]:
    """The columns of ``tm`` a correction of ``ctype`` sets."""
    if ctype is CorrectionType.ADDRESS:
        return tm.cfg.address_columns()
    itype = ctype.identifier_type
    return [col for t, col in tm.identifiers if t is itype]


class RightsMixin:
    """``rectify`` and ``object_to`` for :class:`~erasure_sql.SqlConnector`."""

    system: str
    _dialect: str
    _engine: sa.Engine

    if TYPE_CHECKING:  # provided by SqlConnector and its other mixins
        def mapping(self) -> Mapping: ...
        def _group(self, findings: Sequence[Finding], take: bool = False
                   ) -> tuple[dict[str, Group], list[Finding]]: ...
        def _not_owned(self, findings: Sequence[Finding]
                       ) -> tuple[Sequence[Finding], list[Finding]]: ...
        def _chunk_size(self, tm: TableModel) -> int: ...
        @staticmethod
        def _bad(findings: list[Finding]) -> list[ItemOutcome]: ...
        @staticmethod
        def _shared(findings: list[Finding]) -> list[ItemOutcome]: ...

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> Iterator[ItemOutcome]:
        m = self.mapping()
        for ctype in sorted({c.type for c in corrections}):
            if not any(_columns(tm, ctype) for tm in m.tables.values()):
                raise CapabilityNotSupported(
                    f"system {self.system}: no column is mapped for {ctype.value}")
        by_subject: dict[str, list[Correction]] = defaultdict(list)
        for c in corrections:
            by_subject[c.subject].append(c)

        def changes(tm: TableModel, row: Any, fs: list[Finding]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for c in (c for f in fs for c in by_subject.get(f.subject, ())):
                for col in _columns(tm, c.type):
                    if c.matches(row[col]) is False:
                        out[col] = c.new
            return out

        return iter(self._set_rows(findings, "rectify", lambda tm: [
            col for ctype in {c.type for c in corrections} for col in _columns(tm, ctype)],
            changes))

    def object_to(self, findings: Sequence[Finding], scope: ObjectionScope
                  ) -> Iterator[ItemOutcome]:
        m = self.mapping()
        if not any(scope in tm.cfg.opt_out for tm in m.tables.values()):
            raise CapabilityNotSupported(
                f"system {self.system}: no opt_out columns configured for {scope.value}")

        def changes(tm: TableModel, row: Any, _fs: list[Finding]) -> dict[str, Any]:
            wanted = tm.cfg.opt_out.get(scope, {})
            return {col: value for col, value in wanted.items() if row[col] != value}

        return iter(self._set_rows(findings, f"object to {scope.value}",
                                   lambda tm: list(tm.cfg.opt_out.get(scope, {})), changes))

    def _set_rows(self, findings: Sequence[Finding], what: str, columns: Any, changes: Any
                  ) -> list[ItemOutcome]:
        """Read each row's ``columns(tm)``, write ``changes(tm, row, findings)`` to it:
        DONE where something changed, ALREADY_DONE where nothing had to."""
        m = self.mapping()
        own, others = self._not_owned(findings)
        grouped, bad = self._group(own)
        out = self._bad(bad) + self._shared(others)
        for tname, group in grouped.items():
            tm = m.tables[tname]
            if tname in m.export_only:
                out.extend(export_only_outcomes(group, tname))
                continue
            cols = list(dict.fromkeys(columns(tm)))
            by_pk = group.by_pk()
            if not cols:  # nothing of this kind on these rows (an order has no opt-out)
                out.extend(ItemOutcome(f, ItemStatus.ALREADY_DONE) for f in group.findings)
                continue
            for chunk in chunks(list(by_pk), self._chunk_size(tm)):
                out.extend(self._set_chunk(tm, what, cols, chunk, by_pk, changes))
        return out

    def _set_chunk(self, tm: TableModel, what: str, cols: list[str], chunk: Sequence[Key],
                   by_pk: dict[Key, list[Finding]], changes: Any) -> list[ItemOutcome]:
        out: list[ItemOutcome] = []
        with db_errors(f"{what} {tm.name}"), self._engine.begin() as conn:
            stmt = sa.select(*tm.pk_cols(), *(tm.col(c) for c in cols)).where(
                pk_filter(tm.table, tm.pk, chunk, self._dialect))
            rows = {tuple(r[c] for c in tm.pk): r for r in conn.execute(stmt).mappings()}
            # rows needing the same values are written by one statement
            writes: dict[tuple[tuple[str, Any], ...], list[Key]] = defaultdict(list)
            status: dict[Key, ItemStatus] = {}
            for pk in chunk:
                row = rows.get(pk)
                if row is None:
                    continue
                todo = changes(tm, row, by_pk[pk])
                status[pk] = ItemStatus.DONE if todo else ItemStatus.ALREADY_DONE
                if todo:
                    writes[tuple(sorted(todo.items()))].append(pk)
            for values, pks in writes.items():
                conn.execute(sa.update(tm.table)
                             .where(pk_filter(tm.table, tm.pk, pks, self._dialect))
                             .values(dict(values)))
        for pk in chunk:
            st = status.get(pk)
            out.extend(ItemOutcome(f, st) if st else
                       ItemOutcome(f, ItemStatus.FAILED, error="row not found")
                       for f in by_pk[pk])
        return out
