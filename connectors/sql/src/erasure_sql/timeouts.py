"""Statement and lock timeouts from the host's call deadline.

A locked table or a hung server must not hold a call past its deadline: every transaction a
connector call opens gets the time left as its statement and lock timeout, so a blocked
statement fails (a TransientError, see dberrors.py) and the host retries later.

The deadline is read when a connection is taken in the calling thread (the host's call
context is a context variable, not visible in the worker thread that may run statements),
and applied when the connection's transaction begins.
"""

from __future__ import annotations

import math
import time

import sqlalchemy as sa

from erasure import current_call

__all__ = ["apply_call_deadlines"]

_KEY = "erasure_deadline"


def _on_connect(conn: sa.Connection) -> None:
    try:
        conn.info[_KEY] = current_call().deadline
    except RuntimeError:  # not inside a host's call (discover, check): no deadline
        conn.info.pop(_KEY, None)


def _on_begin(conn: sa.Connection) -> None:
    deadline = conn.info.get(_KEY)
    if deadline is None:
        return
    # at least 1 ms; at most a day (the servers refuse timeouts past 2**31 ms)
    left = min(max(deadline - time.monotonic(), 0.001), 86_400.0)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        ms = max(1, int(left * 1000))
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")
    elif dialect in ("mysql", "mariadb"):
        seconds = max(1, math.ceil(left))  # innodb_lock_wait_timeout takes whole seconds
        if conn.dialect.name == "mariadb" or getattr(conn.dialect, "is_mariadb", False):
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {left:.3f}")
        else:
            conn.exec_driver_sql(f"SET SESSION max_execution_time = {int(left * 1000)}")
        conn.exec_driver_sql(f"SET SESSION innodb_lock_wait_timeout = {seconds}")
    elif dialect == "sqlite":
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")


def apply_call_deadlines(engine: sa.Engine) -> None:
    """Give every transaction of ``engine`` opened during a host's call the time left."""
    sa.event.listen(engine, "engine_connect", _on_connect)
    sa.event.listen(engine, "begin", _on_begin)
