"""A locked table cannot hold a call past its deadline (issue 10, item 8): the statements a
call runs get the time left as statement and lock timeout, and a call that times out is a
TransientError (the host retries later), on every engine."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from erasure_sql import SqlConnector
from sql_fixtures import Db, numbered_shop

from erasure import Finding, Identifier, IdentifierType, Subject, TransientError
from erasure.connector import _CURRENT, UNMAPPED_RESIDUE, CallContext


def in_call(deadline_in: float):
    return _CURRENT.set(CallContext(system="shop-db", action="delete",
                                    deadline=time.monotonic() + deadline_in))


def test_a_locked_row_fails_the_call_within_its_deadline(db: Db) -> None:
    numbered_shop(db, customers=3, orders_each=1)
    conn: SqlConnector = db.connector({"customers": {"identifiers": {"email": "email"}},
                                       "orders": {}})
    subject = Subject("req-1", (Identifier(IdentifierType.EMAIL, "user1@example.org"),))
    findings: list[Finding] = list(conn.find([subject]))
    assert findings
    holder = db.engine.connect()
    tx = holder.begin()
    # another session holds user 1's rows: an UPDATE takes the row locks a DELETE needs
    holder.execute(sa.update(db.table("orders")).where(db.table("orders").c.customer_id == 1)
                   .values(customer_id=1))
    holder.execute(sa.update(db.table("customers")).where(db.table("customers").c.id == 1)
                   .values(email="user1@example.org"))
    token = in_call(1.0)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError):
            list(conn.delete(findings))
    finally:
        _CURRENT.reset(token)
        tx.rollback()
        holder.close()
    took = time.monotonic() - started
    assert took < 5, f"the call ran {took:.1f}s past a 1s deadline"
    # the lock gone, the same delete goes through (nothing half done before)
    token = in_call(30)
    try:
        assert {o.status.value for o in conn.delete(findings)} == {"done"}
    finally:
        _CURRENT.reset(token)
    assert [r["id"] for r in db.rows("customers")] == [0, 2]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_the_deep_scan_beside_find_keeps_the_calls_deadline(db: Db) -> None:
    """While verifying, the deep scan runs on a thread of its own beside find; the call's
    deadline must reach its statements too, or a locked table holds verification."""
    sa.Table("archive", db.meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("note", sa.String(255)))
    numbered_shop(db, customers=3, orders_each=1)
    db.insert("archive", {"id": 1, "note": "user1@example.org"})
    conn: SqlConnector = db.connector({"customers": {"identifiers": {"email": "email"}},
                                       "orders": {}})
    subject = Subject("req-1", (Identifier(IdentifierType.EMAIL, "user1@example.org"),))
    conn.mapping()  # reflected before the lock is taken
    holder = db.engine.connect()
    tx = holder.begin()
    holder.exec_driver_sql(f'LOCK TABLE "{db.schema}".archive IN ACCESS EXCLUSIVE MODE')
    token = _CURRENT.set(CallContext(system="shop-db", action="verify",
                                     deadline=time.monotonic() + 1.0))
    release = threading.Timer(20, tx.rollback)  # a scan without the deadline waits this long
    release.start()
    started = time.monotonic()
    try:
        with pytest.raises(TransientError):
            list(conn.find([subject]))
    finally:
        _CURRENT.reset(token)
        release.cancel()
        tx.rollback()
        holder.close()
    took = time.monotonic() - started
    assert took < 5, f"verification ran {took:.1f}s past a 1s deadline"
    # the lock gone, the scan reports the unmapped copy
    token = _CURRENT.set(CallContext(system="shop-db", action="verify",
                                     deadline=time.monotonic() + 30))
    try:
        residue = [f for f in conn.find([subject]) if f.kind == UNMAPPED_RESIDUE]
    finally:
        _CURRENT.reset(token)
    assert [f.fields for f in residue] == [(f"{db.schema}.archive.note",)]
