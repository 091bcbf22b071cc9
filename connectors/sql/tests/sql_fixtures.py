"""Fixtures: a fresh, private schema on SQLite, PostgreSQL and MariaDB for every test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from erasure_sql import SqlConnector, SqlSettings

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MY_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
ENGINES = ["sqlite", "postgresql", "mariadb"]
_reachable: dict[str, str | None] = {}


def unreachable(url: str) -> str | None:
    """None if the server answers, else the reason (cached per session)."""
    if url not in _reachable:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _reachable[url] = None
        except sa.exc.OperationalError as exc:
            _reachable[url] = f"server not reachable: {type(exc.orig).__name__}"
        finally:
            engine.dispose()
    return _reachable[url]


class Db:
    """A private database area: ``meta`` for DDL, ``engine`` for seeding and checks."""

    def __init__(self, kind: str, url: str, schema: str | None) -> None:
        self.kind = kind
        self.url = url
        self.schema = schema
        self.engine = sa.create_engine(url)
        if kind == "sqlite":
            sa.event.listen(
                self.engine, "connect", lambda c, _r: c.execute("PRAGMA foreign_keys=ON")
            )
        self.meta = sa.MetaData(schema=schema)
        self.connectors: list[SqlConnector] = []

    def create(self) -> None:
        self.meta.create_all(self.engine)

    def connector(self, tables: dict[str, Any], system: str = "shop-db",
                  **extra: Any) -> SqlConnector:
        data: dict[str, Any] = {"url": self.url, "tables": tables, **extra}
        if self.schema:
            data["schema"] = self.schema
        conn = SqlConnector(system, SqlSettings.model_validate(data))
        self.connectors.append(conn)
        return conn

    def insert(self, table: str, *rows: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table(table).insert(), list(rows))

    def table(self, name: str) -> sa.Table:
        return self.meta.tables[f"{self.schema}.{name}" if self.schema else name]

    def rows(self, table: str, order: str = "id") -> list[dict[str, Any]]:
        t = self.table(table)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(t).order_by(t.c[order])).mappings()]

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            stmt = sa.select(sa.func.count()).select_from(self.table(table))
            return conn.execute(stmt).scalar_one()

    def table_names(self) -> set[str]:
        return set(sa.inspect(self.engine).get_table_names(schema=self.schema))

    def close(self) -> None:
        for c in self.connectors:
            c.close()
        self.engine.dispose()


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Db]:
    kind = request.param
    name = f"t_{uuid.uuid4().hex}"
    if kind == "sqlite":
        d = Db(kind, f"sqlite:///{tmp_path / 'shop.db'}", None)
        yield d
        d.close()
        return
    admin_url = PG_URL if kind == "postgresql" else MY_URL
    reason = unreachable(admin_url)
    if reason:
        pytest.skip(f"{kind}: {reason}")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    q = admin.dialect.identifier_preparer.quote(name)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE {'SCHEMA' if kind == 'postgresql' else 'DATABASE'} {q}"))
    if kind == "postgresql":
        d = Db(kind, PG_URL, name)
    else:
        d = Db(kind, MY_URL.rsplit("/", 1)[0] + "/" + name, None)
    try:
        yield d
    finally:
        d.close()
        with admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(sa.text(f"DROP SCHEMA {q} CASCADE"))
            else:
                conn.execute(sa.text(f"DROP DATABASE {q}"))
        admin.dispose()


def numbered_shop(db: Db, customers: int, orders_each: int, *, lines: bool = False) -> None:
    """customers(id, email = user<id>@example.org); orders 10*c + k of customer c; with
    ``lines``, one line (id 10*c) on each customer's first order."""
    sa.Table("customers", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("email", sa.String(255), nullable=False))
    sa.Table("orders", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False))
    if lines:
        sa.Table("lines", db.meta,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False))
    db.create()
    db.insert("customers", *({"id": c, "email": f"user{c}@example.org"}
                             for c in range(customers)))
    db.insert("orders", *({"id": 10 * c + k, "customer_id": c}
                          for c in range(customers) for k in range(orders_each)))
    if lines:
        db.insert("lines", *({"id": 10 * c, "order_id": 10 * c} for c in range(customers)))
