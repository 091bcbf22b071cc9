"""The ledger's database: the engine (SQLite in WAL mode, or PostgreSQL), transactions,
the schema (created under a lock, so that processes opening a new ledger at once do not
collide), the named advisory locks and fast bulk writes."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url

from ..dates import utcnow
from ..errors import ConfigError
from ..files import private_dir
from ..leases import new_owner
from ..ledger_tables import metadata

__all__ = ["Database", "Lock", "executemany", "ledger_exists", "utcnow"]


class Lock(enum.IntEnum):
    """PostgreSQL advisory lock ids (transaction-scoped). SQLite needs none: every write
    transaction is ``BEGIN IMMEDIATE`` and so holds the database's write lock."""

    #: claims, fenced writes and sweep leases: who holds which request (or system)
    LEASES = 4242001
    #: the receipt chain's end: one writer appends receipts and heads at a time
    CHAIN = 4242002
    #: key epochs: shared to add or drop request keys, exclusive to rotate
    KEYS = 4242003
    #: creating or upgrading the schema
    SCHEMA = 4242004
    #: recording requests: a request recorded twice at once (same dedupe key) is one
    INTAKE = 4242005


def ledger_exists(url: str) -> bool:
    """False only for a SQLite ledger file that was never created (nothing to look up)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database).exists()


def executemany(conn: Connection, stmt: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run ``stmt`` once for each of ``rows`` (dicts with the same keys).

    On SQLite the rows go to the driver's ``executemany`` as they are, after the column
    types' own conversions (datetimes to text, as SQLAlchemy stores them): SQLAlchemy's
    per-row parameter handling took three times as long as SQLite itself, and a run writes
    some ten rows per request. On PostgreSQL SQLAlchemy already batches them well
    (multi-row VALUES, pipelined updates).
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(stmt, list(rows))
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    names = compiled.positiontup or []
    if any(n not in rows[0] for n in names):  # a column default to fill in: SQLAlchemy's way
        conn.execute(stmt, list(rows))
        return
    convert = [(i, proc) for i, n in enumerate(names)
               if (proc := compiled.binds[n].type.bind_processor(conn.dialect)) is not None]
    params = [[r[n] for n in names] for r in rows]
    for values in params:
        for i, proc in convert:
            values[i] = proc(values[i])
    conn.exec_driver_sql(compiled.string, [tuple(v) for v in params])


class Database:
    """The connection to the ledger; every store works through it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except Exception:
            raise ConfigError("erasure.ledger: not a database URL") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database))
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except Exception as exc:
            raise ConfigError(
                f"erasure.ledger: cannot use this URL ({type(exc).__name__})"
            ) from None
        if self.is_sqlite:
            _sqlite_setup(self.engine)
        # Reads outside a write transaction (read()): on PostgreSQL in autocommit, each
        # statement one round trip instead of three (BEGIN, the statement, ROLLBACK).
        # Under READ COMMITTED, a transaction's statements each take their own snapshot,
        # so a read-only transaction made them no more consistent with each other.
        self._reader = (self.engine.execution_options(isolation_level="AUTOCOMMIT")
                        if parsed.get_backend_name() == "postgresql" else self.engine)
        self.owner = new_owner()
        try:
            self._create_schema()
        except Exception as exc:
            raise ConfigError(
                f"erasure.ledger: cannot open the ledger database ({type(exc).__name__})"
            ) from None

    def _create_schema(self) -> None:
        """Create the tables, and add nullable columns (and indexes) a newer version
        declares to a ledger an older one made, in one transaction under the schema lock:
        processes that open a new ledger at once wait for each other instead of failing
        on each other's CREATE TABLE (SQLite: the write lock of ``BEGIN IMMEDIATE``)."""
        with self.tx() as conn:
            self.lock(conn, Lock.SCHEMA)
            metadata.create_all(conn)
            inspector = inspect(conn)
            for table in metadata.sorted_tables:
                have = {c["name"] for c in inspector.get_columns(table.name)}
                for col in table.columns:
                    if col.name not in have and col.nullable:
                        kind = col.type.compile(dialect=self.engine.dialect)
                        # the dialect's quotes: MariaDB reads "name" as a string
                        name = self.engine.dialect.identifier_preparer.quote_identifier(
                            col.name)
                        conn.exec_driver_sql(
                            f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")
                for index in table.indexes:
                    index.create(conn, checkfirst=True)

    def lock(self, conn: Connection, which: Lock, *, shared: bool = False,
             durable: bool = True) -> None:
        """Take ``which`` for the rest of ``conn``'s transaction (PostgreSQL; on SQLite the
        transaction already holds the write lock). ``durable=False``: the transaction's
        commit does not wait for the disk (PostgreSQL's ``synchronous_commit`` off for it
        alone; only for writes whose loss in a database crash is harmless), set in the
        same statement."""
        if not self.is_sqlite:
            fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            also = "" if durable else ", set_config('synchronous_commit', 'off', true)"
            conn.execute(text(f"SELECT {fn}({int(which)}){also}"))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads that need no write lock (see ``_reader``)."""
        with self._reader.connect() as conn:
            yield conn

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        with self.engine.begin() as conn:
            yield conn


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        # Take over transaction control so that "begin" can be IMMEDIATE: two runs at
        # once then serialise on the write lock instead of failing on upgrade.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")
        _wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        # A ledger of ten thousand open requests is tens of MiB; the default 2 MiB
        # page cache made every batch's writes slower as the file grew.
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _private_file(path: Path) -> None:
    """Create the ledger file (and its folder) readable by its owner only, before SQLite
    opens it: SQLite gives its -wal and -shm files the database file's permissions."""
    # the folder is the operator's choice (the state folder, closed by the orchestrator,
    # or a shared one): only the files are ours to close
    private_dir(path.parent, close=False)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_mode & 0o077:
            p.chmod(0o600)


def _wal(cur: Any) -> None:
    """Put the database in WAL mode. Two processes opening a new ledger at once (two
    ``request create`` from a script) race to convert it, and SQLite answers the loser
    "database is locked" at once, without its busy timeout: it tries again for a while."""
    import sqlite3
    import time

    for _ in range(100):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA journal_mode=WAL")
