"""The sent-log: which idempotency key went out in which message, written before and after
each send so that no notice is ever sent twice.

A small SQLite file in the system's folder of the state folder
(``<state_dir>/systems/<system>/sent.db``). It holds idempotency keys, request ids,
message ids, states and times: never an identifier. Each write is its own committed
transaction (WAL with ``synchronous=FULL``: durable when it returns).

States: ``sending`` is written just before the point of no return (SMTP ``DATA``, the
webhook's request); ``sent`` after the server accepted the message. A row left in
``sending`` (a crash, or a connection lost while the server may have accepted) counts as
sent: the notice is never repeated, and the reminder refers to it. A definite refusal
(the server answered no) deletes the row, so a later attempt sends.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Entry", "SentLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    key TEXT PRIMARY KEY,        -- the host's idempotency key (request, system, action)
    request TEXT NOT NULL,       -- the request id the key belongs to
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,          -- notice | reminder
    action TEXT NOT NULL,        -- delete | restrict | rectify (a reminder: its notice's)
    refers_to TEXT,              -- a reminder: the notice's message id
    state TEXT NOT NULL,         -- sending | sent
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_message ON sent (message_id);
"""
#: rows older than this are dropped (a request lasts three months at most)
_KEEP_SECONDS = 400 * 86400


@dataclass(frozen=True)
class Entry:
    """One key's row."""

    key: str
    request: str
    message_id: str
    kind: str
    action: str
    refers_to: str | None
    state: str
    at: float


class SentLog:
    """The sent-log of one system (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "sent.db"
        if not folder.exists():
            folder.mkdir(parents=True, mode=0o700)
        fresh = not self.path.exists()
        # One connection for the connector's life (its calls come from one thread at a
        # time; the lock keeps it so). WAL with synchronous=FULL: a commit is one fsync of
        # the log, durable when it returns (the rollback journal took 35 ms a commit here,
        # WAL 5), and other processes (a second runner) read and write it safely.
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        if fresh:
            os.chmod(self.path, 0o600)
        with self._connect() as conn:
            conn.execute("DELETE FROM sent WHERE at < ?", (time.time() - _KEEP_SECONDS,))

    def close(self) -> None:
        """Close the connection (the connector's ``close``)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction (taken at once: writers queue, never deadlock)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def lookup(self, keys: Iterable[str]) -> dict[str, Entry]:
        """The rows of those keys that exist."""
        keys = list(keys)
        out: dict[str, Entry] = {}
        with self._connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, request, message_id, kind, action, refers_to, state, at "  # noqa: S608
                    f"FROM sent WHERE key IN ({marks})", chunk)
                out.update((r[0], Entry(*r)) for r in rows)
        return out

    def by_message(self, message_ids: Iterable[str]) -> dict[str, list[Entry]]:
        """Rows per message id."""
        out: dict[str, list[Entry]] = {}
        with self._connect() as conn:
            for mid in dict.fromkeys(message_ids):
                rows = conn.execute(
                    "SELECT key, request, message_id, kind, action, refers_to, state, at "
                    "FROM sent WHERE message_id = ?", (mid,))
                out[mid] = [Entry(*r) for r in rows]
        return out

    def reminders_of(self, message_id: str, request: str) -> int:
        """How many reminders of the notice ``message_id`` went to ``request``."""
        with self._connect() as conn:
            (n,) = conn.execute("SELECT count(*) FROM sent WHERE kind = 'reminder' AND "
                                "refers_to = ? AND request = ?", (message_id, request)).fetchone()
        return int(n)

    def intend(self, message_id: str, kind: str, action: str, requests: Mapping[str, str],
               refers_to: Mapping[str, str] | None = None) -> None:
        """Record, before sending, that ``message_id`` carries these keys (key -> request);
        ``refers_to``: a reminder's notice per key."""
        now = time.time()
        with self._connect() as conn:
            conn.executemany(
                "INSERT INTO sent (key, request, message_id, kind, action, refers_to, state, at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'sending', ?)",
                [(k, r, message_id, kind, action, (refers_to or {}).get(k), now)
                 for k, r in requests.items()])

    def sent(self, message_id: str) -> None:
        """The server accepted the message."""
        with self._connect() as conn:
            conn.execute("UPDATE sent SET state = 'sent', at = ? WHERE message_id = ?",
                         (time.time(), message_id))

    def refused(self, message_id: str) -> None:
        """The server answered no: nothing was delivered, a later attempt may send."""
        with self._connect() as conn:
            conn.execute("DELETE FROM sent WHERE message_id = ? AND state = 'sending'",
                         (message_id,))
