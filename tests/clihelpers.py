"""Helpers for tests that drive the real ``erasure`` command line.

Configs are written into a test's tmp folder; memory systems are file-backed (``path``) so the
CLI process and the test process see the same data, and every delete is journalled.

``run_cli`` runs the command in the test's process (``run_app``, what the console script
calls, with the command's own stdout, stderr, environment and log handler): starting a
Python per command cost most of the suite's time. Where the process itself is the subject
(start-up, signals, kills, a plugin on PYTHONPATH, a server) it is a real subprocess
(``start_cli``, ``run_cli_process``; run_cli's exceptions below); ``make test-long`` runs
the CLI tests again with ``ERASURE_TEST_SUBPROCESS=1``: every command a subprocess.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from erasure.testing.memory import MemoryConnector, MemorySettings

CLI = [sys.executable, "-m", "erasure.cli"]


def cli_env(extra: Mapping[str, str] | None = None, *, pythonpath: Path | None = None,
            block: str | None = "sql") -> dict[str, str]:
    """The environment for a CLI subprocess.

    Wide columns so rich tables do not truncate request ids. The ``sql`` plugin (another
    distribution, edited concurrently) is blocked by default so these tests depend only on the
    host and the memory connector; ``block=None`` loads every installed plugin.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS", "PYTHONPATH")}
    env["COLUMNS"] = "250"
    env["NO_COLOR"] = "1"
    if block:
        env["ERASURE_BLOCK_PLUGINS"] = block
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    env.update(extra or {})
    return env


IN_PROCESS = os.environ.get("ERASURE_TEST_SUBPROCESS") != "1"
#: commands that run until stopped: a test that expects them to refuse must not hang if
#: they start, so they run as processes (with the timeout)
SERVERS = frozenset({"serve", "worker"})
_ONE_AT_A_TIME = threading.Lock()  # stdout, stderr, the environment are the process's


def run_cli(*args: str, config: Path | None = None, env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``erasure ARGS [-c CONFIG]`` and return its exit code and output (never raises).

    In this process, unless: the environment sets PYTHONPATH (a plugin only a new process
    can import), the command is a server, the caller is not the main thread (the
    environment and stdout swapped here are the whole process's), or
    ``ERASURE_TEST_SUBPROCESS=1``; see the module's docstring."""
    env = dict(env) if env is not None else cli_env()
    if (IN_PROCESS and "PYTHONPATH" not in env and args and args[0] not in SERVERS
            and threading.current_thread() is threading.main_thread()):
        return _run_in_process(list(args), config, env, cwd)
    return run_cli_process(*args, config=config, env=env, cwd=cwd, timeout=timeout)


def run_cli_process(*args: str, config: Path | None = None,
                    env: Mapping[str, str] | None = None, cwd: Path | None = None,
                    timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``erasure ARGS [-c CONFIG]`` as a new process and return it finished."""
    cmd = [*CLI, *args]
    if config is not None:
        cmd += ["-c", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else cli_env(), cwd=cwd)


def _run_in_process(args: list[str], config: Path | None, env: dict[str, str],
                    cwd: Path | None) -> subprocess.CompletedProcess[str]:
    """What ``erasure.cli.main`` does, in this process: the same environment, working
    folder, console width and WARNING log lines on stderr as a subprocess would have."""
    from erasure.cli import run_app
    from erasure.cli_common import _stdout, out

    if config is not None:
        args += ["-c", str(config)]
    stdout, stderr = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    with _ONE_AT_A_TIME:
        saved_env, saved_cwd, saved_width = dict(os.environ), os.getcwd(), out._width
        saved_level = root.level
        os.environ.clear()
        os.environ.update(env)
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        try:
            if cwd is not None:
                os.chdir(cwd)
            with redirect_stdout(stdout), redirect_stderr(stderr):
                # the width the console would have had in a process started with this
                # environment and this stdout: the product's own choice, made again
                out._width = _stdout()._width
                try:
                    code = run_app(args)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None
                                                                        else 1)
                except BaseException:  # a crashing process prints it through excepthook
                    sys.excepthook(*sys.exc_info())
                    code = 1
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
            out._width = saved_width
            root.removeHandler(handler)
            root.setLevel(saved_level)
    return subprocess.CompletedProcess([*CLI, *args], code, stdout.getvalue(),
                                       stderr.getvalue())


def run_many(*commands: Sequence[str], config: Path | None = None,
             env: Mapping[str, str] | None = None) -> list[subprocess.CompletedProcess[str]]:
    """Run independent CLI commands: one after another in this process (see run_cli),
    else at the same time as subprocesses (keeps the suite fast)."""
    from concurrent.futures import ThreadPoolExecutor

    if IN_PROCESS:
        return [run_cli(*c, config=config, env=env) for c in commands]

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(run_cli, *c, config=config, env=env) for c in commands]
        return [f.result() for f in futures]


def start_cli(*args: str, config: Path, env: Mapping[str, str] | None = None,
              ) -> subprocess.Popen[str]:
    """Start ``erasure ARGS -c CONFIG`` without waiting (Ctrl-C reaches it as from a
    terminal: see :func:`ctrl_c_reaches_it`)."""
    return subprocess.Popen([*CLI, *args, "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(env) if env is not None else cli_env(),
                            preexec_fn=ctrl_c_reaches_it)


def ctrl_c_reaches_it() -> None:
    """In a child before it starts: SIGINT as a terminal leaves it. A suite started in the
    background by a shell without job control (``make test &`` from a script, cron)
    inherits SIGINT ignored, and so would every command it starts: its Ctrl-C tests would
    test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, Sequence):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def write_config(folder: Path, systems: Mapping[str, Mapping[str, Any]],
                 host: Mapping[str, Any] | None = None, name: str = "erasure.toml",
                 id_spaces: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """Write a config with ``state_dir = "state"`` (relative to the file), these systems
    and id spaces (default: one "customer" space of customer ids over every system)."""
    if id_spaces is None:
        id_spaces = {"customer": {"type": "customer_id", "systems": list(systems)}} \
            if systems else {}
    lines = ["[erasure]", 'state_dir = "state"']
    lines += [f"{k} = {toml_value(v)}" for k, v in (host or {}).items()]
    for sname, section in systems.items():
        lines += ["", f"[systems.{sname}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in section.items()]
    for space, section in id_spaces.items():
        lines += ["", f"[id_spaces.{space}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in section.items()]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def memory_system(path: Path, **extra: Any) -> dict[str, Any]:
    return {"connector": "memory", "path": str(path), **extra}


def seed(path: Path, items: Mapping[str, tuple[str, Mapping[str, Any]]],
         system: str = "seed") -> None:
    """Put items into a file-backed memory system: ``{ref: (kind, fields)}``."""
    MemoryConnector(system, MemorySettings(path=str(path))).seed(items)


def stored_items(path: Path) -> dict[str, Any]:
    """The items a file-backed memory system holds, by reference."""
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8"))["items"])


def journal(path: Path) -> list[tuple[str, str]]:
    """(ref, status) of every delete the memory connector journalled for ``path``."""
    jpath = Path(str(path) + ".journal")
    if not jpath.exists():
        return []
    out = []
    for line in jpath.read_text(encoding="utf-8").splitlines():
        verb, ref, status = line.split(" ")
        assert verb == "delete", line
        out.append((ref, status))
    return out


def ledger_path(config: Path) -> Path:
    return config.parent / "state" / "ledger.db"


def ledger_query(config: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the SQLite ledger directly (read-only), as an auditor would."""
    db = sqlite3.connect(f"file:{ledger_path(config)}?mode=ro", uri=True, timeout=30)
    try:
        return list(db.execute(sql, params))
    finally:
        db.close()


def receipt_bodies(config: Path, request_id: str | None = None) -> list[dict[str, Any]]:
    rows = ledger_query(config, "SELECT request_id, body FROM receipts ORDER BY seq")
    return [json.loads(b) for rid, b in rows if request_id is None or rid == request_id]


def parse_table(stdout: str, columns: Sequence[str]) -> list[dict[str, str]]:
    """Rows of the rich table whose header holds ``columns`` (in order), as dicts.

    Cells are cut at the header's column positions, so empty cells and cells with spaces
    survive (works for boxed and borderless tables; needs a wide COLUMNS, see cli_env).
    """
    lines = stdout.splitlines()
    for n, line in enumerate(lines):  # noqa: B007 (n is used after the loop)
        starts, pos = [], 0
        for col in columns:
            found = line.find(col, pos)
            if found < 0:
                break
            starts.append(found)
            pos = found + len(col)
        else:
            break
    else:
        raise AssertionError(f"no table with columns {columns} in:\n{stdout}")
    rows = []
    for line in lines[n + 1:]:
        if not line.strip():
            break
        if set(line.strip()) <= set("─━┡┩╇┼━┃│└┘┴ "):
            continue
        cells = [line[a:b] for a, b in zip(starts, [*starts[1:], None], strict=True)]
        cells = [c.strip().lstrip("│┃").split("│")[0].split("┃")[0].strip() for c in cells]
        if not cells[0]:
            break  # a caption or a wrapped continuation line
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def table_row(stdout: str, columns: Sequence[str], first: str) -> dict[str, str]:
    """The row whose first column is ``first``."""
    for row in parse_table(stdout, columns):
        if row[columns[0]] == first:
            return row
    raise AssertionError(f"no row {first!r} in:\n{stdout}")


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The non-empty lines the process wrote to stderr."""
    return [line for line in proc.stderr.splitlines() if line.strip()]


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
