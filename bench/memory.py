"""Benchmark: peak memory of a run of 100,000 erasures against one of 10,000.

Each size runs in a process of its own: a SQLite shop (customers with two orders each, in
a file, so the data is not in the process's memory), requests recorded with
``submit_many`` and processed by ``run`` in batches of ``batch_size``. The peak resident
set size of each process (``ru_maxrss``) is compared. Target: at most 1.5x: the engine
holds one batch at a time, never the whole run.

    .venv/bin/python bench/memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.5


def child(n: int, folder: Path) -> None:
    from erasure import PluginHost, RequestType
    from erasure.config import parse_config
    from erasure.orchestrator import Orchestrator, RequestSpec
    from erasure.runtime import tune_gc_for_batches

    db = folder / "shop.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL "
        "REFERENCES customers(id));"
        "CREATE INDEX orders_customer ON orders (customer_id);")
    con.executemany("INSERT INTO customers VALUES (?, ?)",
                    ((i, f"user{i}@example.org") for i in range(n)))
    con.executemany("INSERT INTO orders VALUES (?, ?)", ((i, i // 2) for i in range(2 * n)))
    con.commit()
    con.close()
    tune_gc_for_batches()
    plugins = PluginHost.load()
    config = parse_config({
        "erasure": {"state_dir": str(folder / "state"), "batch_size": 1000},
        "systems": {"shop": {"connector": "sql", "url": f"sqlite:///{db}",
                             "tables": {"customers": {"identifiers": {"email": "email"}},
                                        "orders": {}}}},
    }, known_connectors={n_: plugins.registry.get(n_) for n_ in plugins.registry.names()})
    orch = Orchestrator(config, plugins)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for i in range(0, n, 10_000):  # recorded the way a ticketing workflow would, in parts
        orch.submit_many([RequestSpec(RequestType.ERASURE, (("email", f"user{c}@example.org"),),
                                      verified=True) for c in range(i, min(n, i + 10_000))])
    summary = orch.run()
    elapsed = time.perf_counter() - t0
    orch.close()
    assert len(summary.finished) == n and set(summary.outcomes) == {"completed"}, summary
    print(json.dumps({"n": n, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "start_kib": before, "seconds": elapsed}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 against 20,000")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, Path(args.folder))
        return 0
    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    results = {}
    for n in (small, large):
        with tempfile.TemporaryDirectory(prefix="erasure-mem-") as tmp:
            proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--folder", tmp],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[n]
            print(f"{n:>7,} erasures: peak {r['peak_kib'] / 1024:.0f} MiB (after start-up "
                  f"{r['start_kib'] / 1024:.0f} MiB), {r['seconds']:.1f} s, "
                  f"{r['seconds'] / n * 1000:.2f} ms each")
    ratio = results[large]["peak_kib"] / results[small]["peak_kib"]
    ok = ratio <= TARGET
    print(f"ratio peak memory {large:,} / {small:,}: {ratio:.2f} (target <= {TARGET}) "
          f"{'OK' if ok else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
