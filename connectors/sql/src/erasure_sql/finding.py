"""Finding rows: batched identifier lookups, then foreign keys followed to child rows."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from erasure import Finding, Identifier, IdentifierType, Subject

from .dberrors import db_errors
from .mapping import Mapping, TableModel
from .queries import in_values, tuple_in
from .values import (
    NO_MATCH,
    chunks,
    coerce,
    encode_ref,
    json_str,
    normalise_db_value,
    python_type,
)

__all__ = ["FindMixin", "Key"]

_REF_MEMO = 200_000
_Hit = tuple[dict[Identifier, None], dict[str, None]]  # matched identifiers, matched fields
Key = tuple[Any, ...]


def _key_getter(positions: list[int]) -> Callable[[Any], Key]:
    """A function returning the values at ``positions`` of a row, always as a tuple."""
    if len(positions) == 1:
        (i,) = positions
        return lambda row: (row[i],)
    return operator.itemgetter(*positions)


class FindMixin:
    """``find`` of the sql connector (mixed into :class:`~erasure_sql.SqlConnector`)."""

    system: str
    _engine: sa.Engine
    _limit: int
    _dialect: str
    _refs: dict[str, tuple[str, Key]]

    def mapping(self) -> Mapping:
        raise NotImplementedError

    def _columns(self, m: Mapping, tm: TableModel) -> list[sa.Column[Any]]:
        """Columns find reads from ``tm`` (same for every query, so rows can be merged)."""
        names = dict.fromkeys(tm.pk)
        names.update(dict.fromkeys(c for _t, c in tm.identifiers))
        for e in m.edges:
            if e.parent == tm.name:
                names.update(dict.fromkeys(e.parent_cols))
            if e.child == tm.name:
                names.update(dict.fromkeys(e.child_cols))
        return [tm.table.c[n] for n in names]

    def _positions(self, m: Mapping, tm: TableModel) -> dict[str, int]:
        return {c.name: i for i, c in enumerate(self._columns(m, tm))}

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        subjects = list(subjects)
        if not subjects:
            return
        m = self.mapping()
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]] = {}
        for s in subjects:
            for ident in s.identifiers:
                index.setdefault((ident.type, ident.value), []).append((s.key, ident))
        yield from self._find(m, index)

    def _find(
        self, m: Mapping,
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]],
    ) -> list[Finding]:
        hits: dict[str, dict[Key, dict[str, _Hit]]] = {t: {} for t in m.tables}
        rows: dict[str, dict[Key, Any]] = {t: {} for t in m.tables}
        frontier: dict[str, set[Key]] = {}
        with db_errors("find"), self._engine.connect() as conn:
            for tm in m.tables.values():
                cols = self._columns(m, tm)
                for itype, col in tm.identifiers:
                    new = self._find_direct(conn, tm, cols, itype, col, index, hits, rows)
                    frontier.setdefault(tm.name, set()).update(new)
            while frontier:
                frontier = self._follow(conn, m, frontier, hits, rows)
        out: list[Finding] = []
        append = out.append
        refs = self._refs
        if len(refs) > _REF_MEMO:
            refs.clear()
        system = self.system
        related_of = self._related
        as_tuple: dict[int, tuple[Any, ...]] = {}  # shared dicts -> one tuple each
        for tname, tm in m.tables.items():
            table_hits = hits[tname]
            if not table_hits:
                continue
            pos = self._positions(m, tm)
            ident_at = [(itype, pos[col]) for itype, col in tm.identifiers]
            table_rows = rows[tname]
            # encode_ref's output for one integer key, built without the call.
            int_prefix = f"[{json_str(tname)},[" if tm.pk_types == (int,) else None
            related: tuple[Identifier, ...] = ()
            for pk, by_subject in table_hits.items():
                if ident_at:
                    related = related_of(ident_at, table_rows[pk])
                if int_prefix is not None and type(pk[0]) is int:
                    ref = f"{int_prefix}{pk[0]}]]"
                else:
                    ref = encode_ref(tname, pk)
                refs[ref] = (tname, pk)
                for skey, (matched, fields) in by_subject.items():
                    mt = as_tuple.get(id(matched))
                    if mt is None:
                        mt = as_tuple[id(matched)] = tuple(matched)
                    ft = as_tuple.get(id(fields))
                    if ft is None:
                        ft = as_tuple[id(fields)] = tuple(fields)
                    append(Finding(system, skey, ref, tname, mt, ft, related))
        return out

    def _find_direct(
        self, conn: sa.Connection, tm: TableModel, cols: list[sa.Column[Any]],
        itype: IdentifierType, col: str,
        index: dict[tuple[IdentifierType, str], list[tuple[str, Identifier]]],
        hits: dict[str, dict[Key, dict[str, _Hit]]], rows: dict[str, dict[Key, Any]],
    ) -> set[Key]:
        column = tm.col(col)
        email = itype is IdentifierType.EMAIL and python_type(column) is str
        wanted: dict[Any, list[tuple[str, Identifier]]] = {}
        for (t, value), owners in index.items():
            if t is not itype:
                continue
            key = value.lower() if email else coerce(column, value)
            if key is not NO_MATCH and key is not None:
                wanted.setdefault(key, []).extend(owners)
        if not wanted:
            return set()
        expr = sa.func.lower(column) if email else column
        new: set[Key] = set()
        pos = {c.name: i for i, c in enumerate(cols)}
        at, pk_of = pos[col], _key_getter([pos[c] for c in tm.pk])
        table_rows, table_hits = rows[tm.name], hits[tm.name]
        for chunk in chunks(list(wanted), self._limit - 1):
            stmt = sa.select(*cols).where(in_values(self._dialect, expr, chunk, column.type))
            for row in conn.execute(stmt).all():
                raw = row[at]
                # Exact re-check in Python: collations may equate values that are not equal.
                owners = wanted.get(raw.lower() if email and isinstance(raw, str) else raw)
                if not owners:
                    continue
                pk = pk_of(row)
                table_rows[pk] = row
                entry = table_hits.get(pk)
                if entry is None:
                    entry = table_hits[pk] = {}
                for skey, ident in owners:
                    hit = entry.get(skey)
                    if hit is None:
                        hit = entry[skey] = ({}, {})
                    hit[0][ident] = None
                    hit[1][col] = None
                new.add(pk)
        return new

    def _follow(
        self, conn: sa.Connection, m: Mapping, frontier: dict[str, set[Key]],
        hits: dict[str, dict[Key, dict[str, _Hit]]], rows: dict[str, dict[Key, Any]],
    ) -> dict[str, set[Key]]:
        """Find child rows of the rows in ``frontier``; return the rows new or changed."""
        nxt: dict[str, set[Key]] = {}
        for parent, pks in frontier.items():
            for e in m.children(parent):
                child = m.tables[e.child]
                link: dict[Key, dict[str, dict[Identifier, None]]] = {}
                ppos = self._positions(m, m.tables[parent])
                p_at = [ppos[c] for c in e.parent_cols]
                for pk in pks:
                    row = rows[parent][pk]
                    keyv = tuple([row[i] for i in p_at])
                    if any(v is None for v in keyv):
                        continue
                    target = link.setdefault(keyv, {})
                    for skey, (matched, _f) in hits[parent][pk].items():
                        have = target.get(skey)  # dicts are shared: merge into new ones
                        if have is None:
                            target[skey] = matched
                        elif have is not matched:
                            target[skey] = {**have, **matched}
                if not link:
                    continue
                cols = self._columns(m, child)
                cpos = {c.name: i for i, c in enumerate(cols)}
                link_of = _key_getter([cpos[c] for c in e.child_cols])
                pk_of = _key_getter([cpos[c] for c in child.pk])
                ccols = [child.col(c) for c in e.child_cols]
                edge_fields = dict.fromkeys(e.child_cols)
                child_rows, child_hits = rows[child.name], hits[child.name]
                new = nxt.setdefault(child.name, set())
                for chunk in chunks(list(link), (self._limit - 1) // len(ccols)):
                    if len(ccols) == 1:
                        where = in_values(self._dialect, ccols[0], [k[0] for k in chunk],
                                          ccols[0].type)
                    else:
                        where = tuple_in(ccols, chunk)
                    for row in conn.execute(sa.select(*cols).where(where)).all():
                        owners = link.get(link_of(row))
                        if not owners:
                            continue
                        pk = pk_of(row)
                        child_rows[pk] = row
                        entry = child_hits.get(pk)
                        if entry is None:
                            entry = child_hits[pk] = {}
                        for skey, idents in owners.items():
                            if skey not in entry:  # the usual case: one parent row
                                entry[skey] = (idents, edge_fields)
                                new.add(pk)
                            elif self._merge(entry, skey, idents, edge_fields):
                                new.add(pk)
        return {t: pks for t, pks in nxt.items() if pks}

    @staticmethod
    def _merge(
        entry: dict[str, _Hit], skey: str, idents: dict[Identifier, None],
        fields: dict[str, None],
    ) -> bool:
        """Add a subject's match to a row's entry; True if its identifiers grew.

        The dicts are shared between rows and never changed in place.
        """
        cur = entry.get(skey)
        if cur is None:
            entry[skey] = (idents, fields)
            return True
        matched, have = cur
        grown = matched is not idents and not idents.keys() <= matched.keys()
        new_m = {**matched, **idents} if grown else matched
        new_f = have if have is fields or fields.keys() <= have.keys() else {**have, **fields}
        if new_m is not matched or new_f is not have:
            entry[skey] = (new_m, new_f)
        return grown

    @staticmethod
    def _related(ident_at: list[tuple[IdentifierType, int]], row: Any) -> tuple[Identifier, ...]:
        if not ident_at:
            return ()
        out: dict[Identifier, None] = {}
        for itype, i in ident_at:
            value = normalise_db_value(itype, row[i])
            if value is not None:
                out[Identifier(itype, value)] = None
        return tuple(out)

