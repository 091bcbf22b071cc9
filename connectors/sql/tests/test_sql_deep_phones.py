"""The deep scan (verification beyond the mapping) finds a subject's phone written the ways
people write it in text columns the mapping does not search, on every engine; a longer
number holding it is someone else's."""

from __future__ import annotations

import sqlalchemy as sa
from erasure_sql.deepscan import residue_findings
from sql_fixtures import Db

from erasure import Identifier, IdentifierType, Subject

BOB = "+441130000001"
NOTES = [
    (1, "+44 113 000 0001"),
    (2, "call Bob on 0113 000 0001."),
    (3, "+44 (0)113-000-0001"),
    (4, "Carol: +44 113 000 00012"),  # someone else's, longer
    (5, "Dave: 0113 000 00012"),
    (6, "+441130000001"),
    (7, "nothing here"),
]


def _shop(db: Db) -> None:
    sa.Table("customers", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("email", sa.String(120)))
    sa.Table("call_notes", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("note", sa.String(200)))
    db.create()
    db.insert("call_notes", *({"id": i, "note": n} for i, n in NOTES))


def test_phones_as_people_write_them_are_residue(db: Db) -> None:
    _shop(db)
    tables = {"customers": {"identifiers": {"email": "email"}}}
    bob = Subject("req-bob", (Identifier.parse(IdentifierType.PHONE, BOB),))
    international = db.connector(tables).deep_scan().scan([BOB])
    (place, counts), = international.items()
    assert place.endswith("call_notes.note") and counts == {BOB: 3}  # rows 1, 3, 6
    regional = db.connector(tables, phone_region="GB").deep_scan()
    hits = regional.scan([BOB])
    assert list(hits.values()) == [{BOB: 4}]  # and the national form of row 2
    (finding,) = residue_findings("shop-db", [bob], hits)
    assert finding.fields == (place,)
    assert regional.scan(["+4411300000012"]) == {}, "a number nobody wrote"
