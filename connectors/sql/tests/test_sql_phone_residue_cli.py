"""A phone given with an erasure is searched beyond the mapping too (the host passes it to
the verification, though phones are not strong by default), through the real command line
on SQLite: a copy of the number left in a column the mapping does not search makes the
system ``partial``, its place named for review on the receipt, never the number; a person
whose number is nowhere else completes."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

YAN = "+441130000008"
ZED = "+441130000009"


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_given_phone_left_outside_the_mapping_is_residue_for_review(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, phone TEXT);"
            "CREATE TABLE callbacks (id INTEGER PRIMARY KEY, note TEXT);"
            "INSERT INTO customers VALUES (1, 'yan@shop.test', '+441130000008'),"
            " (2, 'zed@shop.test', '+441130000009');"
            "INSERT INTO callbacks VALUES (10, '+441130000008'), (11, 'nothing here');")
    config = tmp_path / "erasure.toml"
    config.write_text(  # strong_identifiers left at its default: no phone in it
        '[erasure]\nstate_dir = "state"\ndefault_phone_region = "GB"\n\n'
        f'[systems.shop]\nconnector = "sql"\nurl = "sqlite:///{db}"\n'
        '\n[systems.shop.tables.customers]\nidentifiers = { email = "email", '
        'phone = "phone" }\n', encoding="utf-8")
    yan = cli("erase", "--email", "yan@shop.test", "--phone", YAN, "--verified",
              config=config)
    zed = cli("erase", "--email", "zed@shop.test", "--phone", ZED, "--verified",
              config=config)
    assert yan.returncode == 1, yan.stdout + yan.stderr  # not completed
    assert zed.returncode == 0, zed.stdout + zed.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM customers").fetchall() == []
        # the unmapped copy is reported, never changed: nobody mapped it to be erased
        assert conn.execute("SELECT id FROM callbacks ORDER BY id").fetchall() == [
            (10,), (11,)]
    bodies = {}
    for proc in (yan, zed):
        (rid,) = set(re.findall(r"\br-[0-9a-f]{16}\b", proc.stdout))
        shown = cli("receipts", "show", rid, "--json", config=config)
        assert shown.returncode == 0, shown.stderr
        (receipt,) = json.loads(shown.stdout)["receipts"]
        bodies[proc is yan] = receipt["body"]
    body = bodies[True]
    assert body["outcome"] == "partial", body
    assert body["counts"]["residue"] == 1, body["counts"]
    assert body["unmapped_residue"] == ["main.callbacks.note (a phone: review)"], body
    # the phone was searched, never claimed verified as strong identifiers are
    assert body["identifier_types"]["verified"] == ["email"], body["identifier_types"]
    text = json.dumps(body)
    assert "0000008" not in text and "0113" not in text, "no number on the receipt"
    assert bodies[False]["outcome"] == "completed", bodies[False]
    assert bodies[False]["unmapped_residue"] == [], bodies[False]
