"""Delete reaches rows where find saw them (PostgreSQL ctid) and never deletes another row."""

from __future__ import annotations

import sqlalchemy as sa
from sql_fixtures import Db

from erasure import Finding, Identifier, IdentifierType, ItemStatus, Subject

E = IdentifierType.EMAIL
BOB = Subject("bob", (Identifier(E, "bob@example.org"),))


def people(db: Db) -> None:
    sa.Table("people", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("email", sa.String(255), nullable=False),
             sa.Column("note", sa.String(50)))
    sa.Table("visits", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id"), nullable=False))
    db.create()
    db.insert("people", {"id": 1, "email": "bob@example.org", "note": "a"},
              {"id": 2, "email": "jimbob@example.org", "note": "b"})
    db.insert("visits", {"id": 10, "person_id": 1}, {"id": 11, "person_id": 1},
              {"id": 20, "person_id": 2})


def places_of(conn: sa.Connection, table: sa.Table) -> dict[int, str]:
    """id -> ctid of every row (PostgreSQL)."""
    stmt = sa.select(table.c.id, sa.cast(sa.literal_column("ctid"), sa.Text))
    return {i: place for i, place in conn.execute(stmt).all()}


def reuse_places(db: Db, *freed: str) -> None:
    """Insert Alice's visits 30 and 31 so that one takes a place Bob's visits had.

    VACUUM frees a place only once no open transaction can still see the old row; another
    test process holding a snapshot in the same database delays that, so the insert is undone
    and tried again until the precondition holds (bounded).
    """
    import time

    visits = db.table("visits")
    for _ in range(100):
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'VACUUM "{db.schema}".visits'))
        db.insert("visits", {"id": 30, "person_id": 3}, {"id": 31, "person_id": 3})
        with db.engine.connect() as conn:
            now = places_of(conn, visits)
        if {now[30], now[31]} & set(freed):
            return
        with db.engine.begin() as conn:
            conn.execute(visits.delete().where(visits.c.id.in_([30, 31])))
        time.sleep(0.1)
    raise AssertionError("precondition: places reused (another transaction held them 10 s)")


def connector(db: Db):  # noqa: ANN201 - SqlConnector
    return db.connector({"people": {"identifiers": {"email": "email"}}, "visits": {}})


def test_rows_changed_after_find_are_still_deleted(db: Db) -> None:
    people(db)
    c = connector(db)
    found = list(c.find([BOB]))
    assert len(found) == 3
    with db.engine.begin() as conn:  # moves the rows on PostgreSQL (new row versions)
        conn.execute(db.table("people").update().values(note="changed"))
        conn.execute(db.table("visits").update().values(person_id=sa.text("person_id")))
    outcomes = list(c.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert [r["id"] for r in db.rows("people")] == [2]
    assert [r["id"] for r in db.rows("visits")] == [20]
    assert list(c.find([BOB])) == []


def test_a_row_in_a_reused_place_is_never_deleted(db: Db) -> None:
    people(db)
    c = connector(db)
    found = list(c.find([BOB]))
    places = {}
    if db.kind == "postgresql":
        with db.engine.connect() as conn:
            places = places_of(conn, db.table("visits"))
    # Someone else erases Bob first; the freed places are vacuumed and taken by new rows.
    with db.engine.begin() as conn:
        conn.execute(db.table("visits").delete().where(db.table("visits").c.person_id == 1))
        conn.execute(db.table("people").delete().where(db.table("people").c.id == 1))
    db.insert("people", {"id": 3, "email": "alice@example.org", "note": "c"})
    if db.kind == "postgresql":
        reuse_places(db, places[10], places[11])
    else:
        db.insert("visits", {"id": 30, "person_id": 3}, {"id": 31, "person_id": 3})
    outcomes = list(c.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.ALREADY_DONE}
    assert [r["id"] for r in db.rows("people")] == [2, 3]
    assert [r["id"] for r in db.rows("visits")] == [20, 30, 31]


def test_forged_references_fail_and_delete_nothing(db: Db) -> None:
    people(db)
    c = connector(db)
    ident = (Identifier(E, "bob@example.org"),)
    forged = ['["people",[01]]', '["people",[1]]x', '["nope",[1]]', '["people",[1,2]]',
              '["people",[1.5]]', '["people",["1 OR 1=1"]]', "people:1"]
    outcomes = list(c.delete([Finding("shop-db", "bob", r, "people", ident) for r in forged]))
    assert len(outcomes) == len(forged)
    assert {o.status for o in outcomes} == {ItemStatus.FAILED}
    assert [r["id"] for r in db.rows("people")] == [1, 2]
    # a reference find would give, written by hand, decodes like find's own
    same = list(c.delete([Finding("shop-db", "bob", '["visits",[10]]', "visits", ident)]))
    assert [o.status for o in same] == [ItemStatus.DONE]
    assert [r["id"] for r in db.rows("visits")] == [11, 20]


def test_rows_gone_before_delete_are_reported_already_done(db: Db) -> None:
    people(db)
    c = connector(db)
    found = list(c.find([BOB]))
    with db.engine.begin() as conn:  # one of Bob's two visits goes before the run does
        conn.execute(db.table("visits").delete().where(db.table("visits").c.id == 10))
    status = {f.ref: o.status for o in c.delete(found) for f in [o.finding]}
    assert status == {'["people",[1]]': ItemStatus.DONE, '["visits",[10]]': ItemStatus.ALREADY_DONE,
                      '["visits",[11]]': ItemStatus.DONE}
    assert [r["id"] for r in db.rows("visits")] == [20]
    again = {o.status for o in c.delete(found)}
    assert again == {ItemStatus.ALREADY_DONE}
