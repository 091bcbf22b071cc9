"""Benchmark: erasing subjects with the sql connector vs hand-written batched SQL (PostgreSQL).

Two identical schemas are loaded (customers, and orders referencing them); the connector
erases subjects in one (find + delete, batches of --batch subjects), hand-written SQL erases
the same subjects in the other (two DELETE ... WHERE lower(email) = ANY(...) per batch).
Prints times and ratios; the schemas are dropped afterwards.

    .venv/bin/python bench/sql_erase.py [--scale 0.1] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence

import psycopg
import sqlalchemy as sa
from erasure_sql import SqlConnector, SqlSettings
from psycopg import sql

from erasure import Identifier, IdentifierType, Subject
from erasure.runtime import tune_gc_for_batches

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 1.5
TARGET_SCALING = 1.2


def dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(conn: psycopg.Connection, schema: str, customers: int, per_customer: int) -> None:
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(s))
    conn.execute(sql.SQL(
        "CREATE TABLE {}.customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, "
        "phone text, full_name text)").format(s))
    conn.execute(sql.SQL(
        "CREATE TABLE {}.orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL "
        "REFERENCES {}.customers(id), amount numeric(10,2), note text)").format(s, s))
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {}.customers FROM STDIN").format(s)) as copy:
            for i in range(customers):
                copy.write_row((i, f"user{i}@example.org", f"+4930{i:08d}", f"Person {i}"))
        with cur.copy(sql.SQL("COPY {}.orders FROM STDIN").format(s)) as copy:
            for i in range(customers * per_customer):
                copy.write_row((i, i % customers, "19.99", "n"))
    conn.execute(sql.SQL("CREATE INDEX ON {}.customers (lower(email))").format(s))
    conn.execute(sql.SQL("CREATE INDEX ON {}.orders (customer_id)").format(s))
    # Settle the fresh rows as a live database has them (hint bits set, visibility map
    # built, nothing dirty), so neither contender pays for the load's aftermath.
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}.customers").format(s))
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}.orders").format(s))
    conn.execute("CHECKPOINT")


def by_connector(url: str, schema: str) -> tuple[SqlConnector, Callable[[Sequence[str]], int]]:
    settings = SqlSettings.model_validate({
        "url": url, "schema": schema,
        "tables": {"customers": {"identifiers": {"email": "email", "phone": "phone",
                                                 "name": "full_name"}},
                   "orders": {}},
    })
    connector = SqlConnector("bench", settings)
    connector.check()
    phases = {"find": 0.0, "delete": 0.0, "cpu": 0.0}

    def run(emails: Sequence[str]) -> int:
        subjects = [Subject(f"r{i}", (Identifier(IdentifierType.EMAIL, e),))
                    for i, e in enumerate(emails)]
        c0 = time.thread_time()
        t0 = time.perf_counter()
        findings = list(connector.find(subjects))
        t1 = time.perf_counter()
        done = sum(1 for o in connector.delete(findings) if o.ok)
        phases["find"] += t1 - t0
        phases["delete"] += time.perf_counter() - t1
        phases["cpu"] += time.thread_time() - c0
        return done

    run.phases = phases  # type: ignore[attr-defined]
    return connector, run


def by_hand(conn: psycopg.Connection, schema: str) -> Callable[[Sequence[str]], int]:
    s = sql.Identifier(schema)
    del_orders = sql.SQL(
        "DELETE FROM {}.orders WHERE customer_id IN "
        "(SELECT id FROM {}.customers WHERE lower(email) = ANY(%s))").format(s, s)
    del_customers = sql.SQL("DELETE FROM {}.customers WHERE lower(email) = ANY(%s)").format(s)

    def run(emails: Sequence[str]) -> int:
        with conn.transaction():
            n = conn.execute(del_orders, (list(emails),)).rowcount
            n += conn.execute(del_customers, (list(emails),)).rowcount
        return n

    return run


def interleaved(
    runs: dict[str, Callable[[Sequence[str]], int]], emails: Sequence[str], batch: int
) -> dict[str, float]:
    """Run each contender on the same batches, alternating (fair under a noisy machine)."""
    totals = dict.fromkeys(runs, 0.0)
    rows = dict.fromkeys(runs, 0)
    for i in range(0, len(emails), batch):
        for name, run in runs.items():
            start = time.perf_counter()
            rows[name] += run(emails[i:i + batch])
            totals[name] += time.perf_counter() - start
    for name in runs:
        print(f"    {name:<10} {len(emails):>6} subjects, {rows[name]:>7} rows: "
              f"{totals[name]:7.3f} s")
    return totals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="same as --scale 0.1")
    ap.add_argument("--url", default=URL)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--default-gc", action="store_true",
                    help="keep CPython's default GC thresholds instead of those `erasure` sets")
    args = ap.parse_args()
    if not args.default_gc:
        tune_gc_for_batches()  # the connector runs in the CLI's process, tuned like this
    if args.quick:
        args.scale = 0.1
    customers = int(200_000 * args.scale)
    small, large = int(1_000 * args.scale) or 1, int(10_000 * args.scale) or 10
    tag = uuid.uuid4().hex[:12]
    schemas = (f"bench_conn_{tag}", f"bench_hand_{tag}")
    rng = random.Random(42)
    picked = rng.sample(range(customers), 100 + small + large)
    warm = [f"user{i}@example.org" for i in picked[:100]]
    s_small = [f"user{i}@example.org" for i in picked[100:100 + small]]
    s_large = [f"user{i}@example.org" for i in picked[100 + small:]]

    with psycopg.connect(dsn(args.url), autocommit=True) as conn:
        try:
            t0 = time.perf_counter()
            for schema in schemas:
                load(conn, schema, customers, 5)
            print(f"loaded 2 x ({customers} customers, {customers * 5} orders) "
                  f"in {time.perf_counter() - t0:.1f} s")
            connector, conn_run = by_connector(args.url, schemas[0])
            hand_run = by_hand(conn, schemas[1])
            runs = {"connector": conn_run, "hand": hand_run}
            interleaved(runs, warm, args.batch)
            conn_run.phases.update(find=0.0, delete=0.0, cpu=0.0)  # type: ignore[attr-defined]
            print(f"{small} subjects:")
            t_small = interleaved(runs, s_small, args.batch)
            print(f"{large} subjects:")
            t_large = interleaved(runs, s_large, args.batch)
            phases = conn_run.phases  # type: ignore[attr-defined]
            connector.close()
            c_small, c_large, h_large = t_small["connector"], t_large["connector"], t_large["hand"]
            for table in ("customers", "orders"):
                counts = [conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(s), sql.Identifier(table))).fetchone()[0] for s in schemas]
                assert counts[0] == counts[1], f"{table}: {counts}"
            ratio = c_large / h_large
            scaling = (c_large / large) / (c_small / small)
            print(f"connector phases over both runs: find {phases['find']:.3f} s, "
                  f"delete {phases['delete']:.3f} s; CPU of the calling thread "
                  f"{phases['cpu']:.3f} s (the rest is the database)")
            print(f"per subject: connector {c_small / small * 1e3:.3f} ms at {small}, "
                  f"{c_large / large * 1e3:.3f} ms at {large}; "
                  f"hand {h_large / large * 1e3:.3f} ms at {large}")
            print(f"ratio connector / hand-written at {large}: {ratio:.2f} "
                  f"(target <= {TARGET_RATIO}) {'OK' if ratio <= TARGET_RATIO else 'OVER'}")
            print(f"ratio per-subject {large} / {small}: {scaling:.2f} "
                  f"(target <= {TARGET_SCALING}) {'OK' if scaling <= TARGET_SCALING else 'OVER'}")
            return 0 if ratio <= TARGET_RATIO and scaling <= TARGET_SCALING else 1
        finally:
            for schema in schemas:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))


if __name__ == "__main__":
    sys.exit(main())
