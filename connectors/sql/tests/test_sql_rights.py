"""Rectification and objection through the real command line on SQLite and PostgreSQL: the
mapped columns change, nothing else does (every other value byte-identical), a shared
phone is refused for review, an objection sets the opt-out columns and deletes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sql_fixtures import Db

BOB = "bob@example.org"


def cli(*args: str, config: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(SHOP_URL=url, COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def shop(db: Db, tmp_path: Path) -> Path:
    """Customers with two email columns, a phone, a name, an address and marketing
    opt-outs; orders carrying the email given at checkout (one a gift recipient's)."""
    sa.Table("customers", db.meta,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("email", sa.String(100), unique=True),
             sa.Column("billing_email", sa.String(100)),
             sa.Column("phone", sa.String(32)),
             sa.Column("full_name", sa.String(100)),
             sa.Column("address", sa.String(200)),
             sa.Column("note", sa.String(200)),
             sa.Column("marketing_ok", sa.Boolean, nullable=False),
             sa.Column("newsletter", sa.String(10), nullable=False))
    sa.Table("orders", db.meta,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
             sa.Column("contact_email", sa.String(100)),
             sa.Column("total", sa.Numeric(10, 2)))
    db.create()

    def person(id: int, email: str, phone: str, name: str, **kw: Any) -> dict[str, Any]:
        return {"id": id, "email": email, "billing_email": kw.get("billing", email),
                "phone": phone, "full_name": name, "address": f"{id} Old Road",
                "note": f"customer since 20{id:02d}", "marketing_ok": True,
                "newsletter": "weekly"}
    db.insert("customers",
              person(1, BOB, "+4930111111", "Bob Baker", billing="Bob@Example.org"),
              person(2, "alice@example.org", "+4930222222", "Alice Abbott"),
              person(3, "carol@example.org", "+4930222222", "Carol Cook"),  # Alice's phone
              person(4, "jimbob@example.org", "+4930111112", "Jimbob Baker"))
    db.insert("orders",
              {"id": 10, "customer_id": 1, "contact_email": BOB, "total": 10},
              {"id": 11, "customer_id": 1, "contact_email": "BOB@example.org", "total": 11},
              {"id": 12, "customer_id": 1, "contact_email": "gift@example.org", "total": 12},
              {"id": 20, "customer_id": 4, "contact_email": "jimbob@example.org", "total": 20})
    schema = f'schema = "{db.schema}"\n' if db.schema else ""
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\n\n'
        '[systems.shop]\nconnector = "sql"\nurl = { env = "SHOP_URL" }\n' + schema +
        "\n[systems.shop.tables.customers]\n"
        'identifiers = { email = ["email", "billing_email"], phone = "phone", '
        'name = "full_name" }\n'
        'address = "address"\n'
        'opt_out = { marketing = { marketing_ok = false, newsletter = "none" } }\n'
        "\n[systems.shop.tables.orders]\n"
        'identifiers = { email = "contact_email" }\n', encoding="utf-8")
    return config


def snapshot(db: Db) -> dict[str, dict[Any, dict[str, str]]]:
    """Every row, every value as the database returns it (repr: byte-identical or not)."""
    return {t: {r["id"]: {k: repr(v) for k, v in r.items()} for r in db.rows(t)}
            for t in ("customers", "orders")}


def receipt(config: Path, url: str) -> dict[str, Any]:
    shown = cli("receipts", "export", "-o", str(config.parent / "r.json"), config=config,
                url=url)
    assert shown.returncode == 0, shown.stderr
    receipts = json.loads((config.parent / "r.json").read_text())["receipts"]
    return json.loads(receipts[-1]["body"]) if isinstance(receipts[-1]["body"], str) \
        else receipts[-1]["body"]


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_rectified_email_changes_in_every_mapped_column_and_nothing_else(db, tmp_path):
    config = shop(db, tmp_path)
    before = snapshot(db)
    proc = cli("rectify", "--email", BOB, "--verified", "--set", "email=Robert@Example.org",
               "--set", "address=2 New Street", config=config, url=db.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = snapshot(db)
    new = repr("robert@example.org")
    expected = json.loads(json.dumps(before))  # a deep copy, keys as text
    expected["customers"]["1"].update(email=new, billing_email=new,
                                      address=repr("2 New Street"))
    expected["orders"]["10"]["contact_email"] = new
    expected["orders"]["11"]["contact_email"] = new
    # Order 12 carries a gift recipient's address: not Bob's, never changed. Alice, Carol,
    # Jimbob: byte-identical, as is every column of Bob's rows the correction did not name.
    assert json.loads(json.dumps(after)) == expected
    body = receipt(config, db.url)
    assert body["outcome"] == "completed" and body["corrections"] == ["address", "email"]
    assert body["verification"] == {"performed": True, "ok": True}
    assert "robert" not in json.dumps(body) and "New Street" not in json.dumps(body)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_shared_phone_is_refused_for_review(db, tmp_path):
    config = shop(db, tmp_path)
    before = snapshot(db)
    proc = cli("rectify", "--email", "alice@example.org", "--phone", "+4930222222",
               "--verified", "--set", "phone=+4930999999", config=config, url=db.url)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert snapshot(db) == before  # Carol keeps the phone she shares, and so does Alice
    body = receipt(config, db.url)
    assert body["outcome"] == "partial" and body["corrections_refused"] == ["phone"]
    assert any("refused, for review" in e for e in body["errors"])


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_an_objection_sets_the_opt_outs_and_deletes_nothing(db, tmp_path):
    config = shop(db, tmp_path)
    before = snapshot(db)
    proc = cli("object", "--email", BOB, config=config, url=db.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = snapshot(db)
    assert {t: set(rows) for t, rows in after.items()} == {
        t: set(rows) for t, rows in before.items()}  # every row still there
    bob = after["customers"][1]
    assert bob["marketing_ok"] in (repr(False), repr(0)) and bob["newsletter"] == repr("none")
    assert {**bob, "marketing_ok": None, "newsletter": None} == {
        **before["customers"][1], "marketing_ok": None, "newsletter": None}
    for t in ("customers", "orders"):
        for rid, row in after[t].items():
            if (t, rid) != ("customers", 1):
                assert row == before[t][rid], f"{t} {rid} changed"
    assert receipt(config, db.url)["objection_scope"] == "marketing"
    # Profiling: this shop has nothing that stops it. Not covered, with the reason.
    proc = cli("object", "--email", BOB, "--scope", "profiling", config=config, url=db.url)
    assert proc.returncode == 1
    body = receipt(config, db.url)
    assert body["outcome"] == "not_covered"
    assert any("no opt_out columns configured for profiling" in e for e in body["errors"])
    assert snapshot(db) == after
