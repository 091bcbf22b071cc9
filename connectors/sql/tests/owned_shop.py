"""A shop with the shapes of issue 19: an order table with two parents (its customer, and
the card it was paid with, which may be someone else's), key-only children (logins, order
items), a card table with a number and a code, a loyalty table linked by the member's name
only, a child table without a primary key, and a product catalogue.

Jane (customer 1) once paid with John's card (order 12 on card 2). Links are by name only
(``customer_id``...) unless ``declared``: then they are foreign keys too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sql_fixtures import Db

JANE = "jane@example.com"
JOHN = "john@example.com"
MIA = "mia@example.com"

#: Jane's rows by table: key column -> values.
JANE_ROWS = {"customer": ("id", {1}), "payment_card": ("id", {1}), "orders": ("id", {11, 12}),
             "order_item": ("id", {111, 121}), "login": ("id", {1, 2})}
JOHN_ROWS = {"customer": ("id", {2}), "payment_card": ("id", {2}), "orders": ("id", {21}),
             "order_item": ("id", {211}), "login": ("id", {3})}


def _fk(declared: bool, target: str) -> list[Any]:
    return [sa.ForeignKey(target)] if declared else []


def owned_shop(db: Db, declared: bool = False) -> None:
    """Create and fill the shop in ``db``'s private schema."""
    m = db.meta

    def key() -> sa.Column[int]:
        return sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)

    sa.Table("address", m, key(), sa.Column("street", sa.String(80)),
             sa.Column("city", sa.String(40)))
    sa.Table("customer", m, key(), sa.Column("email", sa.String(120)),
             sa.Column("full_name", sa.String(80)),
             sa.Column("address_id", sa.Integer, *_fk(declared, "address.id")))
    sa.Table("payment_card", m, key(),
             sa.Column("customer_id", sa.Integer, *_fk(declared, "customer.id")),
             sa.Column("card_number", sa.String(19)), sa.Column("cvv", sa.String(4)),
             sa.Column("holder_name", sa.String(80)))
    sa.Table("orders", m, key(),
             sa.Column("customer_id", sa.Integer, *_fk(declared, "customer.id")),
             sa.Column("payment_card_id", sa.Integer, *_fk(declared, "payment_card.id")),
             sa.Column("total", sa.Numeric(8, 2)))
    sa.Table("product", m, key(), sa.Column("name", sa.String(80)))
    sa.Table("order_item", m, key(),
             sa.Column("order_id", sa.Integer, *_fk(declared, "orders.id")),
             sa.Column("product_id", sa.Integer, *_fk(declared, "product.id")),
             sa.Column("quantity", sa.Integer))
    sa.Table("login", m, key(),
             sa.Column("customer_id", sa.Integer, *_fk(declared, "customer.id")),
             sa.Column("at", sa.DateTime))
    sa.Table("loyalty", m, key(), sa.Column("member_name", sa.String(80)),
             sa.Column("points", sa.Integer))
    # no primary key: its rows can be told apart only by their values
    sa.Table("order_note", m, sa.Column("order_id", sa.Integer), sa.Column("note", sa.String(80)))
    db.create()
    now = dt.datetime(2026, 1, 5, 10, 0)
    db.insert("address", {"id": 1, "street": "1 Elm Street", "city": "Springfield"},
              {"id": 2, "street": "2 Oak Street", "city": "Springfield"})
    db.insert("customer",
              {"id": 1, "email": JANE, "full_name": "Jane Doe", "address_id": 1},
              {"id": 2, "email": JOHN, "full_name": "John Roe", "address_id": 2},
              {"id": 3, "email": MIA, "full_name": "Mia Poe", "address_id": 2})
    db.insert("payment_card",
              {"id": 1, "customer_id": 1, "card_number": "4111111111111111", "cvv": "123",
               "holder_name": "Jane Doe"},
              {"id": 2, "customer_id": 2, "card_number": "5555555555554444", "cvv": "321",
               "holder_name": "John Roe"})
    db.insert("product", {"id": 1, "name": "Garden Hose"}, {"id": 2, "name": "Paper Towels"})
    db.insert("orders", {"id": 11, "customer_id": 1, "payment_card_id": 1, "total": 10},
              {"id": 12, "customer_id": 1, "payment_card_id": 2, "total": 20},  # John's card
              {"id": 21, "customer_id": 2, "payment_card_id": 2, "total": 30},
              {"id": 31, "customer_id": 3, "payment_card_id": None, "total": 40})
    db.insert("order_item", {"id": 111, "order_id": 11, "product_id": 1, "quantity": 1},
              {"id": 121, "order_id": 12, "product_id": 2, "quantity": 2},
              {"id": 211, "order_id": 21, "product_id": 1, "quantity": 3},
              {"id": 311, "order_id": 31, "product_id": 2, "quantity": 4})
    db.insert("login", {"id": 1, "customer_id": 1, "at": now},
              {"id": 2, "customer_id": 1, "at": now},
              {"id": 3, "customer_id": 2, "at": now}, {"id": 4, "customer_id": 3, "at": now})
    db.insert("loyalty", {"id": 1, "member_name": "Jane Doe", "points": 120},
              {"id": 2, "member_name": "Mia Poe", "points": 80})
    db.insert("order_note", {"order_id": 11, "note": "leave at the door"},
              {"order_id": 31, "note": "ring twice"})


def rows_of(db: Db, table: str, key: str, values: set[Any]) -> list[dict[str, Any]]:
    """The rows of ``table`` whose ``key`` is one of ``values`` (ordered by key)."""
    return [r for r in db.rows(table, order=key) if r[key] in values]


def everyone_else(db: Db, rows: dict[str, tuple[str, set[Any]]]) -> dict[str, list[Any]]:
    """Every row of every table except ``rows`` (a person's), for before/after checks."""
    out: dict[str, list[Any]] = {}
    for name in sorted(db.table_names()):
        t = db.table(name)
        with db.engine.connect() as conn:
            got = [dict(r) for r in conn.execute(sa.select(t)).mappings()]
        key, values = rows.get(name, ("", set()))
        out[name] = sorted((r for r in got if not key or r[key] not in values), key=repr)
    return out
