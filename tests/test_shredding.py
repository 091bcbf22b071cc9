"""Crypto-shredding: after requests end, nothing in the ledger's files decrypts with any key
the tool still has (issue 10, item 1).

The attack is the one that found the flaw: read the raw database files (live rows, dead
tuples, free pages, WAL), pick out every encrypted token, and try every key at hand: the
master key, every epoch key still on disk, and every key those unwrap. While the requests
are open the same scan must recover their identifiers: that is what shows the scan works.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from erasure import RequestType
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.shredding import Cipher

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# make test-long runs the 1,000; make test fewer, for time
N = int(os.environ.get("ERASURE_SHRED_SUBJECTS", "300"))
OPEN = 20
# Fernet tokens (the master key's, and data written before AES-GCM) and Cipher's tokens
TOKEN = re.compile(rb"(?:gAAAAA|a1\.)[A-Za-z0-9_\-]{40,}={0,2}")


def email(i: int) -> str:
    return f"subject{i:04d}@shred.example"


def recover(files: Iterable[Path], keys: Iterable[Fernet | Cipher]) -> set[bytes]:
    """Every plaintext any token in ``files`` gives up to ``keys`` and the keys those
    tokens hold (a wrapped key unwraps to a key that may open more)."""
    tokens: set[bytes] = set()
    for f in files:
        try:
            data = f.read_bytes()
        except (FileNotFoundError, PermissionError):
            continue  # a WAL segment recycled while we read
        for match in TOKEN.findall(data):
            tokens.update(_prefixes(match))
    known = list(keys)
    plain: set[bytes] = set()
    tried: set[bytes] = set()
    while True:
        grew = False
        for key in known[:]:
            for tok in tokens:
                try:
                    text = key.decrypt(tok)
                except (InvalidToken, ValueError):
                    continue
                if text not in plain:
                    plain.add(text)
                    if len(text) == 44 and text not in tried:  # a key
                        tried.add(text)
                        known.append(Cipher(text))
                        grew = True
        if not grew:
            return plain


def _prefixes(match: bytes) -> Iterable[bytes]:
    """The token lengths a match may hold: a column stored next to a token (a hex digest)
    continues the same alphabet, so the match may run past the token's end. A Fernet
    token is 57 + 16k bytes, a Cipher token 3 + 12 + 16 + n, each base64-encoded with
    padding."""
    if match.startswith(b"a1."):
        yield from (match[:length] for length in range(3 + 40, len(match) + 1, 4))
        return
    size = 57
    while (length := 4 * -(-size // 3)) <= len(match):
        yield match[:length]
        size += 16


def keys_at_hand(orch: Orchestrator) -> list[Fernet | Cipher]:
    epochs = orch.ciphers.epochs
    return [orch.keys.fernet, *(k for n in epochs.epochs() if (k := epochs.get(n)))]


def submit_and_seed(orch: Orchestrator, n: int) -> list[str]:
    orch.systems["crm"].connector().seed(
        {f"c/{i}": ("contact", {"email": email(i)}) for i in range(n)})
    return orch.submit_many([RequestSpec(RequestType.ERASURE, (("email", email(i)),),
                                         verified=True, ticket=f"T-{i}") for i in range(n)])


def leaked(plain: set[bytes], n: int) -> list[int]:
    blob = b"\n".join(plain)
    return [i for i in range(n) if email(i).encode() in blob]


def erase_all_and_scan(orch: Orchestrator, files: Callable[[], list[Path]],
                       flush: Callable[[], None]) -> None:
    ids = submit_and_seed(orch, N)
    # All but a few run: the scan must read the few still open (the scan works) and
    # never the ended ones. (Few: each key recovered is tried on every token.)
    orch.run(only=ids[: N - OPEN])
    flush()
    seen = leaked(recover(files(), keys_at_hand(orch)), N)
    assert set(range(N - OPEN, N)) <= set(seen), "the scan cannot read open requests"
    assert not set(seen) & set(range(N - OPEN)), "ended requests still decrypt"
    orch.run()
    assert orch.ledger.count_requests("open") == 0
    flush()
    assert not leaked(recover(files(), keys_at_hand(orch)), N)
    assert orch.systems["crm"].connector().count() == 0
    assert len(orch.ciphers.epochs.epochs()) == 1  # older epoch keys destroyed


def test_nothing_decrypts_after_purge_on_sqlite(make_orch, tmp_path: Path) -> None:
    orch = make_orch({"systems": {"crm": {"connector": "memory", "store": "shred-lite"}}})
    state = tmp_path / "state"

    def files() -> list[Path]:
        return [p for p in state.rglob("ledger.db*") if p.is_file()]

    def flush() -> None:
        pass  # the WAL is a file we scan: what it holds counts as much as the database

    erase_all_and_scan(orch, files, flush)


def test_runs_that_leave_their_upkeep_decrypt_nothing_once_it_is_done(make_orch, tmp_path: Path
                                                                     ) -> None:
    """``erasure serve``'s runner runs each request on its own with ``upkeep=False`` and
    rotates the key epoch once the requests stop coming: until then the ended requests'
    keys lie in the ledger's dead pages under a live epoch key; after it, nothing."""
    orch = make_orch({"systems": {"crm": {"connector": "memory", "store": "shred-upkeep"}}})
    state = tmp_path / "state"
    n, still_open = 40, 5
    ids = submit_and_seed(orch, n)
    for rid in ids[: n - still_open]:
        orch.run(only=[rid], upkeep=False)
    epoch = orch.ciphers.epochs.epochs()
    with orch.ledger.tx() as conn:
        assert orch.ledger.key_state(conn) == (epoch[-1], True)  # left to the upkeep
    orch.upkeep()
    files = [p for p in state.rglob("ledger.db*") if p.is_file()]
    seen = leaked(recover(files, keys_at_hand(orch)), n)
    assert set(range(n - still_open, n)) <= set(seen), "the scan cannot read open requests"
    assert not set(seen) & set(range(n - still_open)), "ended requests still decrypt"
    assert orch.ciphers.epochs.epochs() == [epoch[-1] + 1]  # the older epoch key destroyed


@pytest.fixture
def pg_db(pg_database) -> Any:
    admin = pg_database.admin
    with admin.connect() as c:
        data_dir = c.execute(sa.text("SHOW data_directory")).scalar_one()
        oid = c.execute(sa.text("SELECT oid FROM pg_database WHERE datname = :n"),
                        {"n": pg_database.name}).scalar_one()
    if not Path(data_dir).is_dir():  # pragma: no cover - the server runs on this machine
        pytest.skip("PostgreSQL's data directory is not readable from this process")
    return pg_database.url, Path(data_dir), oid, admin


def test_nothing_decrypts_after_purge_on_postgresql(make_orch, pg_db, monkeypatch) -> None:
    url, data_dir, oid, admin = pg_db
    monkeypatch.setenv("T_LEDGER_URL", url)
    orch = make_orch({"erasure": {"ledger": {"env": "T_LEDGER_URL"}},
                      "systems": {"crm": {"connector": "memory", "store": "shred-pg"}}})

    def files() -> list[Path]:
        # the database's own files (tables, TOAST, indexes, free space) and all of the WAL
        return [p for d in (data_dir / "base" / str(oid), data_dir / "pg_wal")
                for p in d.iterdir() if p.is_file()]

    def flush() -> None:
        with admin.connect() as c:
            c.execute(sa.text("CHECKPOINT"))  # dirty pages to the files we read

    erase_all_and_scan(orch, files, flush)
