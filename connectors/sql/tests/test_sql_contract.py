"""The sql connector passes the connector contract suite on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from erasure_sql import SqlConnector
from sql_fixtures import Db

from erasure import Finding, IdentifierType, ObjectionScope, Subject
from erasure.testing import ConnectorContract, Seeded

T = IdentifierType


def make_schema(db: Db) -> None:
    sa.Table(
        "customers", db.meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(255), unique=True),
        sa.Column("phone", sa.String(32)),
        sa.Column("user_id", sa.String(64)),
        sa.Column("full_name", sa.String(100)),
        sa.Column("ip", sa.String(45)),
        sa.Column("restricted", sa.Boolean, nullable=False, default=False),
        sa.Column("marketing_ok", sa.Boolean, nullable=False, default=True),
    )
    sa.Table(
        "orders", db.meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("total", sa.Numeric(10, 2)),
        sa.Column("note", sa.String(100)),
        sa.Column("restricted", sa.Boolean, nullable=False, default=False),
    )
    db.create()


# Identifier type -> column of customers. customer_id is the primary key, as in the README.
COLUMNS = {T.EMAIL: "email", T.PHONE: "phone", T.CUSTOMER_ID: "id", T.USER_ID: "user_id",
           T.NAME: "full_name", T.IP: "ip"}


class TestSqlContract(ConnectorContract):
    seed_types = frozenset(COLUMNS)
    # A find reads each statement's rows in one result, but every statement's IN list (the
    # batch's values, the keys of linked rows) and every export, delete and restrict goes in
    # chunks of max_params bound parameters: set to 50 below, 300 items are seven chunks
    # (and a batch of a few dozen subjects several IN lists). ERASURE_CONTRACT_POPULATION
    # (make test-long) runs 2,500 items.
    population = 300
    max_params = 50

    @pytest.fixture
    def connector(self, db: Db) -> SqlConnector:
        make_schema(db)
        return db.connector({
            "customers": {"identifiers": {t.value: c for t, c in COLUMNS.items()},
                          "restrict_column": "restricted",
                          "opt_out": {"marketing": {"marketing_ok": False}}},
            "orders": {"restrict_column": "restricted"},
        }, hash_key="hunter2-secret-key", max_params=self.max_params)

    def seed(self, connector: SqlConnector, subject: Subject, *,
             single: bool = False) -> Seeded:
        # A customer row holding every identifier and, unless single, two orders with a
        # note only this subject's orders have.
        t = connector.mapping().tables
        row: dict[str, object] = {COLUMNS[i.type]: i.value for i in subject.identifiers}
        if "id" in row:
            row["id"] = int(str(row["id"]))
        notes = [] if single else [f"order {n} of {subject.key}" for n in (1, 2)]
        with connector.engine.begin() as conn:
            res = conn.execute(t["customers"].table.insert().values(
                **row, restricted=False, marketing_ok=True))
            cid = res.inserted_primary_key[0]
            if notes:
                conn.execute(t["orders"].table.insert(), [
                    {"customer_id": cid, "total": 10 * n, "note": note, "restricted": False}
                    for n, note in enumerate(notes, 1)])
        return Seeded(items=1 + len(notes),
                      markers={*(i.value for i in subject.identifiers), *notes})

    def seed_many(self, connector: SqlConnector, subject: Subject, count: int) -> Seeded:
        # One customer (the id is a key: it cannot repeat) and its count - 1 orders, in one
        # insert: the suite's large scenario.
        t = connector.mapping().tables
        row: dict[str, object] = {COLUMNS[i.type]: i.value for i in subject.identifiers}
        if "id" in row:
            row["id"] = int(str(row["id"]))
        with connector.engine.begin() as conn:
            cid = conn.execute(t["customers"].table.insert().values(
                **row, restricted=False, marketing_ok=True)).inserted_primary_key[0]
            conn.execute(t["orders"].table.insert(), [
                {"customer_id": cid, "total": n, "note": None, "restricted": False}
                for n in range(count - 1)])
        return Seeded(items=count, markers={i.value for i in subject.identifiers})

    def restricted(self, connector: SqlConnector, findings: Sequence[Finding]) -> set[str]:
        # Read the flag column itself: a ref is ["table", [pk]] (see the README).
        tables = connector.mapping().tables
        out = set()
        with connector.engine.connect() as conn:
            for f in findings:
                name, (pk,) = json.loads(f.ref)
                table = tables[name].table
                flag = conn.execute(
                    sa.select(table.c.restricted).where(table.c.id == pk)).scalar_one_or_none()
                if flag:
                    out.add(f.ref)
        return out

    def objected(self, connector: SqlConnector, findings: Sequence[Finding],
                 scope: ObjectionScope) -> set[str]:
        # The opt-out column itself: customers rows whose marketing_ok is false.
        table = connector.mapping().tables["customers"].table
        out = set()
        with connector.engine.connect() as conn:
            for f in findings:
                name, (pk,) = json.loads(f.ref)
                if name == "customers" and scope is ObjectionScope.MARKETING and conn.execute(
                        sa.select(table.c.marketing_ok).where(table.c.id == pk)
                ).scalar_one() in (False, 0):  # MariaDB's booleans are 0 and 1
                    out.add(f.ref)
        return out
