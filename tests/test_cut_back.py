"""A ledger cut back is refused: each signed head chains to the one before it and the last
one is also kept in the state folder, so deleting receipts off the chain's end (and the
heads that counted them) makes the next signing fail with one line, and `erasure receipts
verify` say so, instead of a fresh head being signed over what is left."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

from clihelpers import (
    describe,
    error_lines,
    ledger_path,
    ledger_query,
    memory_system,
    run_cli,
    write_config,
)


def _erase(config: Path, n: int) -> None:
    proc = run_cli("erase", "--email", f"p{n}@example.com", "--verified", config=config)
    assert proc.returncode == 0, describe(proc)


def _cut(config: Path, keep: int) -> None:
    db = sqlite3.connect(ledger_path(config))
    with db:
        db.execute("DELETE FROM receipts WHERE seq > ?", (keep,))
        db.execute("DELETE FROM receipt_heads")
    db.close()


def test_a_ledger_cut_back_is_refused_and_reported(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})
    for n in range(4):
        _erase(config, n)
    heads = ledger_query(config, "SELECT count, body, hash FROM receipt_heads ORDER BY count")
    assert [h[0] for h in heads] == [1, 2, 3, 4]
    # every head names the one before it
    assert [json.loads(b)["prev"] for _c, b, _h in heads[1:]] == [h for _c, _b, h in heads[:-1]]
    kept = list((tmp_path / "state" / "heads").glob("*.json"))
    assert len(kept) == 1 and stat.S_IMODE(kept[0].stat().st_mode) == 0o600
    assert json.loads(kept[0].read_text())["body"]["count"] == 4

    _cut(config, 2)
    refused = run_cli("erase", "--email", "p9@example.com", "--verified", config=config)
    assert refused.returncode == 1, describe(refused)
    lines = error_lines(refused)
    assert len(lines) == 1 and "the ledger was cut back" in lines[0], describe(refused)
    assert "holds 2 receipts" in lines[0] and "counts 4" in lines[0]
    # nothing was signed over the shorter chain
    assert ledger_query(config, "SELECT count(*) FROM receipt_heads") == [(0,)]
    assert ledger_query(config, "SELECT max(seq) FROM receipts") == [(2,)]

    verify = run_cli("receipts", "verify", config=config)
    assert verify.returncode == 1 and "cut back" in verify.stderr, describe(verify)
    export = run_cli("receipts", "export", "-o", str(tmp_path / "r.json"), config=config)
    assert export.returncode == 1 and "cut back" in export.stderr, describe(export)


def test_a_receipt_replaced_under_its_head_is_refused(tmp_path: Path) -> None:
    """The count alone is not enough: receipt N must still hash as the head says."""
    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})
    for n in range(3):
        _erase(config, n)
    db = sqlite3.connect(ledger_path(config))
    with db:
        db.execute("UPDATE receipts SET hash = ? WHERE seq = 3", ("f" * 64,))
        db.execute("DELETE FROM receipt_heads")
    db.close()
    refused = run_cli("run", config=config)
    assert refused.returncode == 1 and "cut back" in refused.stderr, describe(refused)


def test_heads_removed_from_the_ledger_alone_are_reported(tmp_path: Path) -> None:
    """Heads deleted in the middle: the chain of heads no longer links."""
    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})
    for n in range(3):
        _erase(config, n)
    db = sqlite3.connect(ledger_path(config))
    with db:
        db.execute("DELETE FROM receipt_heads WHERE count = 2")
    db.close()
    verify = run_cli("receipts", "verify", config=config)
    assert verify.returncode == 1, describe(verify)
    assert "does not link to head 1" in verify.stderr, describe(verify)
