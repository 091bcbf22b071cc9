"""Propose a mapping from the reflected schemas, column names, types and sampled values.

The proposal is a whole ``[systems.NAME]`` section (valid TOML a person reviews and puts in
place of the section it came from). Sampled values are only classified and counted: the
output holds schema, table and column names, counts and evidence, never a value.

What it proposes, and why:

- tables with a strong identifier (email, phone) are *owners*: their rows are a person's;
- tables that point at an owner's key (``orders.customer_id``), declared or inferred from
  names, types and overlapping sampled values, belong to that person too (to any depth);
- tables an owned row points at (``customer.address_id -> address.id``) are reached through
  a reverse link: mapped only when they hold personal columns, and their rows still used by
  other people's rows are kept (``shared = "keep"``); catalogues (products) are not mapped;
- an auto-numbered key is never an identifier: the same number is someone else elsewhere.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import sqlalchemy as sa

from .classify import (
    STRONG,
    Guess,
    by_name,
    from_sample,
    is_surrogate,
    is_text,
    people_table,
    summarise,
)
from .dberrors import db_errors
from .links import Link, infer_links
from .settings import SqlSettings
from .values import python_type

__all__ = ["discover", "readable_schemas"]

SAMPLE_ROWS = 50
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast", "mysql",
                   "performance_schema", "sys"}
_KEPT = ("invoice", "receipt", "payment", "tax", "ledger", "booking", "transaction")
_IDENTIFIER_KINDS = ("email", "phone", "ip", "name")
_RULES = {"email": "placeholder", "phone": "null", "ip": "null", "name": "null",
          "card_number": "null", "card_code": "null", "birth_date": "null",
          "national_id": "null", "address": "null"}


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def readable_schemas(engine: sa.Engine, settings: SqlSettings) -> tuple[str | None, list[str]]:
    """(the system's schema as reflection names it, the other schemas to read)."""
    insp = sa.inspect(engine)
    default = insp.default_schema_name
    own = settings.db_schema or default
    if settings.scan_schemas is not None:
        others = [s for s in settings.scan_schemas if s != own]
    else:
        others = sorted(s for s in insp.get_schema_names()
                        if s != own and s.lower() not in _SYSTEM_SCHEMAS
                        and not s.startswith("pg_"))
    return own, others


def _reflect(engine: sa.Engine, schema: str | None) -> list[sa.Table]:
    meta = sa.MetaData()
    meta.reflect(engine, schema=schema)
    return sorted((t for t in meta.tables.values() if t.schema == schema), key=lambda t: t.name)


def _sample(conn: sa.Connection, col: sa.Column[Any]) -> tuple[int, dict[str, int]]:
    stmt = sa.select(col).where(col.is_not(None)).limit(SAMPLE_ROWS)
    return summarise(v for (v,) in conn.execute(stmt))


def _classify(conn: sa.Connection, table: sa.Table) -> dict[str, Guess]:
    out: dict[str, Guess] = {}
    for col in table.columns:
        named = by_name(table, col)
        guess = named
        if not is_surrogate(table, col) and (is_text(col) or (
                python_type(col) is int and named is not None)):
            total, counts = _sample(conn, col)
            guess = from_sample(table, col, named, total, counts)
        if guess is not None:
            out[col.name] = guess
    return out


class _Plan:
    """Which tables are mapped, how, and why (for one schema)."""

    def __init__(self, tables: list[sa.Table], guesses: dict[str, dict[str, Guess]],
                 links: list[Link]) -> None:
        self.tables = {t.name: t for t in tables}
        self.guesses = guesses
        # Rows without a key cannot be referenced: such tables are listed, never mapped.
        self.keyless = {t.name for t in tables if not t.primary_key.columns}
        links = [k for k in links if not {k.child, k.parent} & self.keyless]
        self.links = links
        self.owners = {t for t, g in guesses.items() if t not in self.keyless
                       and any(x.kind in STRONG and x.confidence != "low" for x in g.values())}
        self.owned: set[str] = set()
        changed = True
        while changed:  # rows pointing at a person's row are that person's, to any depth
            changed = False
            for link in links:
                # A table with a person of its own (service_request.email) is not also the
                # rows of whoever it points at (the employee who handled it).
                if (link.parent in self.owners | self.owned
                        and link.child not in self.owners | self.owned):
                    self.owned.add(link.child)
                    changed = True
        # Distance of each owned table from a person's table: the owner path of a table
        # with several parents is the link to the nearest (orders -> customer, not ->
        # payment_card: the card may be someone else's).
        self.depth = dict.fromkeys(self.owners, 0)
        changed = True
        while changed:
            changed = False
            for link in links:
                if link.parent in self.depth and link.child in self.owned and (
                        self.depth.get(link.child, 1 << 30) > self.depth[link.parent] + 1):
                    self.depth[link.child] = self.depth[link.parent] + 1
                    changed = True
        forward = self.owners | self.owned
        self.shared = {link.parent for link in links
                       if link.child in forward and link.parent not in forward
                       and guesses.get(link.parent)}
        self.mapped = forward | self.shared

    def owner(self, table: str) -> tuple[str, list[str]] | None:
        """(the owner parent, every parent) of an owned table several parents link to."""
        if table not in self.owned:
            return None
        parents = sorted({k.parent for k in self.links if k.child == table
                          and k.parent != table and k.parent in self.depth})
        if len(parents) < 2:
            return None
        best = min(parents, key=lambda p: (self.depth[p], not people_table(p), p))
        return best, parents

    def relations(self, table: str) -> list[tuple[Link, bool]]:
        """Links to write on ``table``: (link, reverse?); declared keys are followed
        without one, except in reverse (the connector then stops following the key from
        the referenced row to every row that uses it)."""
        out = []
        forward = self.owners | self.owned
        for link in self.links:
            if link.declared and not (link.parent == table and table in self.shared):
                continue  # a declared forward key is followed without a relation
            if (link.child == table and link.parent in forward and table in self.owned
                    and link.parent != table):
                out.append((link, False))
            elif link.parent == table and table in self.shared and link.child in self.mapped:
                out.append((link, True))
        return out


def _url_lines(system: str, settings: SqlSettings) -> list[str]:
    url = sa.make_url(settings.url.get_secret_value())
    if url.password is None:
        return [f"url = {json.dumps(url.render_as_string(hide_password=False))}"]
    env = re.sub(r"[^A-Z0-9]", "_", system.upper()) + "_URL"
    return ["# the URL holds a password: give it from the environment",
            f"url = {{ env = {json.dumps(env)} }}"]


def _table_lines(sys_key: str, plan: _Plan, name: str) -> list[str]:
    table = plan.tables[name]
    guesses = plan.guesses.get(name, {})
    out = ["", f"[{sys_key}.tables.{_key(name)}]"]
    if name in plan.owners:
        out.append("# rows of one person: it holds a strong identifier")
    elif name in plan.owned:
        out.append("# rows of one person: they point at a person's row")
    else:
        out.append("# reached through reverse links: rows other people's rows still use are "
                   "kept and reported (shared)")
    for col in table.columns:
        g = guesses.get(col.name)
        if g is not None:
            out.append(f"#   {col.name}: {g.kind}, {g.confidence} confidence ({g.evidence})")
        elif is_surrogate(table, col):
            out.append(f"#   {col.name}: auto-numbered key, never an identifier (the same "
                       "number is another person in another schema or system)")
    idents: dict[str, list[str]] = {}
    for col_name, g in guesses.items():
        if g.kind in _IDENTIFIER_KINDS and g.confidence != "low" and (
                g.kind != "name" or people_table(name)):
            idents.setdefault(g.kind, []).append(col_name)
    if idents:
        pairs = ", ".join(f"{k} = {json.dumps(v[0]) if len(v) == 1 else json.dumps(v)}"
                          for k, v in idents.items())
        out.append(f"identifiers = {{ {pairs} }}")
    out.append('action = "delete"')
    rules = _rules(table, guesses)
    if rules:
        note = ("records the law may oblige you to keep" if any(
            w in name.lower() for w in _KEPT) else "to keep the rows without the person")
        text = ", ".join(f"{_key(c)} = {json.dumps(r)}" for c, r in rules.items())
        out += ["# what anonymising its rows does (a request under policy \"anonymise\", or",
                '# action = "anonymise"): every personal column has a rule, or "keep:<reason>"',
                f"anonymise = {{ {text} }}",
                f'# {note}: anonymise instead of deleting: action = "anonymise"']
    for link in plan.links:
        if (link.child == name and name in plan.owners and link.parent != name
                and link.parent in plan.owners | plan.owned):
            if link.declared:
                out.append(f"# WARNING {name}.{link.column} -> {link.parent}.{link.key} is a "
                           f"declared foreign key: the connector follows it, so erasing a "
                           f"{link.parent} row erases these rows too, though they have a "
                           "person of their own; review")
            else:
                out.append(f"# {name}.{link.column} -> {link.parent}.{link.key}: not followed "
                           "(its rows have a person of their own); add a relation if they "
                           f"are also {link.parent}'s")
    for fk in table.foreign_key_constraints:
        cols = ", ".join(e.parent.name for e in fk.elements)
        out.append(f"# foreign key ({cols}) -> {fk.referred_table.name}, followed "
                   "automatically")
    rels = plan.relations(name)
    if rels:
        out.append("relations = [")
        for link, reverse in rels:
            out.append(f"  # {link.child}.{link.column} -> {link.parent}.{link.key} "
                       f"({link.evidence})")
            if reverse:
                out.append(f"  {{ parent = {json.dumps(link.child)}, columns = "
                           f"{{ {_key(link.key)} = {json.dumps(link.column)} }} }},")
            else:
                out.append(f"  {{ parent = {json.dumps(link.parent)}, columns = "
                           f"{{ {_key(link.column)} = {json.dumps(link.key)} }} }},")
        out.append("]")
    if name in plan.shared:
        out.append('shared = "keep"')
    owner = plan.owner(name)
    if owner is not None:
        best, parents = owner
        out.append(f"# linked from {', '.join(parents)}: the rows are {best}'s (the nearest "
                   "person); rows reached only through another link are someone else's,")
        out.append("# kept and reported as shared, never erased nor exported")
        out.append(f"owner = {json.dumps(best)}")
    return out


def _rules(table: sa.Table, guesses: dict[str, Guess]) -> dict[str, str]:
    """An anonymise rule for every personal column the column's constraints allow: NULL
    where it may be NULL, a placeholder for NOT NULL or unique text, else a ``keep`` that
    says what to decide. Never for a primary key column (its rows are deleted instead)."""
    unique = {c.name for c in table.columns if c.unique}
    unique |= {c.name for i in table.indexes if i.unique and len(i.columns) == 1
               for c in i.columns}
    out = {}
    for col, g in guesses.items():
        if g.kind not in _RULES or table.c[col].primary_key:
            continue
        column = table.c[col]
        rule = _RULES[g.kind]
        if rule == "null" and (not column.nullable or col in unique):
            rule = "placeholder" if is_text(column) else None  # type: ignore[assignment]
        elif rule == "placeholder" and not is_text(column):
            rule = "null" if column.nullable else None  # type: ignore[assignment]
        out[col] = rule or f"keep:review: NOT NULL {column.type}, choose a value to write"
    return out


def _unmapped_lines(plan: _Plan) -> list[str]:
    out = []
    for name in sorted(set(plan.tables) - plan.mapped):
        guesses = plan.guesses.get(name, {})
        linked = sorted({f"{k.child}.{k.column}" for k in plan.links if k.parent == name})
        why = "no personal data found"
        if name in plan.keyless and guesses:
            why = ("no primary key, so the connector cannot reference its rows (add one, "
                   "then map it); the deep scan reports what it holds. Personal: "
                   + ", ".join(f"{c} ({g.kind})" for c, g in guesses.items()))
        elif guesses:
            cols = ", ".join(f"{c} ({g.kind}, {g.confidence})" for c, g in guesses.items())
            why = f"possibly personal but no row is linked to a person: {cols}"
            if all(g.kind == "name" for g in guesses.values()):
                # A name is weak: linked by a name only, its rows are never erased
                # automatically, but each erasure searches them for the person's names.
                why += ("; linked by a name only (weak): after each erasure its names are "
                        "searched for the person's, and a match is reported for review")
        elif linked:
            why = f"not personal (a catalogue?), used by {', '.join(linked)}"
        out.append(f"# table {name}: not mapped: {why}")
    return out


def discover(engine: sa.Engine, system: str, settings: SqlSettings) -> str:
    """Reflect the schemas and return a proposed ``[systems.SYSTEM]`` section (names only)."""
    with db_errors("discover"):
        own, others = readable_schemas(engine, settings)
        reflect_own = settings.db_schema  # None: the URL's default, as the mapping reflects
        tables = _reflect(engine, reflect_own)
        with engine.connect() as conn:
            guesses = {t.name: g for t in tables if (g := _classify(conn, t))}
            links, link_notes = infer_links(conn, tables)
        plan = _Plan(tables, guesses, links)
        other_lines: list[str] = []
        read: list[str] = []
        for schema in others:
            try:
                other = _reflect(engine, schema)
                with engine.connect() as conn:
                    found = {t.name: g for t in other if (g := _classify(conn, t))}
            except sa.exc.SQLAlchemyError as exc:
                other_lines.append(f"# schema {schema}: not readable ({type(exc).__name__})")
                continue
            if not other:
                continue
            read.append(schema)
            for t in other:
                table_guesses = found.get(t.name)
                kinds = ", ".join(f"{c} ({x.kind})" for c, x in table_guesses.items()
                                  ) if table_guesses else "none"
                other_lines.append(f"# schema {schema}, table {t.name}: personal: {kinds}")

    sys_key = f"systems.{_key(system)}"
    out = [
        f"# Proposed mapping for system {json.dumps(system)} (connector sql).",
        f"# Schemas read: {', '.join([str(own)] + read)}; mapped: {own}.",
        "# Built from the schema, column names and types and sampled values (only counted,",
        "# never shown). Review every table, then let this section replace the one it came",
        "# from (see the sql connector's README). Host keys (policy, reason, enabled) and",
        "# hash_key are not repeated here: copy yours.",
        f"[{sys_key}]",
        'connector = "sql"',
        *_url_lines(system, settings),
    ]
    if settings.db_schema is not None:
        out.append(f"schema = {json.dumps(settings.db_schema)}")
    if settings.max_params is not None:
        out.append(f"max_params = {settings.max_params}")
    if read:
        out.append("# the deep scan (verification beyond the mapping) searches these too")
        out.append(f"scan_schemas = {json.dumps(read)}")
    if settings.deep_scan.exclude:
        out.append("# deep_scan.exclude: keep yours")
    out.extend(other_lines)
    out.extend(f"# link candidate {n}" for n in link_notes)
    if not plan.mapped:
        out.append("# no table with personal data was found: nothing to map")
    for name in sorted(plan.mapped):
        out.extend(_table_lines(sys_key, plan, name))
    out.append("")
    out.extend(_unmapped_lines(plan))
    out.extend(f"# index: {line}" for line in _index_advice(engine, system, settings, out))
    return "\n".join(out) + "\n"


def _index_advice(engine: sa.Engine, system: str, settings: SqlSettings, lines: list[str]
                  ) -> list[str]:
    """The CREATE INDEX statements the proposed mapping's lookups need (see
    :mod:`erasure_sql.indexes`); nothing if the proposal maps nothing."""
    from erasure.connector import validating_for

    from .indexes import unserved
    from .mapping import build_mapping

    section = tomllib.loads("\n".join(lines))["systems"][system]
    if not section.get("tables"):
        return []
    section.pop("connector", None)
    section["url"] = settings.url.get_secret_value()
    with validating_for("discover"):
        proposed = SqlSettings.model_validate(section)
    meta = sa.MetaData(schema=settings.db_schema)
    meta.reflect(engine, schema=settings.db_schema)
    return unserved(engine, build_mapping(proposed, meta))
