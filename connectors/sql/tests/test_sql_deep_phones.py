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


# Free text: the number or address inside a sentence, with text after it.
LOG = [
    (0, "two lines:\nnothing here"),  # searched as one line: the rows after it stay theirs
    (1, "0113 000 0001 is Bob's desk phone"),  # national form, text after
    (2, "please call +44 113 000 0001 after 5pm, not before"),  # inside a sentence
    (3, "Bob (0113) 000-0001, mornings only"),
    (4, "Carol: +44 113 000 00012 (mobile), evenings"),  # longer: someone else's
    (5, "Dave 0113 000 00012 after 5pm"),
    (6, "ring +44 113 000 0002 today"),  # the neighbour's number
    (7, "call bob@example.org after 5pm"),
    (8, "xbob@example.org asked for a refund"),  # another address holding Bob's
    (9, "cc: carol@example.org, bob@example.org.uk"),
    (10, "From: Bob <BOB@Example.org>; re: order 7"),
    (11, "bob@example.org."),
    (12, "xbob@example.org"),
    (13, None),
    (14, "ring him:\n0113 000 0001 (desk)\nor mail bob@example.org, thanks"),
]


def _log(db: Db) -> dict[str, dict[str, str]]:
    sa.Table("customers", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("email", sa.String(120)))
    sa.Table("call_log", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("entry", sa.Text))
    db.create()
    db.insert("call_log", *({"id": i, "entry": n} for i, n in LOG))
    return {"customers": {"identifiers": {"email": "email"}}}


def test_phones_inside_text_are_found_and_longer_numbers_are_not(db: Db) -> None:
    tables = _log(db)
    international = db.connector(tables).deep_scan().scan([BOB])
    assert list(international.values()) == [{BOB: 1}], "row 2, written with +44"
    regional = db.connector(tables, phone_region="GB").deep_scan()
    hits = regional.scan([BOB])
    (place, counts), = hits.items()
    assert place.endswith("call_log.entry") and counts == {BOB: 4}  # rows 1, 2, 3, 14
    neighbour = "+441130000002"
    assert regional.scan([neighbour]) == {place: {neighbour: 1}}, "row 6 only"
    assert regional.scan(["+4411300000012"]) == {}, "a number nobody wrote"


def test_emails_inside_text_are_found_alone(db: Db) -> None:
    tables = _log(db)
    bob = "bob@example.org"
    hits = db.connector(tables).deep_scan().scan([bob])
    assert list(hits.values()) == [{bob: 4}], "rows 7, 10, 11, 14; not xbob or .uk"
    (finding,) = residue_findings(
        "shop-db", [Subject("req-bob", (Identifier.parse(IdentifierType.EMAIL, bob),))], hits)
    assert finding.fields[0].endswith("call_log.entry")
    assert db.connector(tables).deep_scan().scan(["xbob@example.org"]) == {
        finding.fields[0]: {"xbob@example.org": 2}}
