"""Rows under a legal hold (``hold_column``): nothing of the person is erased while one of
their rows is held, every finding of theirs is RETAINED with the hold named (``held``: the
host checks again); once released the same findings are erased. Others are erased as usual."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sql_fixtures import Db

from erasure import Identifier, IdentifierType, ItemStatus, Subject

TABLES = {
    "customers": {"identifiers": {"email": "email"}},
    "orders": {"hold_column": "legal_hold",
               "relations": [{"parent": "customers", "columns": {"customer_id": "id"}}]},
}


def subject(key: str, email: str) -> Subject:
    return Subject(key, (Identifier.parse(IdentifierType.EMAIL, email),))


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_held_row_keeps_the_person_until_released(db: Db) -> None:
    sa.Table("customers", db.meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("email", sa.String(100)))
    sa.Table("orders", db.meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id")),
             sa.Column("legal_hold", sa.Boolean, nullable=False, default=False))
    db.create()
    db.insert("customers", {"id": 1, "email": "ann@example.org"},
              {"id": 2, "email": "bob@example.org"})
    db.insert("orders", {"id": 10, "customer_id": 1, "legal_hold": False},
              {"id": 11, "customer_id": 1, "legal_hold": True},
              {"id": 20, "customer_id": 2, "legal_hold": False})
    c = db.connector(TABLES)
    found = list(c.find([subject("ann", "ann@example.org"), subject("bob", "bob@example.org")]))
    outcomes = list(c.delete(found))
    ann = [o for o in outcomes if o.finding.subject == "ann"]
    assert len(ann) == 3 and all(o.status is ItemStatus.RETAINED and o.held for o in ann)
    assert {o.error for o in ann} == {"legal hold (orders.legal_hold) on 1 row(s) until released"}
    assert {o.status for o in outcomes if o.finding.subject == "bob"} == {ItemStatus.DONE}
    assert [r["id"] for r in db.rows("customers")] == [1], "nothing of Ann's is erased"
    assert [r["id"] for r in db.rows("orders")] == [10, 11]

    with db.engine.begin() as conn:  # the hold is released
        conn.execute(sa.update(db.table("orders")).values(legal_hold=False))
    ann_found = [f for f in found if f.subject == "ann"]
    assert {o.status for o in c.delete(ann_found)} == {ItemStatus.DONE}
    assert db.count("customers") == 0 and db.count("orders") == 0
