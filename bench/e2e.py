"""Benchmark: the whole tool, end to end through its command line, on PostgreSQL.

Three comparisons, each against a baseline run in the same script:

1. **batch**: ``erasure request import`` of N verified erasures, then ``erasure run``
   (processes started and timed as a user's shell would), against hand-written batched SQL
   deleting the same subjects' orders and customers (one psycopg connection, batches of
   1,000, one statement a batch: the best a DBA would write, served by the unique index on
   ``email``; see BASELINE_ONE). Target: at most 5x.
2. **one**: ``erasure erase --email X --verified`` for one subject, process start to exit,
   against a Python process that connects with psycopg and runs the same statement.
   Target: at most 1.5x.
3. **import**: ``erasure request import`` of N rows against a script that reads the same
   CSV and inserts the rows with ``executemany`` into the same kind of ledger (SQLite).
   Target: at most 2x.

Two identical schemas (customers, orders referencing them) are loaded; the tool works on
one, the baseline on the other. Everything is dropped afterwards.

    .venv/bin/python bench/e2e.py [--quick] [--subjects 10000] [--customers 100000]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from sql_erase import URL, dsn, load

ROOT = Path(__file__).resolve().parent.parent
ERASURE = [sys.executable, "-m", "erasure.cli"]
TARGETS = {"batch": 5.0, "one": 1.5, "import": 2.0}

# The hand-written baseline is the best a DBA would write: the emails are stored in lower
# case, so the plain unique index on email serves `email = ...` (no lower(), which only an
# expression index could serve), and both DELETEs go in one statement, one round trip: the
# foreign key is checked at the statement's end, when the orders are gone too.
BASELINE_ONE = """
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("WITH gone AS (DELETE FROM {s}.customers WHERE email = %s RETURNING id) "
                 "DELETE FROM {s}.orders WHERE customer_id IN (SELECT id FROM gone)",
                 (sys.argv[2],))
"""

BASELINE_IMPORT = """
import csv, sqlite3, sys, uuid, datetime
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
db = sqlite3.connect(sys.argv[2])
db.execute("CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, type TEXT, email TEXT, "
           "ticket TEXT, verified INTEGER, received_at TEXT)")
now = datetime.datetime.now(datetime.UTC).isoformat()
db.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?)",
               [(uuid.uuid4().hex, r["type"], r["email"], r["ticket"], r["verified"] == "yes",
                 now) for r in rows])
db.commit()
"""


def config(folder: Path, schema: str) -> Path:
    path = folder / "erasure.toml"
    path.write_text(
        '[erasure]\nstate_dir = "state"\nbatch_size = 1000\n\n'
        '[systems.shop]\nconnector = "sql"\nurl = { env = "SHOP_URL" }\n'
        f'schema = "{schema}"\n\n'
        '[systems.shop.tables.customers]\nidentifiers = { email = "email" }\n\n'
        '[systems.shop.tables.orders]\n', encoding="utf-8")
    return path


def env(url: str) -> dict[str, str]:
    from erasure.keys import generate_keys

    signing, encryption = generate_keys()
    out = {k: v for k, v in os.environ.items() if not k.startswith("ERASURE")}
    out.update(SHOP_URL=url, COLUMNS="200", ERASURE_SIGNING_KEY=signing,
               ERASURE_ENCRYPTION_KEY=encryption)
    return out


def timed(cmd: list[str], environ: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=environ, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def keys_config(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(
        '[erasure]\n', '[erasure]\nkeys = { signing_key = { env = "ERASURE_SIGNING_KEY" }, '
        'encryption_key = { env = "ERASURE_ENCRYPTION_KEY" } }\n', 1), encoding="utf-8")


def baseline_batch(conn: psycopg.Connection, schema: str, emails: list[str]) -> float:
    s = sql.Identifier(schema)
    # See BASELINE_ONE: indexed plain equality, one statement per batch.
    both = sql.SQL("WITH gone AS (DELETE FROM {}.customers WHERE email = ANY(%s) RETURNING id) "
                   "DELETE FROM {}.orders WHERE customer_id IN (SELECT id FROM gone)"
                   ).format(s, s)
    t0 = time.perf_counter()
    for i in range(0, len(emails), 1000):
        part = emails[i:i + 1000]
        with conn.transaction():
            conn.execute(both, (part,))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 subjects of 20,000 customers")
    ap.add_argument("--subjects", type=int, default=10_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--orders-each", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the one-subject case")
    ap.add_argument("--url", default=URL)
    args = ap.parse_args()
    if args.quick:
        args.subjects, args.customers = 2_000, 20_000
    url = args.url
    schemas = [f"bench_e2e_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    ratios: dict[str, float] = {}
    with psycopg.connect(dsn(url), autocommit=True) as conn, \
            tempfile.TemporaryDirectory(prefix="erasure-e2e-") as tmp:
        folder = Path(tmp)
        try:
            for s in schemas:
                load(conn, s, args.customers, args.orders_each)
            ours, theirs = schemas
            step = args.customers // args.subjects
            emails = [f"user{i * step}@example.org" for i in range(args.subjects)]
            cfg = config(folder, ours)
            keys_config(cfg)
            environ = env(url)
            requests = folder / "requests.csv"
            with requests.open("w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh)
                out.writerow(["type", "email", "ticket", "verified"])
                out.writerows(["erasure", e, f"T-{n}", "yes"] for n, e in enumerate(emails))

            t_import = timed([*ERASURE, "request", "import", str(requests), "-c", str(cfg)],
                             environ, folder)
            t_run = timed([*ERASURE, "run", "-c", str(cfg)], environ, folder)
            t_hand = baseline_batch(conn, theirs, emails)
            left = conn.execute(sql.SQL("SELECT count(*) FROM {}.customers").format(
                sql.Identifier(ours))).fetchone()[0]
            assert left == args.customers - args.subjects, left
            ratios["batch"] = (t_import + t_run) / t_hand
            print(f"batch: {args.subjects:,} erasures: import {t_import:.2f} s + run "
                  f"{t_run:.2f} s = {t_import + t_run:.2f} s; hand-written SQL {t_hand:.2f} s")

            script = folder / "baseline_import.py"
            script.write_text(BASELINE_IMPORT, encoding="utf-8")
            t_base_import = timed([sys.executable, str(script), str(requests),
                                   str(folder / "baseline.db")], environ, folder)
            ratios["import"] = t_import / t_base_import
            print(f"import: erasure {t_import:.2f} s; csv + executemany {t_base_import:.2f} s")

            one = folder / "baseline_one.py"
            one.write_text(BASELINE_ONE.replace("{s}", theirs), encoding="utf-8")
            ones, bases = [], []
            for n in range(args.repeats):
                c = n * step + step // 2  # not among the batch's subjects
                ones.append(timed([*ERASURE, "erase", "--email", f"user{c}@example.org",
                                   "--verified", "-c", str(cfg)], environ, folder))
                bases.append(timed([sys.executable, str(one), dsn(url),
                                    f"user{c}@example.org"], environ, folder))
            ratios["one"] = statistics.median(ones) / statistics.median(bases)
            print(f"one: erasure erase {statistics.median(ones):.3f} s; psycopg script "
                  f"{statistics.median(bases):.3f} s (medians of {args.repeats})")
        finally:
            for s in schemas:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(s)))
    failed = False
    for name, ratio in ratios.items():
        ok = ratio <= TARGETS[name]
        failed |= not ok
        print(f"ratio {name}: {ratio:.2f} (target <= {TARGETS[name]}) {'OK' if ok else 'OVER'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
