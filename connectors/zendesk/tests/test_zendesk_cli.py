"""The zendesk connector driven by the real command line against the fake Zendesk API (in
this process, on 127.0.0.1; the CLI's zenpy talks to it over HTTP): an erasure ends
completed once its jobs have been polled by later runs, its receipts verify, nothing of the
subject is printed, a rectification moves the primary email, and bad settings are refused
in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from erasure_zendesk.testing import FakeZendesk
from zendesk_fixtures import EMAIL, TOKEN


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(ZD_TOKEN=TOKEN, COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def write_config(tmp_path: Path, fake: FakeZendesk, extra: str = "") -> Path:
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\n\n[erasure.retry]\ninitial_wait = 0.01\n'
        "max_wait = 0.05\n\n"
        f'[systems.helpdesk]\nconnector = "zendesk"\nurl = "{fake.url}"\n'
        f'email = "{EMAIL}"\ntoken = {{ env = "ZD_TOKEN" }}\npoll_seconds = 0\n{extra}',
        encoding="utf-8")
    return config


def test_erasure_and_rectification_through_the_cli(fake: FakeZendesk, tmp_path: Path) -> None:
    st = fake.store
    bob = st.add_user("Bob Baker", "bob@example.org", "+4930123456")
    jim = st.add_user("Jim Bob", "jimbob@example.org")
    ticket = st.add_ticket(bob, "Kettle", [(bob, "my kettle leaks")])
    jims = st.add_ticket(jim, "Jim's", [(jim, "Jim asks"), (bob, "Bob answers")])
    carol = st.add_user("Carol Cook", "carol@example.org")
    st.job_polls = 1  # each job done at its first poll: the erasure ends at the next run
    config = write_config(tmp_path, fake)

    fixed = cli("rectify", "--email", "carol@example.org", "--set",
                "email=carol.cook@example.org", "--verified", config=config)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert st.users[carol]["email"] == "carol.cook@example.org"
    assert {i["value"] for i in st.idents(carol)} == {"carol.cook@example.org"}

    erased = cli("erase", "--email", "bob@example.org", "--verified", config=config)
    assert erased.returncode == 0, erased.stdout + erased.stderr
    for _ in range(6):  # later runs poll the deletion jobs (as cron would)
        if st.users[bob]["state"] == "purged":
            break
        ran = cli("run", config=config)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    assert st.users[bob]["state"] == "purged"
    assert st.tickets[ticket]["state"] == "purged"
    assert st.comments[jims][0]["body"] == "Jim asks"
    assert set(st.comments[jims][1]["body"]) == {"▇"}
    assert st.users[jim]["state"] == "live"
    with ThreadPoolExecutor(2) as pool:  # independent: side by side
        verifying = pool.submit(cli, "receipts", "verify", config=config)
        status = cli("status", "--all", config=config)
        verified = verifying.result()
    assert "completed" in status.stdout, status.stdout
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for out in (fixed, erased, status, verified):
        text = out.stdout + out.stderr
        assert "bob@example.org" not in text and "+4930123456" not in text
        assert "carol" not in text and TOKEN not in text


def test_bad_settings_are_refused_in_one_line(fake: FakeZendesk, tmp_path: Path) -> None:
    config = write_config(tmp_path, fake, 'subdomain = "acme"\n')
    inline = tmp_path / "inline.toml"
    inline.write_text(config.read_text(encoding="utf-8").replace(
        'subdomain = "acme"\n', "").replace('{ env = "ZD_TOKEN" }', f'"{TOKEN}"'),
        encoding="utf-8")
    with ThreadPoolExecutor(2) as pool:
        refusing = pool.submit(cli, "config", "check", config=inline)
        checked = cli("config", "check", config=config)
        refused = refusing.result()
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "exactly one of subdomain and url" in checked.stdout + checked.stderr
    assert refused.returncode == 2
    assert TOKEN not in refused.stdout + refused.stderr
