"""States with reasons (issue 26, item 6): Ctrl-C during `erasure run` says in one line
what stopped and that the next run resumes it (exit 130), and the next run does."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from pathlib import Path

from clihelpers import (
    ledger_path,
    memory_system,
    run_cli,
    seed,
    start_cli,
    stored_items,
    write_config,
)


def test_ctrl_c_during_a_run_says_what_stopped_and_the_next_run_resumes(
        tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"}),
               "c/2": ("contact", {"email": "bob@example.org"})})
    slow = write_config(tmp_path, {"crm": memory_system(crm, latency_ms=2_000)})
    created = run_cli("request", "create", "--type", "erasure", "--email",
                      "ann@example.org", "--verified", config=slow)
    assert created.returncode == 0, created.stderr
    rid = created.stdout.strip()
    proc = start_cli("run", config=slow)
    try:
        deadline = time.monotonic() + 60
        stage = None
        while time.monotonic() < deadline:  # until the run is in the (slow) delete call
            with sqlite3.connect(ledger_path(slow)) as conn:
                row = conn.execute("SELECT stage FROM tasks").fetchone()
            stage = row[0] if row else None
            if stage == "acting":
                break
            time.sleep(0.05)
        assert stage == "acting", stage
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"interrupted: stopped while working on 1 request(s) ({rid})")
    assert lines[0].endswith("the next `erasure run` resumes")
    assert "Traceback" not in stderr + stdout
    with sqlite3.connect(ledger_path(slow)) as conn:  # the lease was given back
        assert conn.execute("SELECT lease_owner FROM requests").fetchone() == (None,)
    status = run_cli("status", config=slow)
    assert re.search(rf"{rid} +crm +acting: stopped mid-way; the next run resumes",
                     status.stdout), status.stdout
    fast = write_config(tmp_path, {"crm": memory_system(crm)})
    resumed = run_cli("run", config=fast)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert set(stored_items(crm)) == {"c/2"}


def test_status_says_which_system_a_found_task_waits_for(tmp_path: Path) -> None:
    crm, mail = tmp_path / "crm.json", tmp_path / "mail.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    seed(mail, {"m/1": ("message", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {
        "crm": memory_system(crm),
        "mail": memory_system(mail, fail_first_calls=1, fail_retry_after=3600)})
    ran = run_cli("erase", "--email", "ann@example.org", "--verified", config=config)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    status = run_cli("status", config=config)
    assert re.search(r"r-\w+ +crm +found: waits for mail \(pending\) to be searched",
                     status.stdout), status.stdout
    assert re.search(r"r-\w+ +mail +pending \(deferred 1x\) .*simulated outage",
                     status.stdout), status.stdout


def test_status_limit_lists_the_tasks_of_the_requests_it_shows(tmp_path: Path) -> None:
    crm = tmp_path / "crm.json"
    seed(crm, {"c/1": ("contact", {"email": "ann@example.org"})})
    config = write_config(tmp_path, {
        "crm": memory_system(crm, fail_first_calls=1, fail_retry_after=3600)})
    for n in range(3):
        assert run_cli("request", "create", "--type", "find", "--email",
                       f"p{n}@example.org", config=config).returncode == 0
    ran = run_cli("run", config=config)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    whole = run_cli("status", config=config)
    assert len(re.findall(r"^r-\w+ +crm +pending", whole.stdout, re.M)) == 3, whole.stdout
    cut = run_cli("status", "--limit", "1", config=config)
    (shown,) = re.findall(r"^(r-\w+) +find", cut.stdout, re.M)
    tasks = re.findall(r"^(r-\w+) +crm +pending", cut.stdout, re.M)
    assert tasks == [shown], cut.stdout
    assert "and 2 more (`erasure status --limit 3`)" in cut.stdout, cut.stdout
    doc = json.loads(run_cli("status", "--limit", "1", "--json", config=config).stdout)
    assert [t["request"] for t in doc["tasks"]] == [doc["requests"][0]["request"]], doc


def test_ctrl_c_prints_the_result_lines_of_the_requests_the_run_finished(
        tmp_path: Path) -> None:
    """A request finished before Ctrl-C has its result line on stdout, as if the run had
    ended; the interrupted line names only the requests stopped mid-way."""
    crm = tmp_path / "crm.json"
    people = [f"p{n}@example.org" for n in range(3)]
    seed(crm, {f"c/{n}": ("contact", {"email": e}) for n, e in enumerate(people)})
    slow = write_config(tmp_path, {"crm": memory_system(crm, latency_ms=600)},
                        host={"batch_size": 1})
    for e in people:
        assert run_cli("request", "create", "--type", "erasure", "--email", e, "--verified",
                       config=slow).returncode == 0
    proc = start_cli("run", config=slow)
    try:
        deadline, done = time.monotonic() + 90, []
        while time.monotonic() < deadline:  # one request ended, another one acting
            with sqlite3.connect(ledger_path(slow)) as conn:
                done = [r for (r,) in conn.execute(
                    "SELECT id FROM requests WHERE status = 'done'")]
                acting = conn.execute("SELECT count(*) FROM tasks WHERE stage = 'acting'"
                                      ).fetchone()[0]
            if done and acting:
                break
            time.sleep(0.05)
        assert done and acting, done
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stdout + stderr
    with sqlite3.connect(ledger_path(slow)) as conn:
        done = [r for (r,) in conn.execute("SELECT id FROM requests WHERE status = 'done'")]
    assert sorted(re.findall(r"^(r-\w+) erasure: finished, completed$", stdout, re.M)) \
        == sorted(done), stdout
    (line,) = stderr.strip().splitlines()
    assert line.startswith("interrupted: stopped while working on 1 request(s)"), stderr
    assert not any(rid in line for rid in done), line
