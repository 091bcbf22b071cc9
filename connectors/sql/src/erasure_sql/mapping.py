"""The validated mapping: reflected tables, identifier columns, rules and the FK graph.

Every table and column name in the config is checked against the reflected schema here, so
that config text never reaches SQL except as a name the database itself reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from erasure import BlockedError, IdentifierType

from .classify import personal_columns
from .settings import AnonymiseRule, SqlSettings, TableSettings
from .values import python_type

__all__ = ["Edge", "Mapping", "TableModel", "build_mapping", "is_blocking"]


def is_blocking(ondelete: str | None) -> bool:
    """Whether a foreign key with this ON DELETE action refuses to delete a referenced row."""
    return ondelete is None or ondelete.upper() in ("RESTRICT", "NO ACTION")


@dataclass(frozen=True)
class Edge:
    """A link from parent rows to child rows (a reflected foreign key or a declared relation)."""

    parent: str
    child: str
    parent_cols: tuple[str, ...]
    child_cols: tuple[str, ...]
    ondelete: str | None
    declared: bool = False
    #: followed for access only: rows reached only this way are never deleted or anonymised.
    export_only: bool = False
    #: the parent holds the key (``customer.address_id -> address.id``): the child row may
    #: be used by other rows too, so it is deleted only when nothing else uses it.
    reverse: bool = False
    #: the child's owner path (see ``_owners``): rows reached through any other forward
    #: link are someone else's (an order paid with the subject's card).
    owner: bool = True


@dataclass
class TableModel:
    """One mapped table: its reflected Table, its settings and its derived rules."""

    name: str
    table: sa.Table
    cfg: TableSettings
    pk: tuple[str, ...]
    identifiers: list[tuple[IdentifierType, str]]
    #: anonymisation rules (explicit, or derived from the identifier columns).
    rules: dict[str, AnonymiseRule]
    #: link columns to parents that get deleted; nulled before those parents are deleted.
    unlink: dict[str, AnonymiseRule] = field(default_factory=dict)
    #: Python types of the primary key columns (to skip coercing values already typed).
    pk_types: tuple[type | None, ...] = ()
    #: personal columns (by name and type) that no rule changes and no ``keep`` keeps:
    #: anonymising these rows would leave them as they are, so it is refused.
    unruled: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.pk_types = tuple(python_type(self.table.c[c]) for c in self.pk)

    @property
    def action(self) -> str:
        return self.cfg.action

    def col(self, name: str) -> sa.Column[Any]:
        return self.table.c[name]

    def pk_cols(self) -> list[sa.Column[Any]]:
        return [self.table.c[c] for c in self.pk]


@dataclass
class Mapping:
    """All mapped tables plus the link graph between them."""

    tables: dict[str, TableModel]
    edges: list[Edge]
    #: every reflected table of the schema, by name.
    all_tables: dict[str, sa.Table]
    #: unmapped tables whose RESTRICT/NO ACTION foreign keys reference a mapped table.
    blockers: dict[str, list[Edge]]
    #: mapped tables, children before parents.
    delete_order: list[str]
    #: tables reached only through ``export_only`` links (and without identifiers).
    export_only: set[str] = field(default_factory=set)
    #: reflected foreign keys a declared reverse link runs against (customer.address_id ->
    #: address.id declared as address's reverse link), by the referenced table. Never
    #: followed by find (the address would lead to every customer living there); checked
    #: by delete like any other reference.
    shadowed: dict[str, list[Edge]] = field(default_factory=dict)

    def children(self, parent: str) -> list[Edge]:
        return [e for e in self.edges if e.parent == parent]

    def descendants(self, tables: Iterable[str]) -> set[str]:
        """Tables reachable from ``tables`` through one or more links."""
        out: set[str] = set()
        todo = list(tables)
        while todo:
            for e in self.children(todo.pop()):
                if e.child not in out:
                    out.add(e.child)
                    todo.append(e.child)
        return out


def _unique_columns(table: sa.Table) -> set[str]:
    out = {c.name for c in table.columns if c.unique or c.primary_key}
    for cons in table.constraints:
        if isinstance(cons, sa.UniqueConstraint) and len(cons.columns) == 1:
            out.update(c.name for c in cons.columns)
    for index in table.indexes:
        if index.unique and len(index.columns) == 1:
            out.update(c.name for c in index.columns)
    return out


def _is_text(column: sa.Column[Any]) -> bool:
    return python_type(column) is str


def _check_rule(
    name: str, table: sa.Table, col: str, rule: AnonymiseRule, problems: list[str]
) -> None:
    column = table.c[col]
    where = f"table {name}, column {col}"
    if column.primary_key:
        problems.append(f"{where}: a primary key column cannot be anonymised")
    elif rule.kind == "null" and not column.nullable:
        problems.append(f'{where}: is NOT NULL, "null" cannot work (use "placeholder")')
    elif rule.kind == "fixed" and col in _unique_columns(table):
        problems.append(f'{where}: is unique, a fixed value cannot work (use "placeholder")')
    elif rule.kind in ("placeholder", "hash") and not _is_text(column):
        problems.append(f'{where}: "{rule.kind}" needs a text column')


def _default_rules(
    name: str, table: sa.Table, idents: Iterable[tuple[IdentifierType, str]], problems: list[str]
) -> dict[str, AnonymiseRule]:
    rules: dict[str, AnonymiseRule] = {}
    unique = _unique_columns(table)
    for _itype, col in idents:
        column = table.c[col]
        if column.primary_key or col in rules:
            continue
        if column.nullable and col not in unique:
            rules[col] = AnonymiseRule(kind="null")
        elif _is_text(column):
            rules[col] = AnonymiseRule(kind="placeholder")
        else:
            problems.append(
                f"table {name}, column {col}: NOT NULL or unique and not text; "
                "declare its anonymise rule"
            )
    return rules


def _edges(settings: SqlSettings, names: dict[str, sa.Table]) -> list[Edge]:
    edges = []
    mapped = set(settings.tables)
    for child in mapped:
        for fk in names[child].foreign_key_constraints:
            parent = fk.referred_table.name
            if parent in mapped:
                edges.append(_fk_edge(fk, child))
        pk = {c.name for c in names[child].primary_key.columns}
        for rel in settings.tables[child].relations:
            parent_pk = {c.name for c in names[rel.parent].primary_key.columns}
            edges.append(
                Edge(
                    parent=rel.parent,
                    child=child,
                    parent_cols=tuple(rel.columns.values()),
                    child_cols=tuple(rel.columns),
                    ondelete="NO CONSTRAINT",
                    declared=True,
                    export_only=rel.export_only,
                    reverse=bool(pk) and set(rel.columns) == pk
                    and set(rel.columns.values()) != parent_pk,
                )
            )
    return sorted(edges, key=lambda e: (e.parent, e.child, e.child_cols))


def _shadow(edges: list[Edge]) -> tuple[list[Edge], dict[str, list[Edge]]]:
    """Reflected foreign keys that a declared reverse link runs against, set apart."""
    reverse = {(e.child, e.parent, frozenset(zip(e.child_cols, e.parent_cols, strict=True)))
               for e in edges if e.reverse}
    kept: list[Edge] = []
    shadowed: dict[str, list[Edge]] = {}
    for e in edges:
        pairs = frozenset(zip(e.parent_cols, e.child_cols, strict=True))
        if not e.declared and (e.parent, e.child, pairs) in reverse:
            shadowed.setdefault(e.parent, []).append(e)
        else:
            kept.append(e)
    return kept, shadowed


def _fk_edge(fk: sa.ForeignKeyConstraint, child: str) -> Edge:
    """The link a reflected foreign key of table ``child`` makes."""
    return Edge(
        parent=fk.referred_table.name,
        child=child,
        parent_cols=tuple(e.column.name for e in fk.elements),
        child_cols=tuple(e.parent.name for e in fk.elements),
        ondelete=fk.ondelete,
    )


def _blockers(settings: SqlSettings, names: dict[str, sa.Table]) -> dict[str, list[Edge]]:
    out: dict[str, list[Edge]] = {}
    mapped = set(settings.tables)
    for tname, table in names.items():
        if tname in mapped:
            continue
        for fk in table.foreign_key_constraints:
            parent = fk.referred_table.name
            if parent in mapped and is_blocking(fk.ondelete):
                out.setdefault(parent, []).append(_fk_edge(fk, tname))
    return out


def _order(tables: list[str], edges: list[Edge]) -> list[str]:
    """Children before parents (Kahn's algorithm); tables in cycles keep config order.

    A reverse link's child (an address) goes after the rows that point at it (a customer).
    """
    pending: dict[str, set[str]] = {t: set() for t in tables}
    for e in edges:
        if e.parent != e.child:
            if e.reverse:
                pending[e.child].add(e.parent)
            else:
                pending[e.parent].add(e.child)
    out: list[str] = []
    while pending:
        ready = [t for t in tables if t in pending and not (pending[t] & pending.keys())]
        if not ready:
            ready = [t for t in tables if t in pending]
        for t in ready:
            del pending[t]
            out.append(t)
    return out


def _forward(e: Edge) -> bool:
    """A link that says whose rows the child's are (not reverse, not for access only)."""
    return not e.reverse and not e.export_only and e.parent != e.child


def _owners(settings: SqlSettings, edges: list[Edge], problems: list[str]) -> list[Edge]:
    """``edges`` with ``owner`` set: per table, the links from its owner parent.

    One parent: that one. Several: the table's ``owner``, else the one parent that holds a
    person's strong identifier (email, phone) itself; otherwise the mapping names the
    choice to make. Reachable is not owned: an order points at its customer and at the card
    it was paid with, and the card may be someone else's.
    """
    strong = {n for n, t in settings.tables.items()
              if any(i in (IdentifierType.EMAIL, IdentifierType.PHONE) for i in t.identifiers)}
    out: list[Edge] = []
    by_child: dict[str, set[str]] = {}
    for e in edges:
        if _forward(e):
            by_child.setdefault(e.child, set()).add(e.parent)
    chosen: dict[str, str] = {}
    for child, parents in by_child.items():
        named = settings.tables[child].owner
        if named is not None:
            if named not in parents:
                problems.append(f"table {child}: owner {named} does not link to it (its "
                                f"parents: {', '.join(sorted(parents))})")
            chosen[child] = named
        elif len(parents) == 1:
            (chosen[child],) = parents
        elif len(people := parents & strong) == 1:
            (chosen[child],) = people
        else:
            problems.append(
                f"table {child}: linked from {', '.join(sorted(parents))}; name the one whose "
                f'rows these are: owner = "{sorted(people or parents)[0]}" (rows reached '
                "through the other links are then kept as shared)")
    for e in edges:
        owner = not _forward(e) or chosen.get(e.child, e.parent) == e.parent
        out.append(e if owner else dataclasses.replace(e, owner=False))
    return out


def _reachable(settings: SqlSettings, edges: list[Edge]) -> set[str]:
    seen = {n for n, t in settings.tables.items() if t.identifiers}
    todo = list(seen)
    while todo:
        parent = todo.pop()
        for e in edges:
            if e.parent == parent and e.owner and e.child not in seen:
                seen.add(e.child)
                todo.append(e.child)
    return seen


def build_mapping(settings: SqlSettings, meta: sa.MetaData) -> Mapping:
    """Validate ``settings`` against the reflected ``meta``; list every problem at once."""
    names = {t.name: t for t in meta.tables.values() if t.schema == settings.db_schema}
    problems: list[str] = []
    for name, cfg in settings.tables.items():
        table = names.get(name)
        if table is None:
            problems.append(f"table {name}: not found in the database schema")
            continue
        if not table.primary_key.columns:
            problems.append(f"table {name}: has no primary key (needed to reference rows)")
        wanted = [c for _t, c in cfg.identifier_columns()] + list(cfg.anonymise)
        wanted += [cfg.restrict_column] if cfg.restrict_column else []
        wanted += [cfg.hold_column] if cfg.hold_column else []
        wanted += cfg.address_columns() + [c for cols in cfg.opt_out.values() for c in cols]
        for rel in cfg.relations:
            wanted += list(rel.columns)
            parent_table = names.get(rel.parent)
            for pcol in rel.columns.values():
                if parent_table is not None and pcol not in parent_table.c:
                    problems.append(f"table {rel.parent}: column {pcol} not found")
        for col in wanted:
            if col not in table.c:
                problems.append(f"table {name}: column {col} not found")
    if problems:
        raise BlockedError("invalid sql mapping: " + "; ".join(problems), system_wide=True)

    edges, shadowed = _shadow(_edges(settings, names))
    edges = _owners(settings, edges, problems)
    reachable = _reachable(settings, edges)
    models: dict[str, TableModel] = {}
    for name, cfg in settings.tables.items():
        table = names[name]
        if name not in reachable:
            problems.append(
                f"table {name}: has no identifiers and no link to a table that has"
            )
        idents = cfg.identifier_columns()
        explicit = cfg.rules()
        for col, rule in explicit.items():
            _check_rule(name, table, col, rule, problems)
        rules = explicit if cfg.anonymise else _default_rules(name, table, idents, problems)
        if cfg.action == "anonymise":
            _check_personal(name, table, cfg, problems)
        models[name] = TableModel(
            name=name,
            table=table,
            cfg=cfg,
            pk=tuple(c.name for c in table.primary_key.columns),
            identifiers=idents,
            rules=rules,
            unruled=tuple(c for c in personal_columns(table) if c not in rules
                          and c not in cfg.anonymise and not table.c[c].primary_key),
        )
    for e in edges:
        parent, child = models[e.parent], models[e.child]
        if e.reverse or e.export_only:
            continue  # the link column is the parent's: nothing to cut in the child
        if parent.action != "delete" or e.parent == e.child or child.action == "delete":
            continue
        if not e.declared and e.ondelete and e.ondelete.upper() == "SET NULL":
            continue
        if child.action == "retain":
            problems.append(
                f"table {e.child} is retained but references {e.parent} (action delete) "
                f"through {', '.join(e.child_cols)}; set {e.parent}'s action to anonymise"
            )
            continue
        for col in e.child_cols:  # anonymised child: cut the link before the parent goes
            column = child.table.c[col]
            if col in child.rules:
                continue
            if not column.nullable:
                problems.append(
                    f"table {e.child}, column {col}: links to {e.parent} (action delete) and "
                    f"is NOT NULL; set {e.parent}'s action to anonymise"
                )
            else:
                child.unlink[col] = AnonymiseRule(kind="null")
    if problems:
        raise BlockedError("invalid sql mapping: " + "; ".join(problems), system_wide=True)
    blockers = _blockers(settings, names)
    export_only = {
        t for t in models
        if not models[t].identifiers
        and (incoming := [e for e in edges if e.child == t and e.parent != t])
        and all(e.export_only for e in incoming)
    }
    return Mapping(models, edges, names, blockers, _order(list(settings.tables), edges),
                   export_only, shadowed)


def _check_personal(name: str, table: sa.Table, cfg: TableSettings, problems: list[str]) -> None:
    """An anonymised table names a rule (or ``keep:<reason>``) for every personal column."""
    missing = [c for c, _g in personal_columns(table).items()
               if c not in cfg.anonymise and not table.c[c].primary_key]
    if missing:
        problems.append(
            f"table {name}: action anonymise leaves personal columns without a rule: "
            f"{', '.join(missing)} (name a rule, or \"keep:<reason>\")")
