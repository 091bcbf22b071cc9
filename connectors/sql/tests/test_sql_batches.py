"""Large batches: child rows read in parts and statements overlapped with building results.

These paths only start above a few hundred parent rows and only off SQLite, so the small
scenario schemas never reach them.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from erasure_sql.overlap import Overlapped
from sql_fixtures import MY_URL, PG_URL, Db, numbered_shop, unreachable

from erasure import Identifier, IdentifierType, ItemStatus, Subject

E = IdentifierType.EMAIL
N = 900  # parent rows matched: four parts of child rows
ORDERS = 3  # per customer


def shop(db: Db) -> None:
    # customer c has orders 10c, 10c+1 and 10c+2 (order 10c has one line); every other
    # customer is a neighbour whose rows must survive. 2,700 orders matched: deleted in two
    # statements on PostgreSQL.
    numbered_shop(db, 2 * N, ORDERS, lines=True)


def subjects(ids: range) -> list[Subject]:
    return [Subject(f"r{c}", (Identifier(E, f"user{c}@example.org"),)) for c in ids]


def test_a_large_batch_finds_exactly_its_rows_and_erases_only_them(db: Db) -> None:
    shop(db)
    c = db.connector({"customers": {"identifiers": {"email": "email"}}, "orders": {},
                      "lines": {}})
    mine = range(0, 2 * N, 2)  # every even customer
    found = list(c.find(subjects(mine)))
    got = {(f.subject, f.kind, json.loads(f.ref)[1][0]) for f in found}
    want = ({(f"r{x}", "customers", x) for x in mine}
            | {(f"r{x}", "orders", 10 * x + k) for x in mine for k in range(ORDERS)}
            | {(f"r{x}", "lines", 10 * x) for x in mine})
    assert got == want
    assert len(found) == len(want), "each row once per subject"
    by_kind = {f.kind: f for f in found}
    assert by_kind["orders"].fields == ("customer_id",)
    assert by_kind["customers"].related == (by_kind["customers"].matched[0],)
    outcomes = list(c.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert len(outcomes) == len(found)
    # find's memos of these rows (refs, places) are let go once the rows are erased.
    assert not any(c._refs.values()) and not any(c._tids.values())
    assert {r["id"] for r in db.rows("customers")} == set(range(1, 2 * N, 2))
    assert {r["customer_id"] for r in db.rows("orders")} == set(range(1, 2 * N, 2))
    assert len(db.rows("lines")) == N
    assert list(c.find(subjects(mine))) == []


def test_a_subject_sharing_a_parent_row_is_found_on_its_children(db: Db) -> None:
    """Two subjects matching one customer row both get its orders (shared entries)."""
    shop(db)
    c = db.connector({"customers": {"identifiers": {"email": "email"}}, "orders": {}})
    twin = Subject("twin", (Identifier(E, "user7@example.org"),))
    found = list(c.find([*subjects(range(N)), twin]))
    orders_of = {}
    for f in found:
        if f.kind == "orders":
            orders_of.setdefault(f.subject, set()).add(json.loads(f.ref)[1][0])
    assert orders_of["twin"] == orders_of["r7"] == {70, 71, 72}
    assert len(orders_of) == N + 1


@pytest.mark.parametrize("which", ["first", "last"])
def test_a_row_moved_in_a_large_batch_is_still_deleted(db: Db, which: str) -> None:
    shop(db)
    c = db.connector({"customers": {"identifiers": {"email": "email"}}, "orders": {},
                      "lines": {}})
    mine = range(0, 2 * N, 2)
    found = list(c.find(subjects(mine)))
    # Rows are deleted in the order of their findings: the first order found goes in the
    # first DELETE statement, the last in the second (PostgreSQL).
    orders_found = [f for f in found if f.kind == "orders"]
    moved = json.loads(orders_found[0 if which == "first" else -1].ref)[1][0]
    with db.engine.begin() as conn:  # a new row version: no longer where find saw it
        orders = db.table("orders")
        conn.execute(orders.update().where(orders.c.id == moved)
                     .values(customer_id=moved // 10))
    outcomes = list(c.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert {r["customer_id"] for r in db.rows("orders")} == set(range(1, 2 * N, 2))
    assert list(c.find(subjects(mine))) == []


@pytest.mark.parametrize("which", ["first", "last"])
def test_a_row_nothing_references_moved_in_either_statement_is_still_deleted(
    db: Db, which: str,
) -> None:
    """No foreign key would catch this row left behind: only delete's own count does."""
    visits = sa.Table("visits", db.meta,
                      sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                      sa.Column("email", sa.String(255), nullable=False))
    db.create()
    people = range(1300)  # two visits each: 2,400 rows of the 1,200 found, in two statements
    db.insert("visits", *({"id": 2 * p + k, "email": f"user{p}@example.org"}
                          for p in people for k in range(2)))
    c = db.connector({"visits": {"identifiers": {"email": "email"}}})
    found = list(c.find(subjects(range(1200))))
    assert len(found) == 2400
    moved = json.loads(found[0 if which == "first" else -1].ref)[1][0]
    with db.engine.begin() as conn:  # a new row version: no longer where find saw it
        conn.execute(visits.update().where(visits.c.id == moved).values(email=visits.c.email))
    outcomes = list(c.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert {r["id"] for r in db.rows("visits")} == set(range(2400, 2600))


@pytest.fixture(params=[PG_URL, MY_URL], ids=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A server engine (SQLite is not one: its connections keep to their thread)."""
    reason = unreachable(request.param)
    if reason:
        pytest.skip(reason)
    engine = sa.create_engine(request.param)
    yield engine
    engine.dispose()


def test_overlapped_work_runs_beside_the_statement_and_errors_surface(
    server: sa.Engine,
) -> None:
    with cf.ThreadPoolExecutor(1) as pool, server.connect() as conn:
        db = Overlapped(conn, pool)
        seen = []
        db.meanwhile = lambda: seen.append("work")
        assert db.all(sa.select(sa.literal(1))) == [(1,)]
        assert seen == ["work"] and db.meanwhile is None
        db.meanwhile = lambda: 1 / 0  # work fails: raised after the statement is done
        with pytest.raises(ZeroDivisionError):
            db.all(sa.select(sa.literal(2)))
        conn.rollback()
        seen.clear()
        db.meanwhile = lambda: seen.append("work")  # the statement fails: work still ran
        with pytest.raises(sa.exc.DBAPIError):
            db.all(sa.select(sa.text("no_such_column")))
        assert seen == ["work"]
        conn.rollback()
        assert db.all(sa.select(sa.literal(3))) == [(3,)]
