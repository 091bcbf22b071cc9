"""`make demo` must keep working: the demo runs end to end and its receipts verify."""

from __future__ import annotations

import re
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
    # and notify: a carrier told by email (aiosmtpd on 127.0.0.1) of the phone only, which
    # confirms; the request then ends with everything completed
    assert "Told m3st" in res.stdout and "phone: +4915112345678" in res.stdout
    told = res.stdout[res.stdout.index("Told m3st"):res.stdout.index("3. Erasure receipts")]
    assert "alice@example.com" not in told and "C-1001" not in told
    assert re.search(r"m3st\s+delete\s+completed", res.stdout)
    # the helpdesk is the fake Zendesk API (so is zendesk): Alice's text is gone, her
    # ticket deleted for good, Jim's ticket and the four other users kept
    left = {m[0].strip(): m[1] for m in re.findall(r"(helpdesk[^│┃]*)[│┃]\s*(\d+)",
                                                     res.stdout)}
    assert left == {"helpdesk users (Zendesk)": "4", "helpdesk tickets": "1",
                    "helpdesk comments with Alice's text": "0"}, left
    # Jim's phone corrected in the shop database, his objection to marketing recorded;
    # the systems that cannot (S3, the Maildir) say not covered
    fixes = res.stdout[res.stdout.index("2b. Jim"):res.stdout.index("3a. Told")]
    assert re.search(r"shop-db\s*[│┃]\s*completed\s*[│┃]\s*completed", fixes), fixes
    assert re.search(r"mailbox\s*[│┃]\s*not covered\s*[│┃]\s*not covered", fixes), fixes
    assert "Jim's phone is now +4915199999990; marketing_ok = 0" in fixes
    # its words say what happened (issue 26 item 7): nothing is erasable under a legal
    # hold, the counts after the erasure are everyone's, no raw Python values
    assert re.search(r"tax-archive\s*[│┃]\s*retain\s*[│┃]\s*1\s*[│┃]\s*0 \(keeps 1\)",
                     res.stdout), res.stdout
    assert "erasable" not in res.stdout and "What is left" not in res.stdout
    assert "4. What the systems hold now (everyone's items)" in res.stdout
    assert "anonymised: billing_email erased+100@invalid, billing_name (empty)" in res.stdout
    assert "('" not in res.stdout and "None)" not in res.stdout
    # how to reach the command: it is in the virtualenv, not on PATH
    exe = Path(sys.executable).parent / "erasure"
    assert f"Try: {exe} --help; {exe} status --all -c " in res.stdout, res.stdout
    assert (folder / "state" / "ledger.db").exists()
    keys = folder / "state" / "keys" / "signing.key"
    assert keys.stat().st_mode & 0o777 == 0o600
