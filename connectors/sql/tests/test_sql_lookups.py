"""find's reads on psycopg's own cursor (``ArrayLookup``): same rows, same errors.

On PostgreSQL find runs its key lookups as statements compiled once, on the driver's cursor.
They must return exactly what SQLAlchemy would, leave types SQLAlchemy converts to
SQLAlchemy, and fail the way every other statement fails (classified, no values, and a lost
connection not handed out again).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
import sqlalchemy as sa
from erasure_sql.queries import ArrayLookup, array_literal
from sql_fixtures import Db, numbered_shop

from erasure import (
    BlockedError,
    Identifier,
    IdentifierType,
    ItemStatus,
    Subject,
    TransientError,
)

E = IdentifierType.EMAIL
# Lookups on the driver's cursor are PostgreSQL's (psycopg) only.
on_postgresql = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


@on_postgresql
def test_driver_rows_equal_sqlalchemy_rows_and_converted_types_stay_with_sqlalchemy(
    db: Db,
) -> None:
    t = sa.Table(
        "things", db.meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("code", sa.String(20)),
        sa.Column("token", sa.Uuid),
        sa.Column("amount", sa.Numeric(10, 2)),
        sa.Column("born", sa.Date),
        sa.Column("size", sa.Enum("s", "m", name=f"size_{uuid.uuid4().hex[:8]}",
                                  schema=db.schema)),
    )
    db.create()
    rows = [{"id": i, "email": f'u{i}"\\@x.org', "code": None if i % 2 else f"c{i}",
             "token": uuid.UUID(int=i), "amount": decimal.Decimal(f"{i}.25"),
             "born": dt.date(1990, 1, 1 + i), "size": "s"} for i in range(1, 6)]
    db.insert("things", *rows)
    dialect = db.engine.dialect
    cols = [t.c.id, t.c.email, t.c.code, t.c.token, t.c.born]
    lookup = ArrayLookup(dialect, sa.select(*cols), t.c.id, t.c.id.type)
    assert lookup.plain
    literal = array_literal([1, 3, 99])
    assert literal is not None
    with db.engine.connect() as conn:
        via_driver = sorted(lookup.rows(conn, literal))
        via_sqlalchemy = sorted(tuple(r) for r in conn.execute(
            sa.select(*cols).where(t.c.id.in_([1, 3, 99]))))
    assert via_driver == via_sqlalchemy
    assert [r[0] for r in via_driver] == [1, 3]
    # Types SQLAlchemy converts, or decides on only once it sees the driver's type code,
    # are not read around it.
    for col in (t.c.amount, t.c.size):
        assert not ArrayLookup(dialect, sa.select(t.c.id, col), t.c.id, t.c.id.type).plain


def test_find_by_hostile_emails_through_the_driver(db: Db) -> None:
    """Quotes, backslashes, braces and commas reach the server as the values they are."""
    sa.Table("people", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("email", sa.String(100), nullable=False))
    sa.Table("notes", db.meta,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id"), nullable=False))
    db.create()
    hostile = ['a"b@x.org', "c\\d@x.org", "{e},f@x.org", "g'); DROP TABLE people;--@x.org"]
    near = ['a\\"b@x.org', "c\\\\d@x.org", "{e}@x.org", "f@x.org"]  # what bad escaping hits
    db.insert("people", *({"id": i, "email": v} for i, v in enumerate(hostile + near, 1)))
    db.insert("notes", *({"id": 10 * i, "person_id": i} for i in range(1, 9)))
    c = db.connector({"people": {"identifiers": {"email": "email"}}, "notes": {}})
    subjects = [Subject(f"r{i}", (Identifier(E, v),)) for i, v in enumerate(hostile, 1)]
    found = list(c.find(subjects))
    got = {(f.subject, f.kind, f.ref) for f in found}
    assert got == ({(f"r{i}", "people", f'["people",[{i}]]') for i in range(1, 5)}
                   | {(f"r{i}", "notes", f'["notes",[{10 * i}]]') for i in range(1, 5)})
    assert {o.status for o in c.delete(found)} == {ItemStatus.DONE}
    assert [r["email"] for r in db.rows("people")] == near
    assert [r["id"] for r in db.rows("notes")] == [50, 60, 70, 80]


@on_postgresql
def test_a_lookup_error_is_classified_without_values(db: Db) -> None:
    numbered_shop(db, 3, 1)
    c = db.connector({"customers": {"identifiers": {"email": "email"}}, "orders": {}})
    c.mapping()  # reflected while the table exists
    with db.engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE "{db.schema}".orders'))
    with pytest.raises(BlockedError) as err:
        list(c.find([Subject("r1", (Identifier(E, "user1@example.org"),))]))
    assert "find" in str(err.value) and "42P01" in str(err.value)
    assert "example.org" not in str(err.value) and "{" not in str(err.value)


@on_postgresql
def test_a_connection_lost_under_a_lookup_is_transient_and_not_reused(db: Db) -> None:
    numbered_shop(db, 3, 2)
    c = db.connector({"customers": {"identifiers": {"email": "email"}}, "orders": {}})
    subject = [Subject("r1", (Identifier(E, "user1@example.org"),))]
    assert len(list(c.find(subject))) == 3
    with c.engine.connect() as conn:  # the pooled connection find will take next
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with db.engine.connect() as admin:
        admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    with pytest.raises(TransientError):
        list(c.find(subject))
    found = list(c.find(subject))  # a fresh connection, not the dead one
    assert {f.kind for f in found} == {"customers", "orders"} and len(found) == 3
