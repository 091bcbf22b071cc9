"""Run every benchmark in this folder (each ``bench/*.py`` except this one), one at a time.

Each runs in its own process with the same Python, from the repository root; ``--quick`` is
passed on to every one. Their output is shown as it comes, then a summary. The exit status
is non-zero if any benchmark failed (missed its target or crashed).

    .venv/bin/python bench/run_all.py [--quick] [NAME ...]

NAMEs (e.g. ``fanout scale``) run only those benchmarks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def benchmarks() -> list[Path]:
    me = Path(__file__).resolve()
    return sorted(p for p in HERE.glob("*.py") if p.resolve() != me)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run every benchmark in bench/.")
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("names", nargs="*", help="run only these (file names without .py)")
    args = ap.parse_args(argv)

    found = benchmarks()
    if args.names:
        unknown = sorted(set(args.names) - {p.stem for p in found})
        if unknown:
            ap.error(f"no benchmark named {', '.join(unknown)} "
                     f"(have: {', '.join(p.stem for p in found)})")
        found = [p for p in found if p.stem in args.names]
    if not found:
        print("no benchmarks found", file=sys.stderr)
        return 1

    results: list[tuple[str, int, float]] = []
    for path in found:
        cmd = [sys.executable, str(path)] + (["--quick"] if args.quick else [])
        print(f"=== {path.stem} ({' '.join(cmd[1:])})", flush=True)
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, check=False).returncode
        except KeyboardInterrupt:
            print(f"=== {path.stem}: interrupted", flush=True)
            return 130
        elapsed = time.perf_counter() - t0
        results.append((path.stem, rc, elapsed))
        print(f"=== {path.stem}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} "
              f"in {elapsed:.1f} s\n", flush=True)

    print("summary:")
    for name, rc, elapsed in results:
        print(f"  {name:<20} {'ok' if rc == 0 else f'FAILED (exit {rc})':<18} {elapsed:8.1f} s")
    failed = [name for name, rc, _ in results if rc != 0]
    if failed:
        print(f"{len(failed)} of {len(results)} benchmarks failed: {', '.join(failed)}")
        return 1
    print(f"all {len(results)} benchmarks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
