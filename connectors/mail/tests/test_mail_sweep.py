"""`erasure sweep` on a Maildir archive and a Dovecot account, through the real command line:
what is past retention goes, nothing newer does, receipts hold counts and no personal data,
a dry run changes nothing, `erasure status` shows the sweep, a held lease skips a system."""

from __future__ import annotations

import json
import mailbox
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from erasure_mail import MailConnector
from mail_fixtures import PASSWORD, Archive, Dovecot
from test_mail_cases import _dated

from erasure.config import load_config
from erasure.ledger import Ledger
from erasure.orchestrator import Orchestrator
from erasure.plugins import PluginHost
from erasure.sweep import run_sweep


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(MAIL_PASSWORD=PASSWORD, COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def _config(tmp_path: Path, maildir: Path, server: Dovecot | None, user: str | None) -> Path:
    text = (f'[erasure]\nstate_dir = "{tmp_path / "state"}"\n\n'
            f'[systems.archive]\nconnector = "mail"\nbackend = "maildir"\npath = "{maildir}"\n')
    if server is not None:
        text += (f'\n[systems.mailserver]\nconnector = "mail"\nbackend = "imap"\n'
                 f'host = "127.0.0.1"\nport = {server.port}\nsecurity = "plain"\n'
                 f'username = "{user}"\npassword = {{ env = "MAIL_PASSWORD" }}\n')
    config = tmp_path / "erasure.toml"
    config.write_text(text, encoding="utf-8")
    return config


def _subjects(conn: MailConnector) -> list[str]:
    out = []
    for folder in conn.backend.folders():
        if conn.settings.backend == "imap":
            c = conn.backend.client()
            conn.backend._select(folder, readonly=True)  # noqa: SLF001
            got = c.fetch(c.search(["ALL"]), [b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
            out += [d[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
                    for d in got.values()]
        else:
            box = mailbox.Maildir(conn.settings.path, create=False)
            sub = box if folder == "INBOX" else box.get_folder(folder)
            out += [m["subject"] for m in sub]
    return sorted(out)


def test_sweep_through_the_cli(dovecot: Dovecot, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    local = Archive("maildir", tmp_path / "Maildir")
    mailbox.Maildir(local.root, create=True)
    user = dovecot.new_user()
    remote = Archive("imap", tmp_path, dovecot, user)
    for a in (local, remote):
        _dated(a, now)
    remote.close()
    config = _config(tmp_path, local.root, dovecot, user)
    conns = [local.connector(), remote.connector()]
    everything = ["ancient", "just-newer", "just-older", "new"]
    assert [_subjects(c) for c in conns] == [everything, everything]

    dry = cli("sweep", "--dry-run", config=config)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would_delete" in dry.stdout and "dry run" in dry.stdout
    assert [_subjects(c) for c in conns] == [everything, everything], "a dry run deleted"
    assert "never" in cli("status", config=config).stdout

    swept = cli("sweep", config=config)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert [_subjects(c) for c in conns] == [["just-newer", "new"]] * 2
    assert cli("receipts", "verify", config=config).returncode == 0
    sweep_id = re.search(r"erasure receipts show (sweep-\S+)", swept.stdout).group(1)
    shown = cli("receipts", "show", sweep_id, config=config)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "archive" in shown.stdout and "mailserver" in shown.stdout
    assert "completed" in shown.stdout and "Retention sweep" in shown.stdout
    unknown = cli("receipts", "show", "sweep-20000101T000000Z-000000", config=config)
    assert unknown.returncode == 2 and "no retention sweep" in unknown.stderr
    exported = tmp_path / "receipts.json"
    assert cli("receipts", "export", "-o", str(exported), config=config).returncode == 0
    bodies = [r["body"] for r in json.loads(exported.read_text())["receipts"]]
    assert sorted(b["system"] for b in bodies) == ["archive", "mailserver"]
    for b in bodies:
        assert b["kind"] == "retention_sweep" and b["outcome"] == "completed"
        assert b["groups"] == {"INBOX": {"expired": 1, "deleted": 1, "failed": 0},
                               "Sent": {"expired": 1, "deleted": 1, "failed": 0}}
        assert b["counts"]["residue"] == 0 and b["verification"]["ok"]
        assert "@" not in json.dumps(b), "a receipt holds an address"
    status = cli("status", config=config)
    assert "Retention sweeps" in status.stdout and "never" not in status.stdout
    # the oldest message left is "just-newer": 12 months less 30 hours old
    assert "363 days" in status.stdout or "364 days" in status.stdout, status.stdout

    again = cli("sweep", config=config)
    assert again.returncode == 0 and [_subjects(c) for c in conns] == [["just-newer", "new"]] * 2
    for c in conns:
        c.close()


def test_a_sweep_in_progress_elsewhere_is_skipped(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    local = Archive("maildir", tmp_path / "Maildir")
    mailbox.Maildir(local.root, create=True)
    _dated(local, now)
    plugins = PluginHost.load()
    cfg = load_config(_config(tmp_path, local.root, None, None),
                      known_connectors={n: plugins.registry.get(n)
                                        for n in plugins.registry.names()})
    orch = Orchestrator(cfg, plugins)
    other = Ledger(cfg.host.ledger_url())  # another process's ledger handle: another owner
    try:
        assert other.claim_sweep("archive", 300, orch.clock())
        (skipped,) = run_sweep(orch)
        assert skipped.outcome == "skipped" and "another sweep" in skipped.note
        assert len(_subjects(local.connector())) == 4
        assert orch.ledger.receipts() == []
        other.release_sweep("archive")
        (done,) = run_sweep(orch)
        assert done.outcome == "completed" and done.deleted == 2
        assert done.receipt_seq == 1
    finally:
        other.close()
        orch.close()
