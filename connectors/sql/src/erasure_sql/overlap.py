"""Database calls that let the calling thread do other work while the server answers.

Most of a batch's time is the database reading or deleting rows; building findings and
outcomes is most of the rest. A call made through :class:`Overlapped` runs on a worker
thread whenever there is work waiting (``meanwhile``), which the calling thread then does
instead of waiting. The connection is only ever used by one thread at a time.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

__all__ = ["Overlapped"]

_T = TypeVar("_T")


class Overlapped:
    """A connection whose next call runs beside ``meanwhile``, if both are set."""

    def __init__(self, conn: sa.Connection, executor: cf.Executor | None) -> None:
        self.conn = conn
        self.executor = executor  # None: everything runs on the calling thread (SQLite)
        #: work for the calling thread during the next call (taken by that call).
        self.meanwhile: Callable[[], object] | None = None

    def also(self, work: Callable[[], object]) -> None:
        """Add ``work`` to what the next call runs beside."""
        before = self.meanwhile
        if before is None:
            self.meanwhile = work
        else:
            def both() -> None:
                before()
                work()
            self.meanwhile = both

    def run(self, call: Callable[[], _T]) -> _T:
        """``call()`` (which uses the connection), with ``meanwhile`` done beside it."""
        work, self.meanwhile = self.meanwhile, None
        if work is None or self.executor is None:
            result = call()
            if work is not None:
                work()
            return result
        started = threading.Event()

        def on_worker() -> _T:
            started.set()
            return call()

        future = self.executor.submit(on_worker)
        # Let the worker send its statement first: waiting on the server it gives up the GIL,
        # whereas started the other way round it would wait for this thread's switch interval.
        started.wait()
        try:
            work()
        finally:
            # Always wait: the connection must be idle again before anything else uses it.
            result = future.result()
        return result

    def all(self, stmt: sa.Executable) -> list[Any]:
        """The rows of ``stmt``."""
        return self.run(lambda: list(self.conn.execute(stmt).all()))

    def rowcount(self, stmt: sa.Executable) -> int:
        """The number of rows ``stmt`` changed."""
        return self.run(lambda: self.conn.execute(stmt).rowcount)
