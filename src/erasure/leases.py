"""Who holds a lease, whether that process is still alive, and a heartbeat that keeps a
lease while a batch is being worked.

A lease owner names its process by host, PID namespace, PID and the process's start time:
a PID reused by another process, or the same PID in another namespace on a host of the same
name, is not mistaken for the owner. Where the owner cannot be checked (another host, no
/proc), the lease's expiry decides.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["Heartbeat", "new_owner", "owner_alive"]


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "-"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat);
    None when it has no such process, or only a zombie of one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its ")"
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        # A zombie has ended: only its exit status waits for a parent to collect it (in a
        # container whose first process reaps nothing, for ever).
        return None
    return fields[19]


def new_owner() -> str:
    """A lease owner for this process: host, PID namespace, PID, start time, and a random
    part (two ledgers in one process are two owners)."""
    pid = os.getpid()
    return (f"{socket.gethostname()}:{_pid_namespace()}:{pid}:{_start_time(pid) or '-'}:"
            f"{uuid.uuid4().hex[:8]}")


def owner_alive(owner: str | None) -> bool:
    """False only when ``owner`` surely names a process of this host that is gone."""
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) != 5:
        return True  # a format this version does not know: trust the lease time
    host, ns, pid_text, started, _ = parts
    if host != socket.gethostname() or ns != _pid_namespace() or not pid_text.isdigit():
        return True
    now_started = _start_time(int(pid_text))
    if now_started is None:
        if Path("/proc/self/stat").exists():
            return False  # /proc works and has no such PID: gone
        return _kill_check(int(pid_text))
    return started == "-" or now_started == started


def _kill_check(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Renews leases every ``interval`` seconds on a thread of its own until stopped, so a
    connector call longer than the lease never lets another runner take the batch."""

    def __init__(self, renew: Callable[[Sequence[str]], None], ids: Sequence[str],
                 interval: float) -> None:
        self._renew, self._ids, self._interval = renew, list(ids), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="erasure-heartbeat",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._renew(self._ids)
            except Exception:  # a missed beat is retried; fencing protects the writes
                continue
