"""Benchmark: the sql connector's deep scan (verification beyond the mapping) vs a hand-written
``SELECT count(*) ... WHERE col = ANY(...)`` over the same columns (PostgreSQL).

One schema: a small mapped ``customers`` table and an unmapped ``archive`` of --rows rows
(default 1,000,000) with three text columns (email, phone, note). A batch of --batch subjects
(default 1,000; half of them present in the archive, some in upper case) is searched:

- **deep scan**: ``SqlConnector.deep_scan().scan(values)`` (what verification and
  ``erasure systems check --deep`` run): statements counted, rows matched;
- **hand**: ``SELECT count(*) FROM archive WHERE email = ANY(%s) OR phone = ANY(%s) OR
  note = ANY(%s)``, one array parameter (exact, case-sensitive: the least SQL that looks).

Targets: one statement for the archive (one sequential pass) and deep-scan time <= 2x the
hand-written time (medians, alternating). The schema is dropped afterwards.

``--phones`` asks the batch's phones (E.164) instead of emails: the deep scan then also
looks for them written other ways (digits, separators taken out, ending with the number's
national significant number). The hand-written statement then does the same by hand
(``right(replace(...), 10) = ANY(%s)`` per column besides the whole values), and the
whole-value statement alone is timed too: what finding written forms costs.

    .venv/bin/python bench/sql_deep_scan.py [--quick] [--phones] [--rows 1000000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg
import sqlalchemy as sa
from erasure_sql import SqlConnector, SqlSettings
from psycopg import sql

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 2.0


def dsn(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(conn: psycopg.Connection, schema: str, rows: int) -> None:
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(s))
    conn.execute(sql.SQL("CREATE TABLE {}.customers (id bigint PRIMARY KEY, email text)")
                 .format(s))
    conn.execute(sql.SQL("CREATE TABLE {}.archive (id bigint PRIMARY KEY, email text, "
                         "phone text, note text)").format(s))
    with conn.cursor() as cur, cur.copy(
            sql.SQL("COPY {}.archive FROM STDIN").format(s)) as copy:
        for i in range(rows):
            copy.write_row((i, f"user{i}@example.org", f"+4930{i:08d}", f"note {i}"))
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}.archive").format(s))
    conn.execute("CHECKPOINT")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="200,000 rows, 3 repeats")
    ap.add_argument("--url", default=URL)
    ap.add_argument("--phones", action="store_true", help="a batch of phones, not emails")
    args = ap.parse_args(argv)
    rows, repeats = (200_000, 3) if args.quick else (args.rows, args.repeats)
    schema = f"bench_deep_{uuid.uuid4().hex[:12]}"
    # Half the batch is in the archive (every other one in upper case), half is not.
    step = max(1, rows // args.batch)
    values = [f"user{i * step}@example.org" for i in range(args.batch // 2)]
    values += [f"nobody{i}@example.org" for i in range(args.batch - len(values))]
    if args.phones:
        values = [f"+4930{i * step:08d}" for i in range(args.batch // 2)]
        values += [f"+4940{i:08d}" for i in range(args.batch - len(values))]
    asked = [v.upper() if i % 4 == 0 else v for i, v in enumerate(values)]
    with psycopg.connect(dsn(args.url), autocommit=True) as admin:
        print(f"loading {rows:,} rows into {schema}.archive ...", flush=True)
        t0 = time.perf_counter()
        load(admin, schema, rows)
        print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            return run(args.url, admin, schema, asked, values, repeats, phones=args.phones)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def run(url: str, admin: psycopg.Connection, schema: str, asked: list[str],
        values: list[str], repeats: int, *, phones: bool = False) -> int:
    settings = SqlSettings.model_validate({
        "url": url, "schema": schema,
        "tables": {"customers": {"identifiers": {"email": "email"}}}})
    connector = SqlConnector("bench", settings)
    connector.check()
    scan = connector.deep_scan()
    statements: list[str] = []

    @sa.event.listens_for(connector.engine, "before_cursor_execute")
    def _count(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if "archive" in statement:
            statements.append(statement)

    hand_sql = sql.SQL("SELECT count(*) FROM {}.archive WHERE email = ANY(%s) OR "
                       "phone = ANY(%s) OR note = ANY(%s)").format(sql.Identifier(schema))
    lowered = [v.lower() for v in asked]
    whole_sql = hand_sql
    if phones:
        def squeezed(col: str) -> sql.Composable:
            out: sql.Composable = sql.Identifier(col)
            for sep in (" ", "-", ".", "(", ")", "/"):
                out = sql.SQL("replace({}, {}, '')").format(out, sql.Literal(sep))
            return sql.SQL("right({}, 10) = ANY(%s)").format(out)
        hand_sql = sql.SQL("{} OR {}").format(hand_sql, sql.SQL(" OR ").join(
            squeezed(c) for c in ("email", "phone", "note")))
    keys = [v[3:] for v in lowered]  # +49 and the national significant number
    deep_times, hand_times, whole_times = [], [], []
    hits: dict[str, dict[str, int]] = {}
    hand_count = 0
    for i in range(repeats + 1):  # the first round warms the caches and is not counted
        statements.clear()
        t0 = time.perf_counter()
        hits = scan.scan(asked)
        t1 = time.perf_counter()
        params = [lowered] * 3 + ([keys] * 3 if phones else [])
        hand_count = admin.execute(hand_sql, params).fetchone()[0]
        t2 = time.perf_counter()
        if phones:
            admin.execute(whole_sql, [lowered] * 3).fetchone()
        t3 = time.perf_counter()
        if i:
            deep_times.append(t1 - t0)
            hand_times.append(t2 - t1)
            whole_times.append(t3 - t2)
    connector.close()
    found = sum(sum(c.values()) for c in hits.values())
    deep, hand = statistics.median(deep_times), statistics.median(hand_times)
    ratio = deep / hand
    one_pass = len(statements) == 1
    print(f"batch {len(asked)} subjects, {len(values) // 2} in the archive")
    print(f"deep scan : {deep * 1000:8.1f} ms (median of {repeats}), "
          f"{len(statements)} statement(s) on the archive, {found} rows matched")
    print(f"hand      : {hand * 1000:8.1f} ms (median of {repeats}), {hand_count} rows counted")
    if phones:
        whole = statistics.median(whole_times)
        print(f"whole values only (no written forms): {whole * 1000:.1f} ms: written forms "
              f"cost {deep / whole:.2f}x a whole-value scan")
    print(f"ratio deep/hand = {ratio:.2f} (target <= {TARGET_RATIO}): "
          f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'}")
    print(f"one pass over the archive: {'PASS' if one_pass else 'FAIL'}")
    same = found == hand_count == len(values) // 2
    print(f"same rows found by both: {'PASS' if same else 'FAIL'}")
    return 0 if ratio <= TARGET_RATIO and one_pass and same else 1


if __name__ == "__main__":
    sys.exit(main())
