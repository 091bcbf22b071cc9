"""A wrong IMAP password, through the command line: the request waits as blocked (it was
failed for good, its identifiers purged), and completes after the fix and `erasure retry`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mail_fixtures import PASSWORD, Dovecot, message

RID = re.compile(r"\br-[0-9a-f]{16}\b")


def _cli(*args: str, config: Path, password: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(MAIL_PASSWORD=password, COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_wrong_password_blocks_until_fixed_and_retried(dovecot: Dovecot, tmp_path):
    user = dovecot.new_user()
    client = dovecot.client(user)
    client.append("INBOX", message("Bob <bob@example.org>", "shop@example.com", "order"))
    client.append("INBOX", message("Ann <ann@example.org>", "shop@example.com", "hello"))
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\n\n[systems.archive]\nconnector = "mail"\n'
        f'backend = "imap"\nhost = "127.0.0.1"\nport = {dovecot.port}\nsecurity = "plain"\n'
        f'username = "{user}"\npassword = {{ env = "MAIL_PASSWORD" }}\n', encoding="utf-8")

    proc = _cli("erase", "--email", "bob@example.org", "--verified", config=config,
                password="wrong-password")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (rid,) = set(RID.findall(proc.stdout))
    assert f"{rid} archive: blocked" in proc.stderr and "IMAP login refused" in proc.stderr
    status = _cli("status", config=config, password="wrong-password")
    assert "blocked" in status.stdout and "IMAP login refused" in status.stdout, status.stdout
    # a run from cron meanwhile neither burns nor retries it (a wrong password retried
    # from cron can lock the account)
    again = _cli("run", config=config, password="wrong-password")
    assert again.returncode == 0 and "finished" not in again.stderr, again.stderr

    fixed = _cli("retry", rid, config=config, password=PASSWORD)
    assert fixed.returncode == 0 and "archive" in fixed.stdout, fixed.stdout + fixed.stderr
    done = _cli("run", config=config, password=PASSWORD)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished 1 request(s): 1 completed" in done.stderr, done.stderr
    client.select_folder("INBOX")
    left = client.fetch(client.search("ALL"), ["ENVELOPE"])
    assert [e[b"ENVELOPE"].subject for e in left.values()] == [b"hello"]
