"""Random worlds for the model-based test of the orchestrator (``tests/test_model.py``).

A world is people, systems, items, requests and faults. Every item belongs to exactly one
person, so the test can say of every change whether it was allowed. This module holds:

- the world's values and a ``describe`` that makes a shrunk counterexample readable,
- the hypothesis strategy that draws worlds,
- the model: which items a request reaches through strong identifiers, computed from the
  world alone (never from the orchestrator's own findings),
- the harness: connector subclasses that inject the world's faults and a crash, journal
  deletes, and shuffle the order of findings,
- seeding the systems' storage and reading it back.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from erasure_sql import SqlConnector
from hypothesis import strategies as st

from erasure import (
    Finding,
    ItemOutcome,
    ItemStatus,
    PermanentError,
    Record,
    Subject,
    TransientError,
    hookimpl,
)
from erasure.testing import MemoryConnector, MemoryStore

STRONG_TYPES = frozenset({"email", "customer_id", "user_id"})
SCOPED_TYPES = frozenset({"customer_id", "user_id"})
REQUEST_TYPES = ("erasure", "access", "find", "portability", "restriction")
# Drawn more often: the requests that change or hand out data, the policy that deletes.
_LIKELY = ("erasure", "access", "erase")
CHANGING_TYPES = frozenset({"erasure", "restriction"})
EXPORTING_TYPES = frozenset({"access", "portability"})
POLICIES = ("erase", "anonymise", "restrict", "retain")
LEGACY_SCOPE = "global"  # the old engine has no id spaces: every id is global

# Lookalike addresses: an IMAP-style substring match of "bob@x.org" also hits "jimbob@x.org".
LOCAL_PARTS = ("bob", "jimbob", "ann", "joann", "bob.b", "anne")
DOMAINS = ("x.org", "x.org.uk")
ADDRESSES = tuple(f"{lp}@{d}" for d in DOMAINS for lp in LOCAL_PARTS)
PHONES = ("+4915100000001", "+4915100000002")  # few: people share them (weak)
NAMES = ("Ann Lee", "Bob Ray")  # few: people share them (weak)
# The sql systems' customers table maps these identifier types to these columns.
SQL_COLUMNS = {"email": "email", "phone": "phone", "customer_id": "cust_no", "name": "name"}

MIdent = tuple[str, str, str | None]
"""An identifier in the model: (type, normalised value, scope); scope None = global type."""


# -- the world -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemSpec:
    name: str
    kind: Literal["memory", "sql"]
    policy: str
    #: (identifier type, id space) this system's scoped ids belong to; absent: its own ids.
    spaces: tuple[tuple[str, str], ...] = ()

    def space(self, itype: str) -> str | None:
        return dict(self.spaces).get(itype)


@dataclass(frozen=True)
class Person:
    index: int
    email: str
    alias: str  # a second address, on some items only: reachable through expansion
    phone: str
    name: str
    #: (identifier type, scope) -> this person's id there; one scope reuses another's values.
    ids: tuple[tuple[tuple[str, str], str], ...]

    def id_in(self, itype: str, scope: str) -> str:
        return dict(self.ids)[(itype, scope)]


@dataclass(frozen=True)
class Item:
    key: str  # "m0/c3" (also the memory ref), "shop/customers/2", "shop/orders/5"
    system: str
    kind: str  # contact | customers | orders
    owner: int
    idents: tuple[tuple[str, str], ...]  # (identifier type, value as stored)
    other: tuple[tuple[str, Any], ...]  # the fields that identify nobody, as stored
    parent: str | None = None  # an order's customer row
    row_id: int | None = None

    @property
    def table(self) -> str:
        return self.kind


@dataclass(frozen=True)
class Req:
    type: str
    owner: int
    #: as RequestSpec takes them: (type, value) or (type, value, id space)
    identifiers: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Faults:
    system: str
    transient_calls: frozenset[int] = frozenset()  # n-th calls of the run: TransientError
    poison: frozenset[str] = frozenset()  # an act call holding one raises PermanentError
    fail: frozenset[str] = frozenset()  # FAILED outcome on delete/anonymise/restrict
    flaky: frozenset[str] = frozenset()  # FAILED transiently, once

    def longest_burst(self) -> int:
        best = run = 0
        for n in range(1, max(self.transient_calls, default=0) + 1):
            run = run + 1 if n in self.transient_calls else 0
            best = max(best, run)
        return best


@dataclass(frozen=True)
class CrashSpec:
    system: str
    call: int  # the n-th connector call of this system once the real run starts
    after: bool  # after the call did its work (which the ledger then never hears of)


@dataclass(frozen=True)
class World:
    legacy: bool
    people: tuple[Person, ...]
    systems: tuple[SystemSpec, ...]
    items: tuple[Item, ...]
    requests: tuple[Req, ...]
    batch_size: int
    expansion_rounds: int
    max_attempts: int
    faults: tuple[Faults, ...]
    crash: CrashSpec | None
    run_order: tuple[str, ...]  # systems as the run's config declares them (plans: as drawn)
    seed: int

    def system(self, name: str) -> SystemSpec:
        return next(s for s in self.systems if s.name == name)

    def item(self, key: str) -> Item:
        return self._items[key]

    @cached_property
    def _items(self) -> dict[str, Item]:
        return {i.key: i for i in self.items}

    def faults_of(self, system: str) -> Faults:
        return next((f for f in self.faults if f.system == system), Faults(system))

    def scope(self, system: str, itype: str) -> str | None:
        """The scope of ``itype`` ids found in ``system``: None for global types, the id
        space it is declared in, else the system's own ids."""
        if itype not in SCOPED_TYPES:
            return None
        if self.legacy:
            return LEGACY_SCOPE
        return self.system(system).space(itype) or f"local:{system}"

    def id_spaces(self) -> dict[str, dict[str, Any]]:
        """The config's ``id_spaces`` section (empty in legacy mode)."""
        if self.legacy:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for itype, space in (("customer_id", "customer"), ("customer_id", "legacy"),
                             ("user_id", "login")):
            members = [s for s in self.run_order if self.system(s).space(itype) == space]
            if members:
                out[space] = {"type": itype, "systems": members}
        out["customer"]["default"] = True  # "legacy" ids must be named in a request
        return out

    def __repr__(self) -> str:
        return describe(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints a falsifying example with this (IPython's protocol); without it
        # a dataclass is shown field by field, which buries the story.
        printer.text(describe(self))


def describe(w: World) -> str:
    """The world as a reader wants a counterexample: who holds what where, who asks what."""
    lines = [
        f"World(legacy={w.legacy}): batch_size={w.batch_size}, "
        f"expansion_rounds={w.expansion_rounds}, retry max_attempts={w.max_attempts}, "
        f"run config declares systems as {', '.join(w.run_order)}",
        "people:",
    ]
    for p in w.people:
        ids = " ".join(f"{t}@{s}={v}" for (t, s), v in p.ids)
        lines.append(f"  p{p.index}: {p.email} (alias {p.alias}) {p.phone} {p.name!r}; {ids}")
    lines.append("systems:")
    for s in w.systems:
        spaces = ", ".join(f"{t} in {sp}" for t, sp in s.spaces) or (
            "no id spaces: every id is global" if w.legacy else "ids of its own only")
        lines.append(f"  {s.name}: {s.kind}, policy {s.policy}, {spaces}")
    lines.append("items:")
    for i in w.items:
        idents = " ".join(f"{t}={v}" for t, v in i.idents) or "(no identifiers)"
        under = f" (order of {i.parent})" if i.parent else ""
        lines.append(f"  {i.key} of p{i.owner}: {idents}{under}")
    lines.append("requests, in claim order:")
    for n, r in enumerate(w.requests):
        ids = ", ".join("=".join(x[:2]) + (f"@{x[2]}" if len(x) > 2 else "")
                        for x in r.identifiers)
        lines.append(f"  #{n} {r.type} for p{r.owner} by {ids}")
    for f in w.faults:
        parts = []
        if f.transient_calls:
            parts.append(f"TransientError at calls {sorted(f.transient_calls)}")
        for label, keys in (("PermanentError on act calls holding", f.poison),
                            ("FAILED outcome for", f.fail),
                            ("transient FAILED once for", f.flaky)):
            if keys:
                parts.append(f"{label} {', '.join(sorted(keys))}")
        if parts:
            lines.append(f"faults in {f.system}: " + "; ".join(parts))
    if w.crash:
        moment = "after doing its work" if w.crash.after else "before doing anything"
        lines.append(f"crash: {w.crash.system}'s call {w.crash.call} of the run dies "
                     f"{moment}; a fresh orchestrator resumes")
    return "\n".join(lines)


# -- drawing worlds ------------------------------------------------------------------------


@st.composite
def worlds(draw: st.DrawFn, legacy: bool,
           request_types: Sequence[str] = REQUEST_TYPES) -> World:
    """Draw a world. Every choice shrinks towards the plain case (one id space, erase
    policies, no faults, one batch), and requests, items and faults are drawn as list
    elements, so the shrinker drops whole ones: a shrunk counterexample keeps what matters.
    ``request_types`` narrows the requests (to look at one kind of failure at a time)."""
    n_people = draw(st.integers(2, 4), label="people")
    addresses = draw(st.lists(st.sampled_from(ADDRESSES), min_size=2 * n_people,
                              max_size=2 * n_people, unique=True))
    n_memory = draw(st.integers(1, 3), label="memory systems")
    n_sql = draw(st.integers(1, 2), label="sql systems")
    names = [f"m{i}" for i in range(n_memory)] + ["shop", "shop2"][:n_sql]
    systems = [draw(system_specs(name, legacy)) for name in names]
    if not legacy and not any(s.space("customer_id") == "customer" for s in systems):
        first = systems[0]
        systems[0] = SystemSpec(first.name, first.kind, first.policy,
                                (("customer_id", "customer"),
                                 *[p for p in first.spaces if p[0] != "customer_id"]))
    provisional = World(legacy, (), tuple(systems), (), (), 1, 0, 1, (), None, tuple(names), 0)

    # Each scope numbers people in its own order: "C2" is p1 in one space, p0 in another.
    scopes = sorted({(t, str(provisional.scope(s.name, t))) for s in systems
                     for t in SCOPED_TYPES})
    perms = {sc: draw(st.permutations(range(n_people))) for sc in scopes}
    people = tuple(
        Person(
            index=p, email=addresses[2 * p], alias=addresses[2 * p + 1],
            phone=draw(st.sampled_from(PHONES)), name=draw(st.sampled_from(NAMES)),
            ids=tuple(((t, sc), f"{'C' if t == 'customer_id' else 'U'}{perms[(t, sc)][p] + 1}")
                      for t, sc in scopes),
        )
        for p in range(n_people)
    )

    items: list[Item] = []
    for spec in systems:
        rows = itertools.count(1)
        orders = itertools.count(1)
        drawn = draw(st.lists(item_draws(provisional, spec, people), max_size=6),
                     label=f"items in {spec.name}")
        for owner, idents, n_orders in drawn:
            if spec.kind == "memory":
                n = len(items) + 1
                key = f"{spec.name}/c{n}"
                items.append(Item(key, spec.name, "contact", owner, idents,
                                  (("uid", key), ("note", f"note {n}"))))
                continue
            rid = next(rows)
            key = f"{spec.name}/customers/{rid}"
            items.append(Item(key, spec.name, "customers", owner, idents,
                              (("note", f"customer {rid}"),), row_id=rid))
            for _ in range(n_orders):
                oid = next(orders)
                items.append(Item(f"{spec.name}/orders/{oid}", spec.name, "orders", owner,
                                  (), (("customer_id", rid), ("item", f"order {oid}")),
                                  parent=key, row_id=oid))

    requests = draw(st.lists(request_draws(provisional, people, request_types),
                             min_size=1, max_size=8), label="requests")
    batch_size = draw(st.sampled_from((100, 2, 1, 3, 5)), label="batch_size")
    faults = [f for spec in systems
              if (f := draw(system_faults(spec.name, items), label=f"faults in {spec.name}"))]
    crash = draw(st.none() | st.builds(CrashSpec, st.sampled_from(names), st.integers(1, 12),
                                       st.booleans()), label="crash")
    return World(
        legacy=legacy,
        people=people,
        systems=tuple(systems),
        items=tuple(items),
        requests=tuple(requests),
        batch_size=batch_size,
        expansion_rounds=draw(st.sampled_from((2, 0, 1, 3)), label="expansion_rounds"),
        max_attempts=draw(st.sampled_from((3, 2)), label="max_attempts"),
        faults=tuple(faults),
        crash=crash,
        run_order=tuple(draw(st.permutations(names), label="run order")),
        seed=draw(st.integers(0, 2**16), label="seed"),
    )


@st.composite
def system_specs(draw: st.DrawFn, name: str, legacy: bool) -> SystemSpec:
    kind: Literal["memory", "sql"] = "sql" if name.startswith("shop") else "memory"
    policy = draw(st.sampled_from(_weighted(POLICIES)))
    spaces: list[tuple[str, str]] = []
    if not legacy:
        cid = draw(st.sampled_from(("customer", "legacy", None)))
        if cid:
            spaces.append(("customer_id", cid))
        if kind == "memory":  # the shop tables have no user id column
            uid = draw(st.sampled_from(("login", None)))
            if uid:
                spaces.append(("user_id", uid))
    return SystemSpec(name, kind, policy, tuple(spaces))


@st.composite
def system_faults(draw: st.DrawFn, system: str, items: list[Item]) -> Faults | None:
    if not draw(st.booleans()):
        return None
    keys = sorted(i.key for i in items if i.system == system)
    # sql: per-item failures hit customer rows; a withheld order under a deleted customer
    # would make the database refuse the whole call, which is the poison case already.
    item_keys = [k for k in keys if "/orders/" not in k]
    bursts = draw(st.lists(st.tuples(st.integers(1, 14), st.integers(1, 4)), max_size=2))
    return Faults(
        system,
        transient_calls=frozenset(start + k for start, n in bursts for k in range(n)),
        poison=_subset(draw, keys, 1),
        fail=_subset(draw, item_keys, 2),
        flaky=_subset(draw, item_keys, 2),
    )


def _weighted(choices: Sequence[str]) -> list[str]:
    """``choices`` in order (the first is where shrinking goes), likely ones twice."""
    return [*choices, *(c for c in choices if c in _LIKELY)]


def _subset(draw: st.DrawFn, keys: list[str], most: int) -> frozenset[str]:
    if not keys:
        return frozenset()
    return frozenset(draw(st.sets(st.sampled_from(keys), max_size=most)))


@st.composite
def item_draws(draw: st.DrawFn, w: World, spec: SystemSpec, people: tuple[Person, ...],
               ) -> tuple[int, tuple[tuple[str, str], ...], int]:
    """(owner, identifiers as stored, number of orders) of one item."""
    p = people[draw(st.integers(0, len(people) - 1))]
    idents: list[tuple[str, str]] = []
    which = draw(st.sampled_from((None, "email", "alias")))
    if which:
        address = p.email if which == "email" else p.alias
        if spec.kind == "sql" and draw(st.booleans()):
            address = address.upper()  # stored in any case; matched case-insensitively
        idents.append(("email", address))
    if draw(st.booleans()):
        idents.append(("phone", p.phone))
    if draw(st.booleans()):
        idents.append(("name", p.name))
    if draw(st.booleans()):
        idents.append(("customer_id",
                       p.id_in("customer_id", str(w.scope(spec.name, "customer_id")))))
    if spec.kind == "memory" and draw(st.booleans()):
        idents.append(("user_id", p.id_in("user_id", str(w.scope(spec.name, "user_id")))))
    orders = draw(st.integers(0, 2)) if spec.kind == "sql" else 0
    return p.index, tuple(idents), orders


@st.composite
def request_draws(draw: st.DrawFn, w: World, people: tuple[Person, ...],
                  request_types: Sequence[str]) -> Req:
    rtype = draw(st.sampled_from(_weighted(request_types)))
    p = people[draw(st.integers(0, len(people) - 1))]
    ids: list[tuple[str, ...]] = []
    if draw(st.booleans()):
        ids.append(("email", p.email.upper() if draw(st.booleans()) else p.email))
    if draw(st.booleans()):
        ids.append(("email", p.alias))
    if draw(st.booleans()):
        ids.append(("phone", p.phone))
    if draw(st.booleans()):
        ids.append(("name", p.name))
    declared = {(t, w.scope(s.name, t)) for s in w.systems for t in SCOPED_TYPES}
    if w.legacy:
        choices: list[tuple[str, str, bool]] = [
            (t, LEGACY_SCOPE, False) for t in sorted(SCOPED_TYPES) if (t, LEGACY_SCOPE) in declared
        ]
    else:
        # The default space may be named or left out; "legacy" ids must be named.
        choices = [("customer_id", "customer", False), ("customer_id", "customer", True)]
        if ("customer_id", "legacy") in declared:
            choices.append(("customer_id", "legacy", True))
        if ("user_id", "login") in declared:
            choices += [("user_id", "login", False), ("user_id", "login", True)]
    for itype, scope, named in draw(st.lists(st.sampled_from(choices), max_size=2,
                                             unique_by=lambda c: c[:2])):
        value = p.id_in(itype, scope)
        ids.append((itype, value, scope) if named else (itype, value))
    if not ids:
        ids.append(("email", p.email))
    return Req(rtype, p.index, tuple(ids))


# -- the model -----------------------------------------------------------------------------


def normalise(itype: str, value: str) -> str:
    return value.lower() if itype == "email" else value


def item_idents(w: World, item: Item) -> list[MIdent]:
    return [(t, normalise(t, v), w.scope(item.system, t)) for t, v in item.idents]


def matches(w: World, item: Item, ident: MIdent) -> bool:
    """Whether a search for ``ident`` in the item's system may find the item."""
    return ident in item_idents(w, item)


def request_idents(w: World, req: Req) -> list[MIdent]:
    out: list[MIdent] = []
    for ident in req.identifiers:
        itype, value = ident[0], ident[1]
        if itype not in SCOPED_TYPES:
            out.append((itype, normalise(itype, value), None))
        elif w.legacy:
            out.append((itype, value, LEGACY_SCOPE))
        else:
            default = "customer" if itype == "customer_id" else "login"
            out.append((itype, value, ident[2] if len(ident) > 2 else default))
    return out


def reach(w: World, req: Req, rounds: int | None,
          unsearched: frozenset[str] = frozenset()) -> dict[str, int]:
    """Items strongly reachable from the request: key -> the expansion round that finds it.

    Round 0 searches the request's strong identifiers; an identifier of a strong type on an
    item found through a strong identifier is searched in the next round (scoped ids only
    in their own scope), up to ``rounds`` (None: to the fixpoint). Orders come with their
    customer row. Systems in ``unsearched`` (their search failed) find nothing, so the
    paths through them are cut.
    """
    known = {i: 0 for i in request_idents(w, req) if i[0] in STRONG_TYPES}
    found: dict[str, int] = {}
    frontier = set(known)
    depth = 0
    while frontier and (rounds is None or depth <= rounds):
        new: set[MIdent] = set()
        for item in w.items:
            if (item.key in found or item.system in unsearched
                    or not any(matches(w, item, i) for i in frontier)):
                continue
            found[item.key] = depth
            for ident in item_idents(w, item):
                if ident[0] in STRONG_TYPES and ident not in known:
                    known[ident] = depth + 1
                    new.add(ident)
        frontier = new
        depth += 1
    for item in w.items:
        if item.parent in found:
            found[item.key] = found[item.parent]
    return found


def subject_values(w: World, owner: int) -> set[tuple[str, str]]:
    """Every identifying value of a person, as (type, normalised value)."""
    return {(t, normalise(t, v)) for i in w.items if i.owner == owner for t, v in i.idents}


# -- storage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One item as a system's own storage holds it (None in a mapping: deleted)."""

    idents: Mapping[str, str]  # identifier type -> stored value; erased ones are absent
    other: Mapping[str, Any]
    restricted: bool

    @classmethod
    def original(cls, item: Item) -> Seen:
        idents = {t: (v.lower() if t == "email" and item.kind == "contact" else v)
                  for t, v in item.idents}  # the memory store lower-cases emails
        return cls(idents, dict(item.other), False)


_stores = itertools.count()


def store_names(w: World) -> dict[str, str]:
    """A fresh memory store name per memory system (stores are process-wide)."""
    n = next(_stores)
    return {s.name: f"model{n}-{s.name}" for s in w.systems if s.kind == "memory"}


def sql_url(folder: Path, system: str) -> str:
    return f"sqlite:///{folder / system}.db"


def _shop_tables(meta: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    customers = sa.Table(
        "customers", meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # surrogate key
        sa.Column("email", sa.String(120)), sa.Column("phone", sa.String(40)),
        sa.Column("cust_no", sa.String(20)), sa.Column("name", sa.String(80)),
        sa.Column("note", sa.String(80)),
        sa.Column("restricted", sa.Boolean, nullable=False, default=False),
    )
    orders = sa.Table(
        "orders", meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("item", sa.String(80)),
        sa.Column("restricted", sa.Boolean, nullable=False, default=False),
    )
    return customers, orders


def seed(w: World, folder: Path, stores: Mapping[str, str]) -> None:
    for spec in w.systems:
        mine = [i for i in w.items if i.system == spec.name]
        if spec.kind == "memory":
            store = MemoryStore.named(stores[spec.name])
            for i in mine:
                store.add(i.key, i.kind, {**dict(i.idents), **dict(i.other)})
            continue
        meta = sa.MetaData()
        customers, orders = _shop_tables(meta)
        engine = sa.create_engine(sql_url(folder, spec.name))
        try:
            meta.create_all(engine)
            with engine.begin() as conn:
                for i in mine:
                    if i.kind == "customers":
                        cols = {SQL_COLUMNS[t]: v for t, v in i.idents}
                        conn.execute(customers.insert().values(
                            id=i.row_id, restricted=False, **cols, **dict(i.other)))
                for i in mine:
                    if i.kind == "orders":
                        conn.execute(orders.insert().values(
                            id=i.row_id, restricted=False, **dict(i.other)))
        finally:
            engine.dispose()


def observe(w: World, folder: Path, stores: Mapping[str, str]) -> dict[str, Seen | None]:
    """Every item of the world as its system's storage holds it now."""
    out: dict[str, Seen | None] = {i.key: None for i in w.items}
    for spec in w.systems:
        if spec.kind == "memory":
            for ref, data in MemoryStore.named(stores[spec.name]).items.items():
                fields = data["fields"]
                out[ref] = Seen({k: v for k, v in fields.items() if k in _IDENT_TYPES},
                                {k: v for k, v in fields.items() if k not in _IDENT_TYPES},
                                bool(data["restricted"]))
            continue
        meta = sa.MetaData()
        customers, orders = _shop_tables(meta)
        engine = sa.create_engine(sql_url(folder, spec.name))
        try:
            with engine.connect() as conn:
                for row in conn.execute(sa.select(customers)).mappings():
                    out[f"{spec.name}/customers/{row['id']}"] = Seen(
                        {t: row[c] for t, c in SQL_COLUMNS.items() if row[c] is not None},
                        {"note": row["note"]}, bool(row["restricted"]))
                for row in conn.execute(sa.select(orders)).mappings():
                    out[f"{spec.name}/orders/{row['id']}"] = Seen(
                        {}, {"customer_id": row["customer_id"], "item": row["item"]},
                        bool(row["restricted"]))
        finally:
            engine.dispose()
    return out


_IDENT_TYPES = frozenset({"email", "phone", "customer_id", "user_id", "name", "ip"})


def record_key(system: str, kind: str, data: Mapping[str, Any]) -> str | None:
    """The item an exported record is a copy of."""
    if kind == "contact":
        uid = data.get("uid")
        return str(uid) if uid else None
    if kind in ("customers", "orders") and "id" in data:
        return f"{system}/{kind}/{data['id']}"
    return None


def record_as_seen(kind: str, data: Mapping[str, Any]) -> Seen:
    if kind == "contact":
        return Seen({k: v for k, v in data.items() if k in _IDENT_TYPES},
                    {k: v for k, v in data.items() if k not in _IDENT_TYPES}, False)
    if kind == "customers":
        return Seen({t: data[c] for t, c in SQL_COLUMNS.items() if data.get(c) is not None},
                    {"note": data.get("note")}, bool(data.get("restricted")))
    return Seen({}, {"customer_id": data.get("customer_id"), "item": data.get("item")},
                bool(data.get("restricted")))


# -- the harness: faults, a crash, a delete journal, shuffled answers ----------------------


class Crash(BaseException):
    """The process dies here. A BaseException, so no ``except Exception`` in the host can
    turn a dead process into an error it handles."""


@dataclass
class Harness:
    """What the connector subclasses consult and record; one per example."""

    world: World
    current: ClassVar[Harness | None] = None
    run_calls: Counter[str] = field(default_factory=Counter)  # per system, once armed
    armed: bool = False  # the dry runs are over: faults and the crash apply from now on
    crashed: bool = False
    flaky_seen: set[tuple[str, str]] = field(default_factory=set)
    #: (system, ref) -> how many calls reported it DONE by delete
    deleted: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (system, ref) -> item key, for every ref any find returned
    refs: dict[tuple[str, str], str] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.rng.seed(self.world.seed)

    @classmethod
    def get(cls) -> Harness:
        assert cls.current is not None, "no model world is running"
        return cls.current

    def key_of(self, system: str, ref: str) -> str:
        if ref.startswith("["):  # sql: ["table",[pk]]
            table, pk = json.loads(ref)
            return f"{system}/{table}/{pk[0]}"
        return ref

    def enter(self, system: str, findings: Sequence[Finding] | None) -> None:
        """Count the call; die, or fail it, where the world says so. Dry runs see no faults:
        they are the reference the run is compared with."""
        if not self.armed:
            return
        self.run_calls[system] += 1
        crash = self.world.crash
        if (crash and not self.crashed and not crash.after and crash.system == system
                and crash.call == self.run_calls[system]):
            self.crashed = True
            raise Crash(f"{system} call {crash.call}")
        faults = self.world.faults_of(system)
        if self.run_calls[system] in faults.transient_calls:
            raise TransientError("model: simulated outage")
        if findings is not None and any(
                self.key_of(system, f.ref) in faults.poison for f in findings):
            raise PermanentError("model: this API user may not touch one of these items")

    def leave(self, system: str) -> None:
        crash = self.world.crash
        if (self.armed and crash and not self.crashed and crash.after
                and crash.system == system and crash.call == self.run_calls[system]):
            self.crashed = True
            raise Crash(f"{system} call {crash.call}, after its work")

    def item_fault(self, system: str, f: Finding) -> ItemOutcome | None:
        faults = self.world.faults_of(system)
        key = self.key_of(system, f.ref)
        if not self.armed:
            return None
        if key in faults.fail:
            return ItemOutcome(f, ItemStatus.FAILED, error="model: refused")
        if key in faults.flaky and (system, f.ref) not in self.flaky_seen:
            self.flaky_seen.add((system, f.ref))
            return ItemOutcome(f, ItemStatus.FAILED, error="model: busy", transient=True)
        return None


class _ModelMixin:
    """Wraps a connector's calls with the harness. Cooperative: sits before the connector."""

    system: str

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        h = Harness.get()
        h.enter(self.system, None)
        found = list(super().find(subjects))  # type: ignore[misc]
        for f in found:
            h.refs[(self.system, f.ref)] = h.key_of(self.system, f.ref)
        # Systems answer in no particular order; neither may the host's results depend on it.
        h.rng.shuffle(found)
        h.leave(self.system)
        return iter(found)

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        h = Harness.get()
        h.enter(self.system, findings)
        records = list(super().export(findings))  # type: ignore[misc]
        h.leave(self.system)
        return iter(records)

    def _per_item(self, findings: Sequence[Finding],
                  act: Callable[[Sequence[Finding]], Iterable[ItemOutcome]],
                  journal: bool) -> Iterator[ItemOutcome]:
        h = Harness.get()
        h.enter(self.system, findings)
        refused = [(f, h.item_fault(self.system, f)) for f in findings]
        out = [o for _f, o in refused if o is not None]
        rest = [f for f, o in refused if o is None]
        done = list(act(rest)) if rest else []
        if journal:
            # Counted once per call: two requests of one person may name a row twice.
            for ref in {o.finding.ref for o in done if o.status is ItemStatus.DONE}:
                h.deleted[(self.system, ref)] += 1
        h.leave(self.system)
        return iter(out + done)

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return self._per_item(findings, super().delete, journal=True)  # type: ignore[misc]

    def anonymise(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return self._per_item(findings, super().anonymise, journal=False)  # type: ignore[misc]

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return self._per_item(findings, super().restrict, journal=False)  # type: ignore[misc]


class ModelMemory(_ModelMixin, MemoryConnector):
    name = "model-memory"


class ModelSql(_ModelMixin, SqlConnector):
    name = "model-sql"


class ModelPlugin:
    @hookimpl
    def erasure_register_connectors(self, registry: Any) -> None:
        registry.add(ModelMemory)
        registry.add(ModelSql)


# -- worlds that once broke the engine -----------------------------------------------------


def regressions(legacy: bool) -> dict[str, World]:
    """Shrunk counterexamples, kept as explicit examples. Faults and the crash are given as
    call numbers, so they hit the moment they name only while the engine calls in the same
    order; the worlds stay valid tests either way."""
    scope = "global" if legacy else "customer"
    spaces = () if legacy else (("customer_id", "customer"),)

    def person(i: int, email: str) -> Person:
        ids = [(("customer_id", scope), f"C{i + 1}")]
        ids += [(("user_id", s), f"U{i + 1}") for s in
                (("global",) if legacy else ("login", "local:m0", "local:m1", "local:shop"))]
        return Person(i, email, f"jim{email}", "+4915100000001", "Ann Lee", tuple(ids))

    people = (person(0, "bob@x.org"), person(1, "ann@x.org"))
    bob, ann = (("email", "bob@x.org"),), (("email", "ann@x.org"),)
    m0 = SystemSpec("m0", "memory", "erase", spaces)
    m1_retain = SystemSpec("m1", "memory", "retain", spaces)
    shop = SystemSpec("shop", "sql", "erase", spaces)

    def contact(key: str, owner: int, idents: tuple[tuple[str, str], ...]) -> Item:
        return Item(key, key.split("/")[0], "contact", owner, idents,
                    (("uid", key), ("note", "note")))

    def customer(row: int, owner: int, idents: tuple[tuple[str, str], ...]) -> Item:
        return Item(f"shop/customers/{row}", "shop", "customers", owner, idents,
                    (("note", f"customer {row}"),), row_id=row)

    def world(systems: tuple[SystemSpec, ...], items: tuple[Item, ...],
              requests: tuple[Req, ...], batch_size: int = 100, faults: tuple[Faults, ...] = (),
              crash: CrashSpec | None = None) -> World:
        return World(legacy, people, systems, items, requests, batch_size, 2, 3, faults, crash,
                     tuple(s.name for s in systems), 0)

    ann_row = (customer(1, 1, ann),)
    return {
        # old engine: one action per system and batch, the first request's
        "an access batched after an erasure deletes the access's row": world(
            (m0, shop), ann_row, (Req("erasure", 0, bob), Req("access", 1, ann))),
        "a restriction batched after an access is exported, yet says completed": world(
            (m0, shop), ann_row, (Req("access", 0, bob), Req("restriction", 1, ann))),
        # old engine: findings cut into batch_size chunks, a parent apart from its child
        "a customer and its order in separate calls": world(
            (m0, shop),
            (customer(1, 0, bob), Item("shop/orders/1", "shop", "orders", 0, (),
                                       (("customer_id", 1), ("item", "order 1")),
                                       parent="shop/customers/1", row_id=1)),
            (Req("erasure", 0, bob),), batch_size=1),
        # old engine: a permanent error failed every subject of the call
        "one refused row fails another person's access": world(
            (m0, shop), (customer(1, 0, bob), customer(2, 1, ann)),
            (Req("access", 0, bob), Req("access", 1, ann)),
            faults=(Faults("shop", poison=frozenset({"shop/customers/1"})),)),
        # old engine: the package was built from memory, empty after a resume (the crash
        # hits m0's verify call, after the access had exported)
        "a resumed access writes an empty package": world(
            (m0, m1_retain),
            (contact("m0/c1", 0, bob), contact("m1/c2", 1, ann)),
            (Req("erasure", 0, bob), Req("access", 1, ann)),
            crash=CrashSpec("m0", 3, after=False)),
        # new engine: m0 is down during the first run; when it answers, ann@x.org (on her
        # m0 contact, matched by her customer id) must be searched in the shop, whose
        # find had already ended; that search runs out of retries and the request
        # finished without it
        "a follow-up search deferred after a late answer is dropped": world(
            (m0, shop),
            (contact("m0/c1", 1, (("email", "ann@x.org"), ("customer_id", "C2"))),
             customer(1, 0, (("name", "Ann Lee"), ("customer_id", "C1"))),
             customer(2, 1, ann)),
            (Req("erasure", 0, bob),
             Req("restriction", 1, (("name", "Ann Lee"), ("customer_id", "C2")))),
            faults=(Faults("m0", transient_calls=frozenset({1, 2, 3})),
                    Faults("shop", transient_calls=frozenset({3, 4, 5})))),
        # new engine: m1 is down for the second batch. Its late answer makes bob@x.org
        # strong; shop2's row 2 (bob's email), found in the run before, is what makes
        # shop2's own customer id C1 strong, and with it row 1. Strength was decided from
        # the later run's findings only: row 1 was left, and the receipt said completed
        # with the expansion complete.
        **({} if legacy else {
            "an item found in an earlier run is forgotten when strength is decided":
                _late_link()}),
    }


def _late_link() -> World:
    def person(i: int, email: str) -> Person:
        ids = [(("customer_id", s), f"C{i + 1}")
               for s in ("customer", "local:shop", "local:shop2")]
        ids += [(("user_id", s), f"U{i + 1}")
                for s in ("local:m0", "local:shop", "local:shop2", "login")]
        return Person(i, email, f"jim{email}", "+4915100000001", "Ann Lee", tuple(ids))

    def contact(key: str, owner: int, idents: tuple[tuple[str, str], ...]) -> Item:
        return Item(key, key.split("/")[0], "contact", owner, idents,
                    (("uid", key), ("note", "note")))

    def customer(system: str, row: int, owner: int,
                 idents: tuple[tuple[str, str], ...]) -> Item:
        return Item(f"{system}/customers/{row}", system, "customers", owner, idents,
                    (("note", f"customer {row}"),), row_id=row)

    phone, name, c1 = ("phone", "+4915100000001"), ("name", "Ann Lee"), ("customer_id", "C1")
    bob = ("email", "bob@x.org")
    cust = (("customer_id", "customer"),)
    systems = (SystemSpec("m0", "memory", "erase", cust),
               SystemSpec("m1", "memory", "erase", (*cust, ("user_id", "login"))),
               SystemSpec("shop", "sql", "erase"), SystemSpec("shop2", "sql", "erase"))
    items = (
        contact("m0/c1", 0, (name, c1)),
        contact("m1/c2", 0, (bob, c1, ("user_id", "U1"))),
        contact("m1/c3", 1, (phone, name, ("user_id", "U2"))),
        contact("m1/c4", 0, ()),
        contact("m1/c5", 0, (phone,)),
        contact("m1/c6", 0, (phone, c1)),
        customer("shop", 1, 0, (bob, phone, c1)),
        customer("shop", 2, 0, (bob, name)),
        customer("shop", 3, 0, (bob, name)),
        customer("shop2", 1, 0, (phone, c1)),
        customer("shop2", 2, 0, (("email", "BOB@X.ORG"), name, c1)),
    )
    ann = ("email", "ann@x.org")
    requests = (
        Req("erasure", 1, (ann, name)),
        Req("erasure", 1, (ann, phone, name)),
        Req("restriction", 0, (name, c1)),
        Req("erasure", 1, (("customer_id", "C2"),)),
        Req("erasure", 0, (phone, c1)),
        Req("restriction", 0, (name, c1)),
    )
    both = frozenset({"m1/c2", "m1/c3"})
    faults = (
        Faults("m0", transient_calls=frozenset({4}), poison=frozenset({"m0/c1"}),
               fail=frozenset({"m0/c1"})),
        Faults("m1", transient_calls=frozenset(range(4, 10)), fail=both, flaky=both),
        Faults("shop", poison=frozenset({"shop/customers/1"}),
               fail=frozenset({"shop/customers/1"})),
    )
    people = (person(0, "bob@x.org"), person(1, "ann@x.org"))
    return World(False, people, systems, items, requests, 3, 1, 3, faults, None,
                 tuple(s.name for s in systems), 0)
