"""The operator's review of SQL rows (issue 26), through the real command line on SQLite:
another person's row reached through the subject's card cannot be included (one line,
nothing recorded; its reason says so before anyone decides), and a shared phone counts the
records that hold it, not the rows reached through them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from test_sql_outcomes_cli import cli

SHOP = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, phone TEXT, full_name TEXT);
CREATE TABLE payment_cards (id INTEGER PRIMARY KEY,
                            customer_id INTEGER REFERENCES customers(id), last4 TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                     payment_card_id INTEGER REFERENCES payment_cards(id), total REAL);
INSERT INTO customers VALUES (1, 'john@shop.test', '+441130000001', 'John Roe'),
  (2, 'jane@shop.test', '+441130000002', 'Jane Doe'),
  (3, 'bob@shop.test', '+441130000001', 'Bob Roe');
INSERT INTO payment_cards VALUES (10, 1, '1111'), (11, 3, '3333');
-- 200 is Jane's order, paid with John's card; Bob (John's phone) has a card and orders
INSERT INTO orders VALUES (100, 1, 10, 1), (101, 1, NULL, 2), (200, 2, 10, 3),
  (300, 3, 11, 4), (301, 3, NULL, 5);
"""


def shop(tmp_path: Path) -> Path:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(SHOP)
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\nstrong_identifiers = ["email", "customer_id"]\n'
        'require_approval = true\n'
        f'\n[systems.shop]\nconnector = "sql"\nurl = "sqlite:///{db}"\n'
        '\n[systems.shop.tables.customers]\nidentifiers = { email = "email", phone = '
        '"phone", name = "full_name", customer_id = "id" }\n'
        '\n[systems.shop.tables.payment_cards]\naction = "delete"\n'
        '\n[systems.shop.tables.orders]\naction = "delete"\nowner = "customers"\n',
        encoding="utf-8")
    return config


def test_another_persons_row_cannot_be_included_and_a_shared_phone_counts_holders(
        tmp_path: Path) -> None:
    config = shop(tmp_path)
    created = cli("request", "create", "--type", "erasure", "--email", "john@shop.test",
                  "--verified", config=config)
    assert created.returncode == 0, created.stderr
    rid = created.stdout.strip()
    assert cli("run", config=config).returncode == 0
    doc = json.loads(cli("review", rid, "--json", config=config).stdout)
    (jane,) = [i for i in doc["items"] if "not its owner's" in " ".join(i["reasons"])]
    # said before the operator decides
    assert any("cannot be included" in r for r in jane["reasons"]), jane["reasons"]
    # John's and Bob's customer rows hold the phone; their cards and orders do not
    bob = [i for i in doc["items"] if i["kind"] == "customers"]
    assert bob and "shared phone: 2 records of this request's findings hold it" in \
        bob[0]["reasons"], bob[0]["reasons"]
    assert not any("shared name" in r for i in doc["items"] for r in i["reasons"])

    refused = cli("review", rid, "--include", jane["ref"], config=config)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert f"{jane['ref']} cannot be included" in line and "nothing was recorded" in line
    again = json.loads(cli("review", rid, "--json", config=config).stdout)
    assert all(i["decision"] is None for i in again["items"]), again
    # --include all passes over it: the others are included, it stays undecided
    every = cli("review", rid, "--include-all", "--json", config=config)
    assert every.returncode == 0, every.stderr
    decided = {i["ref"]: i["decision"] for i in json.loads(every.stdout)["items"]}
    assert decided.pop(jane["ref"]) is None
    assert decided and all(d["decision"] == "include" for d in decided.values()), decided
