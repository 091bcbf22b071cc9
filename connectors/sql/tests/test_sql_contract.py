"""The sql connector passes the connector contract suite on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from erasure_sql import SqlConnector
from sql_fixtures import Db

from erasure import IdentifierType, Subject
from erasure.testing import ConnectorContract


def make_schema(db: Db) -> None:
    sa.Table(
        "customers", db.meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(255), unique=True),
        sa.Column("phone", sa.String(32)),
        sa.Column("restricted", sa.Boolean, nullable=False, default=False),
    )
    sa.Table(
        "orders", db.meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("total", sa.Numeric(10, 2)),
        sa.Column("restricted", sa.Boolean, nullable=False, default=False),
    )
    db.create()


class TestSqlContract(ConnectorContract):
    @pytest.fixture
    def connector(self, db: Db) -> SqlConnector:
        make_schema(db)
        return db.connector({
            "customers": {"identifiers": {"email": "email", "customer_id": "id",
                                          "phone": "phone"},
                          "restrict_column": "restricted"},
            "orders": {"restrict_column": "restricted"},
        }, hash_key="hunter2-secret-key")

    def seed(self, connector: SqlConnector, subject: Subject) -> None:
        t = connector.mapping().tables
        with connector.engine.begin() as conn:
            email = subject.of_type(IdentifierType.EMAIL)[0]
            res = conn.execute(t["customers"].table.insert().values(email=email, restricted=False))
            cid = res.inserted_primary_key[0]
            conn.execute(t["orders"].table.insert(), [
                {"customer_id": cid, "total": 10, "restricted": False},
                {"customer_id": cid, "total": 20, "restricted": False},
            ])
