"""Issue 19, item 1: rows belong to their owner, not to whoever reaches them. Jane once paid
with John's card: erasing John leaves Jane's order (and its items) as they were, keeps
John's card while Jane's order uses it, and John's access package holds none of Jane's rows.
On every engine, with discover's proposal unedited and with hand mappings, with links by
name only and as declared foreign keys."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from erasure_sql import SqlConnector, SqlSettings
from owned_shop import JANE, JANE_ROWS, JOHN, JOHN_ROWS, everyone_else, owned_shop
from sql_fixtures import Db

from erasure import BlockedError, Identifier, IdentifierType, ItemStatus, Subject
from erasure.connector import validating_for

HAND = {
    "customer": {"identifiers": {"email": "email"}},
    "payment_card": {"relations": [{"parent": "customer", "columns": {"customer_id": "id"}}]},
    "orders": {"relations": [
        {"parent": "customer", "columns": {"customer_id": "id"}},
        {"parent": "payment_card", "columns": {"payment_card_id": "id"}}]},
    "order_item": {"relations": [{"parent": "orders", "columns": {"order_id": "id"}}]},
    "login": {"relations": [{"parent": "customer", "columns": {"customer_id": "id"}}]},
}


def subject(key: str, email: str) -> Subject:
    return Subject(key, (Identifier.parse(IdentifierType.EMAIL, email),))


def proposed(db: Db) -> dict[str, Any]:
    """discover's section, unedited, as settings data."""
    data: dict[str, Any] = {"url": db.url, "scan_schemas": []}
    if db.schema:
        data["schema"] = db.schema
    with validating_for("discover"):
        conn = SqlConnector("shop", SqlSettings.model_validate(data))
    db.connectors.append(conn)
    text = conn.discover()
    section = tomllib.loads(text)["systems"]["shop"]
    section.pop("connector")
    return section


def _hand(declared: bool) -> dict[str, Any]:
    if not declared:
        return HAND
    # declared foreign keys are followed without relations
    return {"customer": HAND["customer"], "payment_card": {}, "orders": {},
            "order_item": {}, "login": {}}


@pytest.mark.parametrize("declared", [False, True], ids=["named", "declared"])
@pytest.mark.parametrize("mapping", ["discover", "hand"])
def test_erasing_john_leaves_the_order_jane_paid_with_his_card(
        db: Db, mapping: str, declared: bool) -> None:
    owned_shop(db, declared)
    if mapping == "discover":
        section = proposed(db)
        assert section["tables"]["orders"]["owner"] == "customer"
        c = db.connector(section["tables"], system="shop")
    else:
        c = db.connector(_hand(declared), system="shop")
    others = everyone_else(db, JOHN_ROWS)
    found = list(c.find([subject("john", JOHN)]))
    package = list(c.export(found))
    assert {r.data.get("customer_id") for r in package if r.finding.kind == "orders"} == {2}
    assert not [r for r in package if r.finding.kind == "order_item"
                and r.data["order_id"] != 21]  # only John's order's items
    outcomes = list(c.delete(found))
    by_status: dict[tuple[str, str], set[str]] = {}
    for o in outcomes:
        by_status.setdefault((o.finding.kind, o.status.value), set()).add(o.finding.ref)
    assert by_status[("orders", ItemStatus.RETAINED.value)] == {'["orders",[12]]'}
    assert by_status[("payment_card", ItemStatus.RETAINED.value)] == {'["payment_card",[2]]'}
    assert by_status[("orders", ItemStatus.DONE.value)] == {'["orders",[21]]'}
    after = everyone_else(db, JOHN_ROWS)
    # Jane's order 12 (paid with John's card), its item and John's card, untouched
    assert after == {**others, "payment_card": after["payment_card"]}
    assert [r["id"] for r in db.rows("payment_card")] == [1, 2]
    assert [r["id"] for r in db.rows("orders")] == [11, 12, 31]
    assert [r["id"] for r in db.rows("order_item")] == [111, 121, 311]
    # erasing Jane then takes her order 12, and John's card is still kept for nobody's
    # order but stays: it is John's and his erasure kept it, not hers to erase
    hers = {**JANE_ROWS, "address": ("id", {1})}  # the address only she used goes too
    before_jane = everyone_else(db, hers)
    found = list(c.find([subject("jane", JANE)]))
    assert all(o.ok for o in c.delete(found))
    assert everyone_else(db, hers) == before_jane
    assert [r["id"] for r in db.rows("orders")] == [31]


def test_several_parents_without_an_owner_are_refused(db: Db) -> None:
    owned_shop(db)
    tables = {**HAND, "customer": {"identifiers": {"customer_id": "id"}}}
    c = db.connector(tables)
    with pytest.raises(BlockedError, match='table orders: linked from customer, '
                                              'payment_card; name the one whose rows these '
                                              'are: owner = "customer"'):
        c.mapping()
    tables["orders"] = {**HAND["orders"], "owner": "customer"}
    assert db.connector(tables).mapping().tables["orders"].name == "orders"
    tables["orders"] = {**HAND["orders"], "owner": "login"}
    with pytest.raises(Exception, match="owner login"):
        db.connector(tables).mapping()
