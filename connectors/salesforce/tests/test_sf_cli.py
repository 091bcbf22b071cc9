"""The salesforce connector driven by the real command line against the fake org."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from erasure_salesforce.testing import FakeSalesforce
from test_sf_find import seed_whole_person


def write_config(tmp_path: Path, fake: FakeSalesforce) -> Path:
    path = tmp_path / "erasure.toml"
    path.write_text(f"""[erasure]
state_dir = "state"

[systems.crm]
connector = "salesforce"
instance_url = "{fake.url}"
auth = "session"
session_id = {{ env = "CRM_SESSION" }}
poll_seconds = 0
""", encoding="utf-8")
    return path


def env(fake: FakeSalesforce) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    out.update({"CRM_SESSION": fake.session_id, "COLUMNS": "250", "NO_COLOR": "1"})
    return out


def cli(config: Path, fake: FakeSalesforce, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env(fake))


def request_row(config: Path, rid: str) -> tuple[str, str | None]:
    db = sqlite3.connect(f"file:{config.parent / 'state' / 'ledger.db'}?mode=ro", uri=True)
    try:
        (row,) = db.execute("SELECT status, outcome FROM requests WHERE id = ?", (rid,))
        return row
    finally:
        db.close()


def test_killed_between_job_submit_and_ledger_write_submits_each_job_once(
        fake: FakeSalesforce, tmp_path: Path) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    config = write_config(tmp_path, fake)
    made = cli(config, fake, "request", "create", "--type", "erasure",
               "--email", "pat@example.org", "--verified")
    assert made.returncode == 0, made.stderr
    (rid,) = set(re.findall(r"r-[0-9a-f]{16}", made.stdout))
    proc = subprocess.Popen([sys.executable, "-m", "erasure.cli", "run", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(fake))
    closed: list[str] = []

    def kill_after_the_first_submit(endpoint: str) -> None:
        if endpoint == "job_close" and not closed:
            closed.append(endpoint)  # Salesforce has the job; the ledger never hears of it
            os.kill(proc.pid, signal.SIGKILL)

    fake.after_action = kill_after_the_first_submit
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "the run was not killed at the submit"
    assert request_row(config, rid)[0] != "done"
    fake.after_action = None
    for _ in range(3):
        again = cli(config, fake, "run")
        assert again.returncode == 0, again.stderr
        if request_row(config, rid)[0] == "done":
            break
    assert request_row(config, rid) == ("done", "completed")
    # one job per object: the resumed run found the submitted job in its journal
    assert fake.calls["job_create"] == len(seeded)
    ran = Counter(i for job in fake.org.jobs.values() for i in job.ids)
    assert set(ran.values()) == {1}
    assert [i for ids in seeded.values() for i in ids if fake.org.exists(i)] == []
    shown = cli(config, fake, "receipts", "show", rid)
    assert shown.returncode == 0 and "pat@example.org" not in shown.stdout


def test_systems_check_says_when_hard_delete_is_missing(fake: FakeSalesforce,
                                                        tmp_path: Path) -> None:
    config = write_config(tmp_path, fake)
    ok = cli(config, fake, "systems", "check")
    assert ok.returncode == 0 and "crm: ok" in ok.stdout, ok.stdout + ok.stderr
    fake.org.hard_delete_permission(False)
    missing = cli(config, fake, "systems", "check")
    assert missing.returncode == 1
    assert "Bulk API Hard Delete" in missing.stdout
    assert fake.session_id not in missing.stdout + missing.stderr


def test_discover_proposes_the_people_fields_from_describe(fake: FakeSalesforce,
                                                           tmp_path: Path) -> None:
    seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    config = write_config(tmp_path, fake)
    proc = cli(config, fake, "discover", "crm")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "[systems.crm.objects.Contact]" in text and 'email = ["Email"]' in text
    assert '"MobilePhone"' in text and "pat@example.org" not in text
    assert json.dumps("SuppliedEmail") in text
