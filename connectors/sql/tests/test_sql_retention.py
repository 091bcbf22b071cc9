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


def test_sweep_receipts_are_sealed_like_request_receipts(tmp_path: Path) -> None:
    """`erasure sweep` and `erasure erase` write into one chain by one code path: every
    stored receipt is the canonical text its hash was computed from, and the chain (sweep
    receipts between request receipts) verifies."""
    import hashlib
    import json
    import os
    import sqlite3
    import subprocess
    import sys

    from erasure.receipts import canonical

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    events = sa.Table("events", meta, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("email", sa.String(100)), sa.Column("at", sa.DateTime))
    meta.create_all(engine)
    old = (datetime.now(UTC) - timedelta(days=800)).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(events.insert(), [{"id": i, "email": f"p{i}@example.org", "at": old}
                                       for i in range(1, 5)])
    engine.dispose()
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\n\n[systems.shop]\nconnector = "sql"\n'
        'url = { env = "SHOP_URL" }\nretention_months = 24\n\n[systems.shop.tables.events]\n'
        'identifiers = { email = "email" }\nretention_column = "at"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(SHOP_URL=url, COLUMNS="250", NO_COLOR="1")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                              capture_output=True, text=True, timeout=120, env=env)

    for step in (("erase", "--email", "p1@example.org", "--verified"), ("sweep",),
                 ("erase", "--email", "nobody@example.org", "--verified")):
        proc = cli(*step)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    db = sqlite3.connect(tmp_path / "state" / "ledger.db")
    rows = db.execute("SELECT seq, body, hash FROM receipts ORDER BY seq").fetchall()
    db.close()
    kinds = [json.loads(body).get("kind") for _s, body, _h in rows]
    assert kinds == [None, "retention_sweep", None]
    for _seq, body, digest in rows:
        assert body == canonical(json.loads(body)).decode()  # the text that was hashed
        assert hashlib.sha256(body.encode()).hexdigest() == digest
    verified = cli("receipts", "verify")
    assert verified.returncode == 0 and "3 receipts" in verified.stdout, verified.stdout
