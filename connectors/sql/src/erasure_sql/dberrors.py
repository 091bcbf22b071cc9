"""Classify database errors into erasure's error types, without leaking values.

Driver messages often quote row values ("Key (email)=(bob@x.org) already exists"), so the
messages built here name only the operation, the table, the error class and its code, and
the original exception is not chained.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from erasure import AuthError, BlockedError, ConnectorError, PermanentError, TransientError

__all__ = ["classify", "db_errors"]

# 70100: a statement interrupted by its time limit (MariaDB reports the SQLSTATE)
_PG_TRANSIENT_PREFIXES = ("08", "40", "53", "57", "58", "55P03", "HY", "70100")
_MYSQL_AUTH = {1044, 1045, 1142, 1143, 1227, 1698}
# 1969: MariaDB's max_statement_time exceeded, 3024: MySQL's max_execution_time
_MYSQL_TRANSIENT = {1040, 1053, 1159, 1161, 1205, 1213, 1969, 2002, 2003, 2006, 2013, 2055,
                    3024}


def _code(orig: BaseException | None) -> str | int | None:
    if orig is None:
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


#: SQLite result codes of a database file that cannot be written or read now (a read-only
#: file or folder, a full disk, an I/O error, a file being replaced): it comes back
_SQLITE_UNAVAILABLE = ("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL",
                       "SQLITE_PROTOCOL")
_SQLITE_UNAVAILABLE_TEXT = ("readonly database", "disk i/o error", "unable to open database",
                            "database or disk is full")
#: the schema does not hold what the mapping names: the whole system, until its config or
#: schema is fixed (PostgreSQL undefined table/column, invalid schema or database name;
#: MySQL/MariaDB unknown table, column or database)
_PG_SCHEMA = ("42P01", "42703", "3F000", "3D000")
_MYSQL_SCHEMA = {1049, 1054, 1146}


def classify(exc: sa_exc.DBAPIError, what: str) -> ConnectorError:
    """The erasure error for a database error raised while doing ``what``.

    Classes (erasure.errors): a lost connection, a timeout, a lock, a read-only or failing
    database file are transient; refused credentials or permissions and a schema that does
    not match the mapping are blocked (the latter system-wide); a constraint or a value
    refused by the database is permanent (that item); anything else is blocked, since
    nobody classified it.
    """
    orig = exc.orig
    code = _code(orig)
    label = f"{what}: {type(orig).__name__ if orig is not None else type(exc).__name__}"
    if code is not None:
        label += f" (code {code})"
    text = str(orig).lower() if orig is not None else ""
    module = type(orig).__module__ if orig is not None else ""

    if isinstance(code, int):  # MySQL / MariaDB errno
        if code in _MYSQL_AUTH:
            return AuthError(label + ": access denied", system_wide=True)
        if code in _MYSQL_TRANSIENT:
            return TransientError(label + ": connection, timeout, lock or deadlock")
        if code in _MYSQL_SCHEMA:
            return BlockedError(label + ": the schema does not match the mapping",
                                system_wide=True)
    elif isinstance(code, str):  # PostgreSQL SQLSTATE
        if code.startswith("28") or code == "42501":
            return AuthError(label + ": authentication or permission failure",
                             system_wide=True)
        if code.startswith(_PG_TRANSIENT_PREFIXES):
            return TransientError(label + ": connection, timeout, lock or deadlock")
        if code in _PG_SCHEMA:
            return BlockedError(label + ": the schema does not match the mapping",
                                system_wide=True)
    if exc.connection_invalidated:
        return TransientError(label + ": connection lost")
    if "sqlite" in module:
        name = getattr(orig, "sqlite_errorname", "") or ""
        if "locked" in text or "busy" in text or name.startswith(("SQLITE_BUSY",
                                                                   "SQLITE_LOCKED")):
            return TransientError(label + ": database is locked")
        if name.startswith(_SQLITE_UNAVAILABLE) or any(t in text for t in
                                                       _SQLITE_UNAVAILABLE_TEXT):
            return TransientError(label + ": the database file cannot be written or read "
                                  "now (read-only, full or an I/O error)")
        if "no such table" in text or "no such column" in text:
            return BlockedError(label + ": the schema does not match the mapping",
                                system_wide=True)
    if isinstance(exc, sa_exc.OperationalError) and code is None and "sqlite" not in module:
        if "authentication" in text or "password" in text or "access denied" in text:
            return AuthError(label + ": authentication failed", system_wide=True)
        if "does not exist" in text:
            return BlockedError(label + ": database or role does not exist",
                                system_wide=True)
        return TransientError(label + ": connection failed")
    if isinstance(exc, sa_exc.InterfaceError):
        return TransientError(label + ": connection problem")
    if isinstance(exc, sa_exc.IntegrityError):
        return PermanentError(label + ": integrity constraint violated")
    if isinstance(exc, sa_exc.DataError):
        return PermanentError(label + ": a value the database refuses")
    return BlockedError(label + ": unclassified database error")


@contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Turn SQLAlchemy errors raised inside the block into erasure errors."""
    try:
        yield
    except ConnectorError:
        raise
    except sa_exc.DBAPIError as exc:
        raise classify(exc, what) from None
    except sa_exc.TimeoutError:
        raise TransientError(f"{what}: connection pool timeout") from None
    except sa_exc.SQLAlchemyError as exc:
        raise BlockedError(f"{what}: {type(exc).__name__} (unclassified)") from None
