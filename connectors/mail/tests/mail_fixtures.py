"""A real Dovecot 2.3 for the IMAP tests, and builders of Maildir and mbox archives.

Dovecot runs with a config of its own on 127.0.0.1 (a free port), its base_dir and mail
under a temporary folder, any user name accepted with one static password, plaintext login
allowed (local only). Each test gets a user of its own: a fresh, empty account.
Without Dovecot the IMAP tests are skipped with the way to enable them.
"""

from __future__ import annotations

import itertools
import mailbox
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from erasure_mail import MailConnector, MailSettings

PASSWORD = "imap-test-password-7f3e"  # noqa: S105 - a throwaway local test server's
DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists()
                                      else None)
SKIP_REASON = ("Dovecot is not installed: `apt-get install dovecot-imapd` (Debian; `make test` "
               "does it when run as root) to run the IMAP tests")

_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
instance_name = erasure-test-{port}
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{tmp}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 0
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_fsync = never
imap_max_line_length = 256k
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  user = {user}
}}
service auth-worker {{
  user = {user}
}}
service stats {{
  chroot =
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    """A running Dovecot; :meth:`account` gives a fresh user's settings."""

    def __init__(self) -> None:
        # Not under pytest's 0700 temp folders: Dovecot's unprivileged processes read it.
        self.tmp = Path(tempfile.mkdtemp(prefix="erasure-dovecot-"))
        self.tmp.chmod(0o755)
        self.port = _free_port()
        if os.geteuid() == 0:  # mail as nobody: Dovecot refuses mail access as root
            user, uid, gid = "nobody", 65534, 65534
            group = "nogroup"
        else:
            pw = pwd.getpwuid(os.getuid())
            user, uid, gid, group = pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_name
        for d in ("run", "state", "mail", "home"):
            (self.tmp / d).mkdir()
            os.chown(self.tmp / d, uid, gid) if os.geteuid() == 0 and d != "run" else None
        self.uid, self.gid = uid, gid
        conf = self.tmp / "dovecot.conf"
        conf.write_text(_CONF.format(tmp=self.tmp, port=self.port, uid=uid, gid=gid, user=user,
                                     group=group, password=PASSWORD))
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)],  # noqa: S603
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.proc.stderr.read().decode()[-800:]}"
                                   + self._log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("dovecot did not start" + self._log())
        self._users = itertools.count(1)

    def _log(self) -> str:
        log = self.tmp / "dovecot.log"
        return "\n" + log.read_text()[-1500:] if log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_user(self) -> str:
        return f"user{next(self._users)}"

    def settings(self, user: str, **extra: object) -> MailSettings:
        return MailSettings(backend="imap", host="127.0.0.1", port=self.port, security="plain",
                            username=user, password=PASSWORD, timeout=10, **extra)

    def client(self, user: str):  # noqa: ANN201 - an IMAPClient
        from imapclient import IMAPClient

        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        c.login(user, PASSWORD)
        c.normalise_times = False
        return c

    def maildir(self, user: str) -> Path:
        return self.tmp / "mail" / user


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if DOVECOT is None:
        if os.environ.get("CI"):  # CI must run them: a missing server is a failure there
            pytest.fail(SKIP_REASON)
        pytest.skip(SKIP_REASON)
    server = Dovecot()
    try:
        yield server
    finally:
        server.stop()


# messages -----------------------------------------------------------------------------

def message(sender: str, to: str, subject: str, body: str = "hello", *, cc: str = "",
            bcc: str = "", date: datetime | None = None) -> bytes:
    """A message as bytes, its header values written verbatim (encoded words, raw UTF-8
    and malformed names reach the store exactly as given)."""
    lines = [f"From: {sender}", f"To: {to}"]
    lines += [f"Cc: {cc}"] if cc else []
    lines += [f"Bcc: {bcc}"] if bcc else []
    lines += [f"Subject: {subject}", f"Date: {format_datetime(date or datetime.now(UTC))}",
              f"Message-ID: {make_msgid(domain='archive.test')}", "MIME-Version: 1.0",
              "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit",
              "", body]
    return "\n".join(lines).encode("utf-8") + b"\n"


class Archive:
    """Adds messages to one backend's store (folder, raw bytes, arrival time)."""

    def __init__(self, backend: str, root: Path, dovecot: Dovecot | None = None,
                 user: str | None = None) -> None:
        self.backend, self.root, self.dovecot, self.user = backend, root, dovecot, user
        self._imap = None

    def settings(self, **extra: object) -> MailSettings:
        if self.backend == "imap":
            assert self.dovecot is not None and self.user is not None
            return self.dovecot.settings(self.user, **extra)
        return MailSettings(backend=self.backend, path=self.root, **extra)

    def connector(self, name: str = "archive", **extra: object) -> MailConnector:
        return MailConnector(name, self.settings(**extra))

    def imap(self):  # noqa: ANN201
        if self._imap is None:
            assert self.dovecot is not None and self.user is not None
            self._imap = self.dovecot.client(self.user)
        return self._imap

    def add(self, raw: bytes, folder: str = "INBOX", when: datetime | None = None) -> None:
        when = when or datetime.now(UTC)
        if self.backend == "imap":
            c = self.imap()
            if not c.folder_exists(folder):
                c.create_folder(folder)
            c.append(folder, raw, msg_time=when)
        elif self.backend == "maildir":
            box = mailbox.Maildir(self.root, create=True)
            sub = box if folder == "INBOX" else (
                box.get_folder(folder) if folder in box.list_folders()
                else box.add_folder(folder))
            key = sub.add(mailbox.MaildirMessage(raw))
            path = Path(sub._path) / sub._lookup(key)  # noqa: SLF001 - the test sets mtime
            os.utime(path, (when.timestamp(), when.timestamp()))
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            path = self.root / folder
            stamp = when.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
            with path.open("ab") as fh:
                fh.write(f"From sender@archive.test {stamp}\n".encode() + raw.replace(
                    b"\nFrom ", b"\n>From ") + b"\n")

    def close(self) -> None:
        if self._imap is not None:
            self._imap.logout()
            self._imap = None


def sweep_mbox(tmp_path: Path, box: Path, system: str = "archive") -> Any:
    """Run the real host's 12-month sweep over one mbox file, as `erasure sweep` does, and
    return the system's one result."""
    from erasure.config import load_config
    from erasure.orchestrator import Orchestrator
    from erasure.plugins import PluginHost
    from erasure.sweep import run_sweep

    config = tmp_path / "erasure.toml"
    config.write_text(f'[erasure]\nstate_dir = "{tmp_path / "state"}"\n\n'
                      f'[systems.{system}]\nconnector = "mail"\nbackend = "mbox"\n'
                      f'path = "{box}"\n', encoding="utf-8")
    plugins = PluginHost.load()
    cfg = load_config(config, known_connectors={n: plugins.registry.get(n)
                                                for n in plugins.registry.names()})
    orch = Orchestrator(cfg, plugins)
    try:
        (done,) = run_sweep(orch)
    finally:
        orch.close()
    return done
