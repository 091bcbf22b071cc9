"""Identifiers read from rows take the host's normal form, or none at all."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from erasure_sql.queries import in_values
from erasure_sql.values import db_normaliser
from sql_fixtures import Db

from erasure import Identifier, IdentifierType

T = IdentifierType


@pytest.mark.parametrize(("itype", "raw", "normal"), [
    (T.EMAIL, "  Bob@Example.ORG ", "bob@example.org"),
    (T.EMAIL, "not an address", None),
    (T.EMAIL, "", None),
    (T.PHONE, "+4930123456", "+4930123456"),
    (T.PHONE, " +49 30 123456 ", "+4930123456"),
    (T.PHONE, "030 123456", None),  # no country: never guessed
    (T.NAME, "  Jim   Bob ", "Jim Bob"),
    (T.NAME, "Jim\x00Bob", None),
    (T.CUSTOMER_ID, 12345, "12345"),
    (T.CUSTOMER_ID, "  ", None),
    (T.IP, " 2001:DB8::1 ", "2001:db8::1"),
    (T.IP, "999.1.1.1", None),
])
def test_row_values_normalise_like_the_host(itype: IdentifierType, raw: object,
                                            normal: str | None) -> None:
    assert db_normaliser(itype)(raw) == normal
    if normal is not None and isinstance(raw, str) and itype is not T.NAME:
        assert Identifier.parse(itype, raw).value == normal  # the same form a request gets


ODD = ['a"b@x.org', "back\\slash@x.org", "{brace},comma@x.org", "NULL", " spaced ", "é@x.org",
       "tab\there", 'both\\"@x.org', ""]


def test_key_arrays_carry_any_text_exactly(db: Db) -> None:
    """Keys go to PostgreSQL as one array literal: every character must arrive as it was."""
    t = sa.Table("people", db.meta,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("email", sa.String(100), nullable=False))
    db.create()
    db.insert("people", *({"id": i, "email": v} for i, v in enumerate(ODD, start=1)),
              {"id": 100, "email": "other@x.org"}, {"id": 101, "email": "a\\\"b@x.org"})
    with db.engine.connect() as conn:
        got = conn.execute(sa.select(t.c.id).where(
            in_values(db.engine.dialect.name, t.c.email, ODD, t.c.email.type))).scalars().all()
        assert sorted(got) == list(range(1, len(ODD) + 1))
        ints = conn.execute(sa.select(t.c.email).where(
            in_values(db.engine.dialect.name, t.c.id, [1, 100], t.c.id.type))).scalars().all()
        assert sorted(ints) == sorted([ODD[0], "other@x.org"])
