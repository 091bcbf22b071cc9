"""A shop database in the image of Fides' public sample: 13 tables, no declared foreign keys,
``<table>_id`` columns, auto-numbered keys, a product catalogue with a ``name`` column, a
payment card table (number and code), and a backup schema holding a copy of ``customer``
with other people under the same ids (PostgreSQL and MariaDB; SQLite has no schemas)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sql_fixtures import MY_URL, PG_URL, Db

JANE = "jane@example.com"
JOHN = "john@example.com"
MIA = "mia@example.com"
EMPLOYEE = "emp.one@shop.example"
OLD_PETE = "old.pete@example.net"

# Jane's rows: (table, how many). Address 1 is also Mia's order's shipping address: kept.
JANE_ROWS = {"customer": 1, "login": 2, "orders": 2, "order_item": 3, "payment_card": 1,
             "service_request": 1, "visit": 1, "support_ticket": 1}


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _s(name: str, length: int = 120, **kw: object) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), **kw)  # type: ignore[arg-type]


def _customer(meta: sa.MetaData) -> None:
    sa.Table("customer", meta, _id(), _s("email"), _s("name"), sa.Column("created", sa.Date),
             sa.Column("address_id", sa.Integer))


def backup_schema(db: Db) -> str | None:
    """The name of a second schema (database) beside the test's, or None on SQLite."""
    if db.kind == "sqlite":
        return None
    if db.kind == "postgresql":
        return f"{db.schema}_bk"
    return db.url.rsplit("/", 1)[1] + "_bk"


@contextmanager
def backup(db: Db) -> Iterator[str | None]:
    """Create (and drop after) the backup schema with a customer table of other people."""
    name = backup_schema(db)
    if name is None:
        yield None
        return
    admin = sa.create_engine(PG_URL if db.kind == "postgresql" else MY_URL,
                             isolation_level="AUTOCOMMIT")
    q = admin.dialect.identifier_preparer.quote(name)
    kind = "SCHEMA" if db.kind == "postgresql" else "DATABASE"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE {kind} {q}"))
    try:
        meta = sa.MetaData(schema=name)
        _customer(meta)
        meta.create_all(admin)
        with admin.begin() as conn:
            conn.execute(meta.tables[f"{name}.customer"].insert(), [
                {"id": 1, "email": OLD_PETE, "name": "Pete Old", "address_id": 1},
                {"id": 2, "email": "old.sue@example.net", "name": "Sue Old", "address_id": 2},
            ])
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP {kind} {q}{' CASCADE' if kind == 'SCHEMA' else ''}"))
        admin.dispose()


def sample_shop(db: Db) -> None:
    """Create and fill the shop in ``db``'s private schema."""
    m = db.meta
    sa.Table("address", m, _id(), _s("house"), _s("street"), _s("city"), _s("state"),
             _s("zip", 12))
    _customer(m)
    sa.Table("employee", m, _id(), _s("email"), _s("name"), sa.Column("address_id", sa.Integer))
    sa.Table("payment_card", m, _id(), _s("name"), _s("ccn", 32), _s("code", 8),
             sa.Column("preferred", sa.Boolean), sa.Column("customer_id", sa.Integer),
             sa.Column("billing_address_id", sa.Integer))
    sa.Table("orders", m, _s("id", 32, primary_key=True), sa.Column("customer_id", sa.Integer),
             sa.Column("shipping_address_id", sa.Integer))
    sa.Table("order_item", m, _s("order_id", 32, primary_key=True),
             sa.Column("item_no", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("product_id", sa.Integer), sa.Column("quantity", sa.Integer))
    sa.Table("product", m, _id(), _s("name"), sa.Column("price", sa.Numeric(10, 2)))
    sa.Table("report", m, _id(), _s("email"), _s("name"), sa.Column("year", sa.Integer),
             sa.Column("month", sa.Integer), sa.Column("total_visits", sa.Integer))
    sa.Table("service_request", m, _s("id", 32, primary_key=True), _s("email"),
             _s("alt_email"), sa.Column("opened", sa.Date), sa.Column("closed", sa.Date),
             sa.Column("employee_id", sa.Integer))
    sa.Table("visit", m, _id(), _s("email"), sa.Column("last_visit", sa.DateTime))
    sa.Table("login", m, _id(), sa.Column("customer_id", sa.Integer),
             sa.Column("time", sa.DateTime))
    sa.Table("loyalty_tier", m, _id(), _s("name"), sa.Column("min_points", sa.Integer))
    sa.Table("support_ticket", m, _id(), _s("contact"), _s("topic"))
    db.create()
    day, now = dt.date(2026, 1, 5), dt.datetime(2026, 1, 5, 10, 0)
    db.insert("address", *({"id": i, "house": str(10 + i), "street": f"{s} Street",
                            "city": "Springfield", "state": "SP", "zip": f"0{i}123"}
                           for i, s in enumerate(["Elm", "Oak", "Ash", "Fir", "Yew"], 1)))
    db.insert("customer",
              {"id": 1, "email": JANE, "name": "Jane Doe", "created": day, "address_id": 1},
              {"id": 2, "email": JOHN, "name": "John Roe", "created": day, "address_id": 2},
              {"id": 3, "email": MIA, "name": "Mia Poe", "created": day, "address_id": 3})
    db.insert("employee", {"id": 1, "email": EMPLOYEE, "name": "Emp One", "address_id": 5})
    db.insert("payment_card",
              {"id": 1, "name": "Jane Doe", "ccn": "4111111111111111", "code": "123",
               "preferred": True, "customer_id": 1, "billing_address_id": 4},
              {"id": 2, "name": "John Roe", "ccn": "5555555555554444", "code": "321",
               "preferred": True, "customer_id": 2, "billing_address_id": 2})
    db.insert("orders",
              {"id": "ord_a", "customer_id": 1, "shipping_address_id": 1},
              {"id": "ord_b", "customer_id": 1, "shipping_address_id": 4},
              {"id": "ord_c", "customer_id": 2, "shipping_address_id": 2},
              {"id": "ord_d", "customer_id": 3, "shipping_address_id": 1})  # a gift to Jane
    db.insert("order_item",
              {"order_id": "ord_a", "item_no": 1, "product_id": 1, "quantity": 1},
              {"order_id": "ord_a", "item_no": 2, "product_id": 2, "quantity": 2},
              {"order_id": "ord_b", "item_no": 1, "product_id": 3, "quantity": 1},
              {"order_id": "ord_c", "item_no": 1, "product_id": 1, "quantity": 5},
              {"order_id": "ord_d", "item_no": 1, "product_id": 2, "quantity": 1})
    db.insert("product", *({"id": i, "name": n, "price": 10 * i} for i, n in enumerate(
        ["Wireless Mouse", "Paper Towels", "Garden Hose"], 1)))
    db.insert("report", {"id": 1, "email": EMPLOYEE, "name": "Monthly Visits", "year": 2026,
                         "month": 1, "total_visits": 100})
    db.insert("service_request",
              {"id": "ser_1", "email": JANE, "alt_email": "jane.alt@example.com",
               "opened": day, "closed": None, "employee_id": 1},
              {"id": "ser_2", "email": JOHN, "alt_email": None, "opened": day, "closed": day,
               "employee_id": 1})
    db.insert("visit", {"id": 1, "email": JANE, "last_visit": now},
              {"id": 2, "email": JOHN, "last_visit": now})
    db.insert("login", {"id": 1, "customer_id": 1, "time": now},
              {"id": 2, "customer_id": 1, "time": now}, {"id": 3, "customer_id": 2, "time": now})
    db.insert("loyalty_tier", {"id": 1, "name": "Gold Members", "min_points": 1000},
              {"id": 2, "name": "Silver Members", "min_points": 100})
    db.insert("support_ticket", {"id": 1, "contact": JANE, "topic": "Refund"},
              {"id": 2, "contact": JOHN, "topic": "Delivery"},
              {"id": 3, "contact": MIA, "topic": "Invoice"})


def snapshot(db: Db) -> dict[str, list[dict[str, object]]]:
    """Every table's rows (ordered by key), for before/after comparisons."""
    out = {}
    for name in sorted(db.table_names()):
        t = db.table(name)
        with db.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(*t.primary_key.columns)).mappings()
            out[name] = [dict(r) for r in rows]
    return out


def unique_name() -> str:
    return f"t_{uuid.uuid4().hex}"
