"""How the sql connector's failures are classified, seen through the command line.

A database file that cannot be written for a while (read-only, an I/O error) is transient:
every request completes once it can be written again, none is failed for good. A mapping
that does not match the schema is blocked for the whole system, and is not reflected again
on every call.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from erasure_sql.connector import SqlConnector
from erasure_sql.settings import SqlSettings

from erasure import BlockedError, Identifier, IdentifierType, Subject

N = 40  # customers, each asking for erasure; batches of 8


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def _shop(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL "
               "REFERENCES customers(id))")
    db.executemany("INSERT INTO customers VALUES (?, ?)",
                   [(c, f"user{c}@example.org") for c in range(N + 5)])
    db.executemany("INSERT INTO orders VALUES (?, ?)", [(10 * c, c) for c in range(N + 5)])
    db.commit()
    db.close()


def _rows(path: Path) -> set[int]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT id FROM customers")}
    finally:
        db.close()


def _unwritable(path: Path, on: bool) -> None:
    """Make the file unwritable (root ignores modes: the immutable flag), or writable."""
    if os.geteuid() == 0:
        proc = subprocess.run(["chattr", "+i" if on else "-i", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:  # pragma: no cover - a filesystem without the flag
            pytest.skip(f"cannot make a file immutable here: {proc.stderr.strip()}")
    else:
        path.chmod(0o444 if on else 0o644)
        path.parent.chmod(0o555 if on else 0o755)


def _first_receipt(ledger: Path) -> None:
    """Wait until the run has finished its first batch (its receipts are written)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
            try:
                if db.execute("SELECT count(*) FROM receipts").fetchone()[0]:
                    return
            finally:
                db.close()
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.02)
    raise AssertionError("the run wrote no receipt in 60 s")


def test_an_unwritable_sqlite_file_defers_and_every_request_completes_after(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shop = data / "shop.db"
    _shop(shop)
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\nbatch_size = 8\n'
        "[erasure.retry]\nmax_attempts = 2\ninitial_wait = 0.05\nmax_wait = 0.1\n"
        "defer_initial = 0\n\n"
        f'[systems.shop]\nconnector = "sql"\nurl = "sqlite:///{shop}"\n'
        '\n[systems.shop.tables.customers]\nidentifiers = { email = "email" }\n'
        "\n[systems.shop.tables.orders]\n", encoding="utf-8")
    requests = tmp_path / "requests.csv"
    with requests.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["type", "email", "verified"])
        out.writerows(["erasure", f"user{c}@example.org", "yes"] for c in range(N))
    assert _cli("request", "import", str(requests), config=config).returncode == 0

    # The file turns unwritable while a run works through the batches (connections already
    # open see I/O errors, new ones a read-only database), and writable again later.
    run = subprocess.Popen([sys.executable, "-m", "erasure.cli", "run", "-c", str(config)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _first_receipt(tmp_path / "state" / "ledger.db")
        _unwritable(shop, True)
        try:
            out_, err_ = run.communicate(timeout=120)
        finally:
            _unwritable(shop, False)
    finally:
        run.kill()
    assert run.returncode in (0, 1), err_
    assert "tasks left for a later run" in err_, err_  # it did meet the unwritable file
    assert "failed" not in err_, err_  # nothing failed for good
    for _ in range(N):  # each later run takes what is due again
        proc = _cli("run", config=config)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if "finished" not in proc.stderr:
            break
    status = _cli("status", "--all", config=config)
    assert status.stdout.count("done: completed") == N, status.stdout
    assert _rows(shop) == set(range(N, N + 5))


def test_while_the_file_stays_unwritable_requests_wait_with_the_reason(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shop = data / "shop.db"
    _shop(shop)
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\n[erasure.retry]\nmax_attempts = 1\n\n'
        f'[systems.shop]\nconnector = "sql"\nurl = "sqlite:///{shop}"\n'
        '\n[systems.shop.tables.customers]\nidentifiers = { email = "email" }\n'
        "\n[systems.shop.tables.orders]\n", encoding="utf-8")
    _unwritable(shop, True)
    try:
        proc = _cli("erase", "--email", "user1@example.org", "--verified", config=config)
    finally:
        _unwritable(shop, False)
    assert proc.returncode == 0 and "open; some systems finish later" in proc.stdout, \
        proc.stdout + proc.stderr
    status = _cli("status", config=config)
    assert "cannot be written or read now" in status.stdout, status.stdout
    assert "user1" not in status.stdout + proc.stdout + proc.stderr


def test_a_mapping_that_does_not_match_is_blocked_system_wide_and_kept(tmp_path):
    shop = tmp_path / "shop.db"
    _shop(shop)
    c = SqlConnector("shop", SqlSettings.model_validate({
        "url": f"sqlite:///{shop}",
        "tables": {"customers": {"identifiers": {"email": "email"}}, "invoices": {}}}))
    subject = Subject("r1", (Identifier(IdentifierType.EMAIL, "user1@example.org"),))
    with pytest.raises(BlockedError) as first:
        list(c.find([subject]))
    assert first.value.system_wide and "invoices" in str(first.value)
    db = sqlite3.connect(shop)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER "
               "REFERENCES customers(id))")
    db.commit()
    db.close()
    # Not reflected again for every call of the run: the same error until the config
    # (a new connector instance) changes.
    with pytest.raises(BlockedError) as again:
        list(c.find([subject]))
    assert again.value is first.value
    c.close()
    fresh = SqlConnector("shop", c.settings)
    assert [f.ref for f in fresh.find([subject])]
    fresh.close()
