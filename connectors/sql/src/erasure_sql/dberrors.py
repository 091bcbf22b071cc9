"""Classify database errors into erasure's error types, without leaking values.

Driver messages often quote row values ("Key (email)=(bob@x.org) already exists"), so the
messages built here name only the operation, the table, the error class and its code, and
the original exception is not chained.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from erasure import AuthError, ConnectorError, PermanentError, TransientError

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


def classify(exc: sa_exc.DBAPIError, what: str) -> ConnectorError:
    """The erasure error for a database error raised while doing ``what``."""
    orig = exc.orig
    code = _code(orig)
    label = f"{what}: {type(orig).__name__ if orig is not None else type(exc).__name__}"
    if code is not None:
        label += f" (code {code})"
    text = str(orig).lower() if orig is not None else ""
    module = type(orig).__module__ if orig is not None else ""

    if isinstance(code, int):  # MySQL / MariaDB errno
        if code in _MYSQL_AUTH:
            return AuthError(label + ": access denied")
        if code in _MYSQL_TRANSIENT:
            return TransientError(label + ": connection, timeout, lock or deadlock")
    elif isinstance(code, str):  # PostgreSQL SQLSTATE
        if code.startswith("28") or code == "42501":
            return AuthError(label + ": authentication or permission failure")
        if code.startswith(_PG_TRANSIENT_PREFIXES):
            return TransientError(label + ": connection, timeout, lock or deadlock")
    if exc.connection_invalidated:
        return TransientError(label + ": connection lost")
    if isinstance(exc, sa_exc.OperationalError):
        if "sqlite" in module:
            if "locked" in text or "busy" in text:
                return TransientError(label + ": database is locked")
            return PermanentError(label)
        if code is None:
            if "authentication" in text or "password" in text or "access denied" in text:
                return AuthError(label + ": authentication failed")
            if "does not exist" in text:
                return PermanentError(label + ": database or role does not exist")
            return TransientError(label + ": connection failed")
        return PermanentError(label)
    if isinstance(exc, sa_exc.InterfaceError):
        return TransientError(label + ": connection problem")
    if isinstance(exc, sa_exc.IntegrityError):
        return PermanentError(label + ": integrity constraint violated")
    return PermanentError(label)


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
        raise PermanentError(f"{what}: {type(exc).__name__}") from None
