"""The sql connector's retention sweep: rows of a table with a ``retention_column`` older than
``retention_months`` are found and deleted; newer rows and undated tables stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from erasure_sql import SqlConnector
from erasure_sql.settings import SqlSettings

from erasure import ItemStatus


def test_rows_past_retention_are_swept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    events = sa.Table("events", meta, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("email", sa.String(100)), sa.Column("at", sa.DateTime))
    notes = sa.Table("notes", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("email", sa.String(100)))
    meta.create_all(engine)
    now = datetime.now(UTC)
    old, new = now - timedelta(days=800), now - timedelta(days=30)
    with engine.begin() as conn:
        conn.execute(events.insert(), [
            {"id": i, "email": f"p{i}@example.org",
             "at": (old if i % 2 else new).replace(tzinfo=None)} for i in range(1, 11)])
        conn.execute(notes.insert(), [{"id": 1, "email": "p1@example.org"}])
    conn_ = SqlConnector("shop", SqlSettings(url=url, retention_months=24, tables={
        "events": {"identifiers": {"email": "email"}, "retention_column": "at"},
        "notes": {"identifiers": {"email": "email"}}}))
    try:
        cutoff = conn_.retention_cutoff(now)
        assert cutoff is not None
        expired = list(conn_.expired(cutoff))
        assert len(expired) == 5 and {f.kind for f in expired} == {"events"}
        assert {o.status for o in conn_.delete(expired)} == {ItemStatus.DONE}
        assert list(conn_.expired(cutoff)) == []
        with engine.connect() as c:
            assert sorted(r.id for r in c.execute(sa.select(events.c.id))) == [2, 4, 6, 8, 10]
            assert c.execute(sa.select(sa.func.count()).select_from(notes)).scalar() == 1
        oldest = conn_.oldest()
        assert oldest is not None and abs((oldest - new).total_seconds()) < 2
        off = SqlConnector("shop", SqlSettings(url=url, tables={
            "events": {"identifiers": {"email": "email"}, "retention_column": "at"}}))
        assert off.retention_cutoff(now) is None
        off.close()
    finally:
        conn_.close()
