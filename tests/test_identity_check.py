"""Identity before disclosure (issue 26, item 1): access, portability and restriction need
a verified identity (or an override with a reason), like erasure; `erasure request verify`
upgrades a recorded request, and its receipts say who checked and how."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from clihelpers import ledger_path, memory_system, run_cli, seed, write_config


def shop(tmp_path: Path) -> Path:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org", "note": "ann's"})})
    return write_config(tmp_path, {"crm": memory_system(crm)})


def test_unverified_disclosure_is_refused_and_nothing_is_recorded(tmp_path: Path) -> None:
    config = shop(tmp_path)
    for args in (["export"], ["portability"], ["restrict"],
                 ["request", "create", "--type", "access"]):
        proc = run_cli(*args, "--email", "ann@example.org", config=config)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "not marked verified" in proc.stderr and proc.stderr.count("\n") == 1
    assert "r-" not in run_cli("status", "--all", config=config).stdout
    assert not list((tmp_path / "state").glob("exports/*.zip"))


def test_a_request_recorded_unverified_waits_until_verified_then_runs(
        tmp_path: Path) -> None:
    config = shop(tmp_path)
    created = run_cli("request", "create", "--type", "access", "--email", "ann@example.org",
                      "--verified", config=config)
    assert created.returncode == 0, created.stderr
    rid = created.stdout.strip()
    # As an earlier version recorded access requests: without a verified identity.
    with sqlite3.connect(ledger_path(config)) as conn:
        conn.execute("UPDATE requests SET verified = 0 WHERE id = ?", (rid,))
    held = run_cli("run", config=config)
    assert held.returncode == 1
    assert f"{rid}: waits for an identity check" in held.stderr
    assert not list((tmp_path / "state").glob("exports/*.zip"))
    assert "awaiting_verification" in run_cli("status", config=config).stdout
    bad = run_cli("request", "verify", rid, "--method", "ann@example.org passport",
                  config=config)
    assert bad.returncode == 2 and "--method must be a reference" in bad.stderr
    ok = run_cli("request", "verify", rid, "--method", "id-document", "--by", "desk-7",
                 config=config)
    assert ok.returncode == 0, ok.stderr
    again = run_cli("request", "verify", rid, "--method", "id-document", config=config)
    assert again.returncode == 2 and "verified already" in again.stderr
    ran = run_cli("run", config=config)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "state" / "exports" / f"{rid}.zip").exists()
    exported = tmp_path / "receipts.json"
    assert run_cli("receipts", "export", "-o", str(exported), "--request", rid,
                   config=config).returncode == 0
    text = exported.read_text(encoding="utf-8")
    (body,) = [json.loads(r["body"]) if isinstance(r["body"], str) else r["body"]
               for r in json.loads(text)["receipts"]]
    assert body["subject_verified"] is True
    check = body["identity_check"]
    assert (check["method"], check["by"]) == ("id-document", "desk-7")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", check["at"])
