"""Scenarios a user relies on, on SQLite, PostgreSQL and MariaDB (real databases, no mocks)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import tomllib
from typing import Any

import pytest
import sqlalchemy as sa
from erasure_sql import SqlConnector, SqlSettings
from sql_fixtures import Db

from erasure import (
    BlockedError,
    Identifier,
    IdentifierType,
    ItemStatus,
    PermanentError,
    Subject,
    TransientError,
)

E, P, N, C = (IdentifierType.EMAIL, IdentifierType.PHONE, IdentifierType.NAME,
              IdentifierType.CUSTOMER_ID)
SHARED_PHONE = "+4930123456"
HOSTILE_EMAIL = "o'brien\"--;@example.org"
HOSTILE_NAME = "Robert'); DROP TABLE customers;-- %_*"

PEOPLE = [
    # id, email, phone, name
    (1, "bob@example.org", SHARED_PHONE, "Bob Smith"),
    (2, "jimbob@example.org", SHARED_PHONE, "Jim Bob"),
    (3, HOSTILE_EMAIL, "+14155550123", HOSTILE_NAME),
]


def make_schema(db: Db, *, audit: bool = False) -> None:
    m = db.meta
    sa.Table("customers", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("email", sa.String(255), unique=True, nullable=False),
             sa.Column("phone", sa.String(32)),
             sa.Column("full_name", sa.String(200)),
             sa.Column("processing_restricted", sa.Boolean, nullable=False, default=False))
    sa.Table("orders", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
             sa.Column("placed", sa.Date))
    sa.Table("order_lines", m,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id", ondelete="RESTRICT"),
                       nullable=False),
             sa.Column("price", sa.Numeric(10, 2)),
             sa.Column("blob", sa.LargeBinary))
    sa.Table("sessions", m,  # not mapped: goes with its customer through the cascade
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("customer_id", sa.Integer,
                       sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False))
    sa.Table("invoices", m,  # kept for tax: anonymised
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id")),
             sa.Column("billing_email", sa.String(255), unique=True, nullable=False),
             sa.Column("billing_name", sa.String(200)),
             sa.Column("billing_phone", sa.String(64)),
             sa.Column("vat_note", sa.String(50), nullable=False),
             sa.Column("amount", sa.Numeric(10, 2), nullable=False))
    sa.Table("subscriptions", m,  # composite primary key
             sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"),
                       primary_key=True),
             sa.Column("plan", sa.String(20), primary_key=True))
    sa.Table("subscription_events", m,  # composite foreign key, cascading
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("customer_id", sa.Integer, nullable=False),
             sa.Column("plan", sa.String(20), nullable=False),
             sa.ForeignKeyConstraint(
                 ["customer_id", "plan"],
                 [f"{db.schema + '.' if db.schema else ''}subscriptions.customer_id",
                  f"{db.schema + '.' if db.schema else ''}subscriptions.plan"],
                 ondelete="CASCADE"))
    if audit:
        sa.Table("audit", m,  # not mapped, RESTRICT: blocks deleting customers
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("customer_id", sa.Integer,
                           sa.ForeignKey("customers.id", ondelete="RESTRICT")))
    db.create()
    for cid, email, phone, name in PEOPLE:
        db.insert("customers", {"id": cid, "email": email, "phone": phone, "full_name": name,
                                "processing_restricted": False})
        db.insert("orders", *({"id": cid * 10 + k, "customer_id": cid,
                               "placed": dt.date(2024, 1, k + 1)} for k in range(2)))
        db.insert("order_lines", *({"id": cid * 100 + k, "order_id": cid * 10 + k // 2,
                                    "price": decimal.Decimal("9.99"), "blob": b"\x00\xff"}
                                   for k in range(4)))
        db.insert("sessions", {"id": cid, "customer_id": cid})
        db.insert("invoices", {"id": cid, "customer_id": cid, "billing_email": email,
                               "billing_name": name, "billing_phone": phone,
                               "vat_note": "B2C", "amount": decimal.Decimal("100.00")})
        db.insert("subscriptions", {"customer_id": cid, "plan": "gold"},
                  {"customer_id": cid, "plan": "news"})
        db.insert("subscription_events", {"id": cid, "customer_id": cid, "plan": "gold"})
        if audit and cid == 1:
            db.insert("audit", {"id": 1, "customer_id": 1})


TABLES: dict[str, Any] = {
    "customers": {"identifiers": {"email": "email", "phone": "phone", "name": "full_name",
                                  "customer_id": "id"},
                  "restrict_column": "processing_restricted"},
    "orders": {},
    "order_lines": {},
    "invoices": {"identifiers": {"email": "billing_email"}, "action": "anonymise",
                 "anonymise": {"billing_email": "placeholder", "billing_name": "null",
                               "billing_phone": "hash", "vat_note": "fixed:ERASED"}},
    "subscriptions": {},
    "subscription_events": {},
}
ALL = ["customers", "orders", "order_lines", "sessions", "invoices", "subscriptions",
       "subscription_events"]


def shop(db: Db, tables: dict[str, Any] | None = None, **kw: Any) -> SqlConnector:
    make_schema(db, **kw)
    return db.connector(tables or TABLES, hash_key="k3y-for-tests")


def subj(key: str, *idents: tuple[IdentifierType, str]) -> Subject:
    return Subject(key, tuple(Identifier(t, v) for t, v in idents))


BOB = subj("bob", (E, "bob@example.org"))


def counts(db: Db) -> dict[str, int]:
    return {t: db.count(t) for t in ALL}


def test_fk_chain_cascade_composite_and_tax_table(db: Db) -> None:
    c = shop(db)
    found = list(c.find([BOB]))
    kinds = sorted(f.kind for f in found)
    assert kinds == sorted(["customers", "orders", "orders", *["order_lines"] * 4, "invoices",
                            "subscriptions", "subscriptions", "subscription_events"])
    assert all(f.matched == (BOB.identifiers[0],) and f.subject == "bob" for f in found)
    cust = next(f for f in found if f.kind == "customers")
    assert cust.fields == ("email",)
    assert Identifier(P, SHARED_PHONE) in cust.related
    assert Identifier(N, "Bob Smith") in cust.related
    before = counts(db)

    outcomes = list(c.delete(found))
    assert len(outcomes) == len(found)
    assert all(o.status is ItemStatus.DONE for o in outcomes), outcomes
    after = counts(db)
    assert after == {**before, "customers": 2, "orders": 4, "order_lines": 8, "sessions": 2,
                     "subscriptions": 4, "subscription_events": 2}  # invoices kept: 3
    inv = {r["id"]: r for r in db.rows("invoices")}
    assert inv[1]["billing_email"] == "erased+1@invalid"
    assert inv[1]["billing_name"] is None and inv[1]["vat_note"] == "ERASED"
    assert inv[1]["billing_phone"].startswith("anon:")
    assert SHARED_PHONE not in inv[1]["billing_phone"]
    assert inv[1]["customer_id"] is None and inv[1]["amount"] == decimal.Decimal("100.00")
    assert inv[2]["billing_email"] == "jimbob@example.org" and inv[2]["customer_id"] == 2
    assert list(c.find([BOB])) == [], "data left behind"

    again = list(c.delete(found))
    assert all(o.status is ItemStatus.ALREADY_DONE for o in again), again
    assert counts(db) == after
    assert {r["id"]: r for r in db.rows("invoices")} == inv


def test_unmapped_restrict_fk_blocks_with_clear_error(db: Db) -> None:
    c = shop(db, audit=True)
    found = list(c.find([BOB]))
    before = counts(db)
    with pytest.raises(PermanentError) as err:
        list(c.delete(found))
    msg = str(err.value)
    assert "customers" in msg and "audit" in msg
    assert "bob" not in msg and "1" not in msg.replace("ON DELETE", "")
    assert counts(db) == before, "a refused delete must change nothing"


def test_a_row_added_after_find_that_blocks_the_delete_changes_nothing(db: Db) -> None:
    """An order placed between find and delete refuses the customer's delete mid-transaction
    (PostgreSQL: while rows are deleted where find saw them): a clear error naming the
    tables, and every row of the call still there."""
    c = shop(db)
    found = list(c.find([BOB]))
    db.insert("orders", {"id": 99, "customer_id": 1, "placed": dt.date(2024, 2, 1)})
    before = counts(db)
    with pytest.raises(PermanentError) as err:
        list(c.delete(found))
    msg = str(err.value)
    assert "customers" in msg and "orders" in msg, msg
    assert "bob" not in msg
    assert counts(db) == before, "a refused delete must change nothing"
    assert all(o.ok for o in c.delete(list(c.find([BOB]))))  # found again: erased


def test_retain_and_anonymise_rules(db: Db) -> None:
    # An anonymised table names its rules (issue 11); rules derived from the identifiers
    # only serve tables whose action is delete (test_anonymise_keeps_rows).
    rules = {"email": "placeholder", "phone": "null", "full_name": "null"}
    tables = {**TABLES, "customers": {**TABLES["customers"], "action": "anonymise",
                                      "anonymise": rules},
              "invoices": {"identifiers": {"email": "billing_email"}, "action": "retain",
                           "reason": "tax law: 10 years"}}
    c = shop(db, tables)
    found = list(c.find([BOB]))
    out = {o.finding.kind: o for o in c.delete(found)}
    assert out["invoices"].status is ItemStatus.RETAINED
    assert out["invoices"].error == "tax law: 10 years"
    assert out["customers"].status is ItemStatus.DONE and out["orders"].status is ItemStatus.DONE
    bob = db.rows("customers")[0]
    # unique NOT NULL email -> placeholder; nullable columns -> NULL; key and flag kept
    assert bob == {"id": 1, "email": "erased+1@invalid", "phone": None, "full_name": None,
                   "processing_restricted": False}
    assert db.rows("invoices")[0]["billing_email"] == "bob@example.org"
    again = {o.finding.kind: o.status for o in c.delete(found)}
    assert again["customers"] is ItemStatus.ALREADY_DONE


def test_anonymise_keeps_rows(db: Db) -> None:
    c = shop(db)
    found = [f for f in c.find([BOB]) if f.kind in ("customers", "invoices")]
    first = list(c.anonymise(found))
    assert all(o.status is ItemStatus.DONE for o in first), first
    assert db.count("customers") == 3 and db.rows("customers")[0]["email"] == "erased+1@invalid"
    assert all(o.status is ItemStatus.ALREADY_DONE for o in c.anonymise(found))
    assert list(c.find([BOB])) == []


def test_metacharacters_are_only_values(db: Db) -> None:
    c = shop(db)
    hostile = subj("h", (E, HOSTILE_EMAIL), (N, HOSTILE_NAME), (C, "3 OR 1=1"))
    found = list(c.find([hostile]))
    cust = [f for f in found if f.kind == "customers"]
    assert len(cust) == 1 and json.loads(cust[0].ref) == ["customers", [3]]
    assert set(cust[0].fields) == {"email", "full_name"}  # "3 OR 1=1" is no integer id
    tables_before = db.table_names()
    others = [r for r in db.rows("customers") if r["id"] != 3]
    assert all(o.ok for o in c.delete(found))
    assert db.table_names() == tables_before
    assert db.rows("customers") == others
    assert db.count("orders") == 4 and db.count("order_lines") == 8
    assert list(c.find([hostile])) == []


def test_subject_in_no_table(db: Db) -> None:
    c = shop(db)
    nobody = subj("n", (E, "nobody@example.org"), (P, "+4930999999"), (C, "999"))
    assert list(c.find([nobody])) == []
    assert list(c.delete([])) == []


def test_lookalikes_and_shared_phone(db: Db) -> None:
    c = shop(db)
    by_email = {f.ref for f in c.find([BOB])}
    jim = {f.ref for f in c.find([subj("jim", (E, "jimbob@example.org"))])}
    assert by_email and jim and not by_email & jim
    both = list(c.find([subj("bob", (E, "bob@example.org"), (P, SHARED_PHONE))]))
    custs = {json.loads(f.ref)[1][0]: f for f in both if f.kind == "customers"}
    assert set(custs) == {1, 2}, "a shared phone matches both customers; the host decides"
    assert custs[2].matched == (Identifier(P, SHARED_PHONE),)
    assert set(custs[1].matched) == {Identifier(E, "bob@example.org"), Identifier(P, SHARED_PHONE)}
    # the host erases only what the email matched: jimbob stays whole
    mine = [f for f in both if Identifier(E, "bob@example.org") in f.matched]
    assert {f.ref for f in mine} == by_email
    jim_before = [r for r in db.rows("customers") if r["id"] == 2]
    assert all(o.ok for o in c.delete(mine))
    assert [r for r in db.rows("customers") if r["id"] != 3] == jim_before
    assert {f.ref for f in c.find([subj("jim", (E, "jimbob@example.org"))])} == jim


def test_email_matched_case_insensitively_never_by_substring(db: Db) -> None:
    c = shop(db)
    with db.engine.begin() as conn:
        t = db.table("customers")
        conn.execute(t.update().where(t.c.id == 1).values(email="Bob@Example.ORG"))
    found = [f for f in c.find([BOB]) if f.kind == "customers"]
    assert [json.loads(f.ref)[1] for f in found] == [[1]]
    assert list(c.find([subj("x", (E, "ob@example.org"))])) == []


def test_restrict_flag(db: Db) -> None:
    c = shop(db)
    found = list(c.find([BOB]))
    first = {o.finding.kind: o.status for o in c.restrict(found)}
    assert first["customers"] is ItemStatus.DONE
    assert first["orders"] is ItemStatus.NOT_SUPPORTED
    flags = {r["id"]: r["processing_restricted"] for r in db.rows("customers")}
    assert flags == {1: True, 2: False, 3: False}
    second = {o.finding.kind: o.status for o in c.restrict(found)}
    assert second["customers"] is ItemStatus.ALREADY_DONE


def test_export_is_json_safe(db: Db) -> None:
    c = shop(db)
    records = list(c.export(list(c.find([BOB]))))
    assert len(records) == 11
    data = json.loads(json.dumps([dict(r.data) for r in records]))
    line = next(d for d in data if "blob" in d)
    assert line["blob"] == "AP8=" and line["price"] == "9.99"
    assert next(d for d in data if "placed" in d)["placed"].startswith("2024-01-0")


def test_discover_proposes_without_values(db: Db) -> None:
    make_schema(db)
    sa.Table("contacts", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("reach", sa.String(100)))  # emails under a name that does not say so
    db.create()
    db.insert("contacts", *({"id": i, "reach": f"person{i}@example.net"} for i in range(5)))
    c = db.connector({"customers": {"identifiers": {"email": "email"}}})
    text = c.discover()
    parsed = tomllib.loads(text)
    tables = parsed["systems"]["shop-db"]["tables"]
    assert tables["customers"]["identifiers"]["email"] == "email"
    assert tables["customers"]["identifiers"]["phone"] == "phone"
    assert tables["contacts"]["identifiers"] == {"email": "reach"}
    assert "orders" in tables and "order_lines" in tables
    for _id, email, phone, name in PEOPLE:
        for value in (email, phone, name, "example.net", "Smith"):
            assert value not in text


def test_mapping_names_are_checked(db: Db) -> None:
    make_schema(db)
    for tables, needle in [
        ({"customerz": {"identifiers": {"email": "email"}}}, "customerz"),
        ({"customers": {"identifiers": {"email": "e_mail"}}}, "e_mail"),
        ({"customers": {"identifiers": {"email": "email"}, "anonymise": {"email": "null"}}},
         "NOT NULL"),
        ({"customers": {"identifiers": {"email": "email"}}, "orders": {"action": "retain",
                                                                     "reason": "audit"}},
         "retained"),
    ]:
        with pytest.raises(BlockedError, match=needle):
            db.connector(tables).check()
    with pytest.raises(ValueError, match="hash_key"):
        SqlSettings.model_validate({"url": db.url, "tables": {
            "customers": {"anonymise": {"email": "hash"}}}})


def test_unreachable_server_is_transient() -> None:
    c = SqlConnector("x", SqlSettings.model_validate({
        "url": "postgresql+psycopg://postgres@127.0.0.1:1/test",
        "tables": {"customers": {"identifiers": {"email": "email"}}}}))
    with pytest.raises(TransientError):
        c.check()
    c.close()
