"""`make demo` must keep working: the demo runs end to end and its receipts verify."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    res = subprocess.run(
        [sys.executable, "-m", "erasure.cli", "demo", "--dir", str(folder)],
        capture_output=True, text=True, timeout=120, env={"COLUMNS": "120", "PATH": "/usr/bin"},
    )
    assert res.returncode == 0, res.stderr
    assert "signed, hash-chained: verified" in res.stdout
    assert "shop-db" in res.stdout  # the sql connector is installed by `make`
    assert "Retention sweep" in res.stdout and "mailbox" in res.stdout  # so is mail
    assert (folder / "state" / "ledger.db").exists()
    keys = folder / "state" / "keys" / "signing.key"
    assert keys.stat().st_mode & 0o777 == 0o600
