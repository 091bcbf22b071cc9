"""Issue 19, items 2 and 4: verification sees keys and names. After an erasure, rows that
still hold the keys of rows it deleted (logins, orders and a card under a mapping that
covers only the customer; a note without a primary key under discover's proposal) are
unmapped residue named ``schema.table.column``, and a table outside the mapping holding the
person's name is named for review: such a run can never end ``completed``."""

from __future__ import annotations

from typing import Any

from owned_shop import JANE, JOHN, everyone_else, owned_shop
from sql_fixtures import Db
from test_sql_ownership import proposed, subject

from erasure import ItemStatus


def _own(db: Db) -> str:
    return db.schema or ("main" if db.kind == "sqlite" else db.url.rsplit("/", 1)[1])


def _erase_and_look(c: Any, email: str) -> tuple[list[Any], set[str]]:
    found = list(c.find([subject("req", email)]))
    outcomes = list(c.delete(found))
    assert all(o.ok for o in outcomes), [(o.finding.kind, o.error) for o in outcomes]
    acted = [o.finding for o in outcomes if o.status is not ItemStatus.RETAINED]
    left = list(c.lookup(acted))
    return left, {p for f in left for p in f.fields}


def test_keys_left_by_a_mapping_of_the_customer_only_are_residue(db: Db) -> None:
    owned_shop(db)
    c = db.connector({"customer": {"identifiers": {"email": "email", "name": "full_name"}}})
    others = everyone_else(db, {"customer": ("id", {1})})
    left, places = _erase_and_look(c, JANE)
    own = _own(db)
    assert places == {
        f"{own}.login.customer_id", f"{own}.orders.customer_id",
        f"{own}.payment_card.customer_id",
        f"{own}.loyalty.member_name (a name: review)",
        f"{own}.payment_card.holder_name (a name: review)"}
    assert {f.subject for f in left} == {"req"} and all(f.kind == "unmapped residue" for f in left)
    assert everyone_else(db, {"customer": ("id", {1})}) == others  # nothing else changed
    # nothing is reported for a subject whose rows were all in the mapping's reach
    c2 = db.connector({"customer": {"identifiers": {"email": "email"}},
                       "login": {"relations": [{"parent": "customer",
                                                "columns": {"customer_id": "id"}}]}})
    found = list(c2.find([subject("mia", "mia@example.com")]))
    assert [f.kind for f in found] == ["customer", "login"]
    list(c2.delete(found))
    assert {p for f in c2.lookup(found) for p in f.fields} == {
        f"{own}.orders.customer_id"}  # Mia's order: still holds her key


def test_discover_proposal_leaves_only_the_keyless_note_and_the_name(db: Db) -> None:
    owned_shop(db)
    section = proposed(db)
    assert "order_note" not in section["tables"]  # no key: listed, not mapped
    c = db.connector(section["tables"], system="shop")
    # John's erasure: his card is kept for Jane's order (shared), nothing of his is left
    # under a key he lost, and his name is nowhere outside the mapping
    _left, places = _erase_and_look(c, JOHN)
    assert places == set()
    _left, places = _erase_and_look(c, JANE)
    own = _own(db)
    assert places == {f"{own}.order_note.order_id",
                      f"{own}.loyalty.member_name (a name: review)"}
    assert [(r["id"], r["customer_id"]) for r in db.rows("payment_card")] == [(2, None)]


def test_discover_lists_a_table_linked_by_a_name_only_as_weak(db: Db) -> None:
    owned_shop(db)
    data: dict[str, Any] = {"url": db.url, "scan_schemas": []}
    if db.schema:
        data["schema"] = db.schema
    from erasure_sql import SqlConnector, SqlSettings

    from erasure.connector import validating_for

    with validating_for("discover"):
        c = SqlConnector("shop", SqlSettings.model_validate(data))
    db.connectors.append(c)
    text = c.discover()
    assert ("# table loyalty: not mapped: possibly personal but no row is linked to a person: "
            "member_name (name, high); linked by a name only (weak)") in text, text
    assert "# table product: not mapped: not personal" in text  # "Garden Hose" is no person
    assert "Jane" not in text
