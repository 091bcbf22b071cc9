"""Issue 19, item 3: anonymise cannot do nothing. discover writes a rule for every personal
column (the card's number, code and holder name too), active; anonymising with the proposal
unedited changes every one of them and nobody else's rows, the address only the subject
used is the subject's (not shared), a second run is ``already_done`` only because every
column holds its anonymised value; a mapping that leaves personal columns without a rule is
refused before anything changes, naming where the rules go."""

from __future__ import annotations

import pytest
from owned_shop import JANE, everyone_else, owned_shop
from sql_fixtures import Db
from test_sql_ownership import HAND, proposed, subject

from erasure import BlockedError, ItemStatus


def test_the_proposal_anonymises_every_personal_column_and_nobody_elses(db: Db) -> None:
    owned_shop(db)
    tables = proposed(db)["tables"]
    assert tables["payment_card"]["anonymise"] == {
        "card_number": "null", "cvv": "null", "holder_name": "null"}
    assert tables["customer"]["anonymise"] == {"email": "placeholder", "full_name": "null"}
    c = db.connector(tables, system="shop")
    jane = {"customer": ("id", {1}), "payment_card": ("id", {1}), "address": ("id", {1})}
    others = everyone_else(db, jane)
    found = list(c.find([subject("jane", JANE)]))
    outcomes = list(c.anonymise(found))
    # the address is hers alone: anonymised, not kept as shared
    assert {(o.finding.kind, o.status) for o in outcomes
            if o.finding.kind in ("customer", "payment_card", "address")} == {
        ("customer", ItemStatus.DONE), ("payment_card", ItemStatus.DONE),
        ("address", ItemStatus.DONE)}, [(o.finding.kind, o.error) for o in outcomes]
    (card,) = [r for r in db.rows("payment_card") if r["id"] == 1]
    assert (card["card_number"], card["cvv"], card["holder_name"]) == (None, None, None)
    (customer,) = [r for r in db.rows("customer") if r["id"] == 1]
    assert customer["email"] == "erased+1@invalid" and customer["full_name"] is None
    (home,) = [r for r in db.rows("address") if r["id"] == 1]
    assert (home["street"], home["city"]) == (None, None)
    assert everyone_else(db, jane) == others
    again = list(c.anonymise(list(c.find([subject("jane", JANE)])) or found))
    assert {o.status for o in again if o.finding.kind in ("payment_card", "customer")} == {
        ItemStatus.ALREADY_DONE}


def test_anonymising_without_rules_for_personal_columns_is_refused(db: Db) -> None:
    owned_shop(db)
    c = db.connector(HAND, system="shop")
    # systems check says so beforehand (a note: a deleting policy does not need the rules)
    assert ("anonymising its rows would be refused: personal columns without a rule: "
            "systems.shop.tables.payment_card.anonymise: card_number, cvv, holder_name"
            ) in c.advice()
    found = list(c.find([subject("jane", JANE)]))
    before = everyone_else(db, {})
    with pytest.raises(BlockedError) as err:  # an operator's to fix, then retry
        list(c.anonymise(found))
    assert "systems.shop.tables.payment_card.anonymise: card_number, cvv, holder_name" in str(
        err.value)
    assert everyone_else(db, {}) == before  # nothing changed
    ruled = {**HAND, "customer": {**HAND["customer"], "anonymise": {
        "email": "placeholder", "full_name": "null"}},
        "payment_card": {**HAND["payment_card"], "anonymise": {
        "card_number": "null", "cvv": "null", "holder_name": "keep:the bank's reference"}}}
    c2 = db.connector(ruled, system="shop")
    assert all(o.ok for o in c2.anonymise(list(c2.find([subject("jane", JANE)]))))
    (card,) = [r for r in db.rows("payment_card") if r["id"] == 1]
    assert (card["card_number"], card["cvv"], card["holder_name"]) == (None, None, "Jane Doe")
