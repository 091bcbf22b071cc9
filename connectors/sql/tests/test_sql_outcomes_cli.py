"""Outcomes that say what happened (issue 26, item 3), through the real command line on
SQLite: a restriction that could not restrict every row the person has ends ``partial``
(exit 1), never ``completed``, and ``receipts show`` names how many rows and why."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_restriction_of_a_table_without_a_restrict_column_ends_partial_with_its_reason(
        tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, "
            "restricted INTEGER NOT NULL DEFAULT 0);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT, total INTEGER);"
            "INSERT INTO customers VALUES (1, 'ann@example.org', 0), (2, 'bob@example.org', 0);"
            "INSERT INTO orders VALUES (10, 'ann@example.org', 5), (11, 'ann@example.org', 7),"
            " (12, 'bob@example.org', 9);")
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\n\n'
        f'[systems.shop]\nconnector = "sql"\nurl = "sqlite:///{db}"\n'
        '\n[systems.shop.tables.customers]\nidentifiers = { email = "email" }\n'
        'restrict_column = "restricted"\n'
        '\n[systems.shop.tables.orders]\nidentifiers = { email = "email" }\n',
        encoding="utf-8")
    proc = cli("restrict", "--email", "ann@example.org", "--verified", config=config)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (rid,) = re.findall(r"Request (r-\w+)", proc.stdout)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, restricted FROM customers ORDER BY id").fetchall() \
            == [(1, 1), (2, 0)]
    shown = cli("receipts", "show", rid, config=config)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith("shop "))
    # system action outcome found acted review failed unsupported retained residue tries
    assert row.split()[1:10] == ["restrict", "partial", "3", "1", "0", "0", "2", "0", "0"]
    assert "not_supported: table orders has no restrict_column" in shown.stdout
