"""Issue 20, items 3 and 4, on every engine: an email is found in every form a store may
hold (the domain in punycode or in Unicode; capitals outside ASCII, which SQLite's lower()
does not fold), and a value outside a column's range matches nothing instead of failing."""

from __future__ import annotations

import sqlalchemy as sa
from sql_fixtures import Db

from erasure import Identifier, IdentifierType, Subject

# (row id, stored email): the first seven are the subjects' in other forms, the rest others'
ROWS = [
    (1, "user@xn--bcher-kva.example"),
    (2, "USER@BÜCHER.EXAMPLE"),
    (3, "ÉLODIE@EXAMPLE.FR"),
    (4, "Élodie@Example.fr"),
    (5, "İstanbul@example.com"),
    (6, "ЖЕНЯ.ПЕТРОВА.ИВАНОВНА@EXAMPLE.RU"),  # more case forms than are sent: lowered by Python
    (7, "user@b\u00fccher.example"),
    (10, "user@bucher.example"),  # lookalikes: someone else
    (11, "elodie@example.fr"),
    (12, "istanbul@example.com"),
    (13, "женя.петрова.ивановна@example.com"),
]


def _shop(db: Db) -> None:
    sa.Table("customers", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("email", sa.String(120), nullable=False),
             sa.Column("small", sa.SmallInteger),
             sa.Column("amount", sa.Numeric(6, 2)))
    db.create()
    db.insert("customers", *({"id": i, "email": e, "small": i, "amount": i} for i, e in ROWS))


def _ids(db: Db, *emails: str) -> set[int]:
    c = db.connector({"customers": {"identifiers": {"email": "email"}}})
    subjects = [Subject(f"s{n}", (Identifier.parse(IdentifierType.EMAIL, e),))
                for n, e in enumerate(emails)]
    return {int(f.ref.split("[")[-1].rstrip("]")) for f in c.find(subjects)}


def test_emails_in_every_stored_form_and_nobody_else(db: Db) -> None:
    _shop(db)
    assert _ids(db, "user@bücher.example") == {1, 2, 7}
    assert _ids(db, "user@xn--bcher-kva.example") == {1, 2, 7}
    assert _ids(db, "élodie@example.fr") == {3, 4}
    assert _ids(db, "ÉLODIE@EXAMPLE.FR") == {3, 4}
    assert _ids(db, "İstanbul@example.com") == {5}
    assert _ids(db, "женя.петрова.ивановна@example.ru") == {6}
    # the deep scan (verification beyond the mapping) sees the same forms
    c = db.connector({"customers": {"identifiers": {"customer_id": "id"}}})
    values = [f for e in ("user@bücher.example", "élodie@example.fr")
              for f in Identifier.parse(IdentifierType.EMAIL, e).forms()]
    hits = c.deep_scan().scan(values)
    (counts,) = hits.values()
    assert sum(counts.values()) == 5  # rows 1, 2, 7, 3, 4


def test_a_value_outside_the_columns_range_matches_nothing(db: Db) -> None:
    _shop(db)
    c = db.connector({"customers": {"identifiers": {"customer_id": ["id", "small"],
                                                    "user_id": "amount"}}})
    huge = [Identifier(IdentifierType.CUSTOMER_ID, "99999999999"),   # past a 32-bit INTEGER
            Identifier(IdentifierType.CUSTOMER_ID, "70000"),         # past a SMALLINT
            Identifier(IdentifierType.USER_ID, "123456789"),         # past NUMERIC(6,2)
            Identifier(IdentifierType.CUSTOMER_ID, "-99999999999999999999")]
    assert list(c.find([Subject("s", tuple(huge))])) == []
    found = list(c.find([Subject("s", (Identifier(IdentifierType.CUSTOMER_ID, "3"),))]))
    assert {f.ref for f in found} == {'["customers",[3]]'}


def test_lookups_no_index_serves_are_named_with_the_statement_that_would(db: Db) -> None:
    _shop(db)
    c = db.connector({"customers": {"identifiers": {"email": "email", "customer_id": "small"}}})
    advice = c.advice()
    assert len(advice) == 2 and all("CREATE INDEX" in line for line in advice), advice
    # emails compare as lower(email), except where the collation ignores case (MariaDB's
    # default): then a plain index serves them
    email = "lower(email)" if db.kind != "mariadb" else "email"
    assert f"no index serves find's lookups of customers.{email} " in advice[0]
    with db.engine.begin() as conn:
        for line in advice:
            conn.exec_driver_sql(line.split(": ", 1)[1])
    fresh = db.connector({"customers": {"identifiers": {"email": "email",
                                                        "customer_id": "small"}}})
    assert fresh.advice() == []
    assert _ids(db, "élodie@example.fr") == {3, 4}  # still found, now by the index
