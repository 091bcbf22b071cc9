"""Benchmark: the sql connector's deep scan (verification beyond the mapping) vs a hand-written
``SELECT count(*) ... WHERE col = ANY(...)`` over the same columns (PostgreSQL).

One schema: a small mapped ``customers`` table and an unmapped ``archive`` of --rows rows
(default 1,000,000) with three text columns (email, phone, note). A batch of --batch subjects
(default 1,000; half of them present in the archive, some in upper case) is searched:

- **deep scan**: ``SqlConnector.deep_scan().scan(values)`` (what verification and
  ``erasure systems check --deep`` run): statements counted, rows matched;
- **hand**: ``SELECT count(*) FROM archive WHERE email = ANY(%s) OR phone = ANY(%s) OR
  note = ANY(%s)``, one array parameter (exact, case-sensitive: the least SQL that looks),
  plus the deep scan's own test for addresses inside text on each column (an ``@`` and a
  character no bare address holds). The whole-value statement alone is printed too.

Targets: one statement for the archive (one sequential pass) and deep-scan time <= 2x the
hand-written time (medians, alternating). The schema is dropped afterwards.

``--text`` (with ``--engine postgresql|sqlite|mariadb|all``) writes the numbers inside
sentences (``called from 030 12345678 about order 17, call back after 5pm``) and times, for a
batch of phones, the deep scan against three statements written by hand in the same run:
the whole-value scan (the ratios' baseline), the previous design (values whose digits END
with a number: misses text after it) and the best statement that finds a number anywhere
in a value (see ``text_mode``).

    .venv/bin/python bench/sql_deep_scan.py [--quick] [--rows 1000000] [--batch 1000]
    .venv/bin/python bench/sql_deep_scan.py --text --engine all [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import sqlalchemy as sa
from erasure_sql import SqlConnector, SqlSettings
from psycopg import sql

URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 2.0
#: --text: the deep scan's time over the best hand-written statement that finds as much
TEXT_TARGET = 1.0


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
    ap.add_argument("--text", action="store_true", help="phones inside sentences")
    ap.add_argument("--engine", default="postgresql",
                    choices=["postgresql", "sqlite", "mariadb", "all"], help="with --text")
    args = ap.parse_args(argv)
    rows, repeats = (200_000, 3) if args.quick else (args.rows, args.repeats)
    if args.text:
        kinds = ["sqlite", "postgresql", "mariadb"] if args.engine == "all" else [args.engine]
        return max(text_mode(kind, rows, args.batch, repeats) for kind in kinds)
    schema = f"bench_deep_{uuid.uuid4().hex[:12]}"
    # Half the batch is in the archive (every other one in upper case), half is not.
    step = max(1, rows // args.batch)
    values = [f"user{i * step}@example.org" for i in range(args.batch // 2)]
    values += [f"nobody{i}@example.org" for i in range(args.batch - len(values))]
    asked = [v.upper() if i % 4 == 0 else v for i, v in enumerate(values)]
    with psycopg.connect(dsn(args.url), autocommit=True) as admin:
        print(f"loading {rows:,} rows into {schema}.archive ...", flush=True)
        t0 = time.perf_counter()
        load(admin, schema, rows)
        print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            return run(args.url, admin, schema, asked, values, repeats)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def run(url: str, admin: psycopg.Connection, schema: str, asked: list[str],
        values: list[str], repeats: int) -> int:
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
    # The deep scan also looks for addresses inside text: the same statement lets through
    # values with an @ and a character no bare address holds. The hand-written statement
    # makes the same test, so the ratio is what the deep scan adds to the SQL that looks.
    gate = sql.SQL(" OR ").join(
        sql.SQL("({c} LIKE '%%@%%' AND ({c} COLLATE \"C\" ~ '[^A-Za-z0-9._@-]' OR {c} LIKE "
                "'%%@%%.'))").format(c=sql.Identifier(c)) for c in ("email", "phone", "note"))
    hand_sql = sql.SQL("{} OR {}").format(hand_sql, gate)
    deep_times, hand_times, whole_times = [], [], []
    hits: dict[str, dict[str, int]] = {}
    hand_count = 0
    for i in range(repeats + 1):  # the first round warms the caches and is not counted
        statements.clear()
        t0 = time.perf_counter()
        hits = scan.scan(asked)
        t1 = time.perf_counter()
        hand_count = admin.execute(hand_sql, [lowered] * 3).fetchone()[0]
        t2 = time.perf_counter()
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
    whole = statistics.median(whole_times)
    print(f"whole values only (no test for text): {whole * 1000:.1f} ms; the deep scan costs "
          f"{deep / whole:.2f}x that (load {_load()})")
    print(f"ratio deep/hand = {ratio:.2f} (target <= {TARGET_RATIO}): "
          f"{'PASS' if ratio <= TARGET_RATIO else 'FAIL'}")
    print(f"one pass over the archive: {'PASS' if one_pass else 'FAIL'}")
    same = found == hand_count == len(values) // 2
    print(f"same rows found by both: {'PASS' if same else 'FAIL'}")
    return 0 if ratio <= TARGET_RATIO and one_pass and same else 1


# --text: numbers inside sentences, on every engine --------------------------------------

SQLITE_SEPARATORS = (" ", "-", ".", "(", ")", "/")


def text_rows(rows: int) -> Iterator[tuple[int, str, str, str]]:
    """(id, email, phone, note): every other note holds a number in national form with
    text after it; the others hold fewer digits than any number."""
    for i in range(rows):
        note = (f"called from 030 {i:08d} about order {i % 977}, call back after 5pm"
                if i % 2 == 0 else f"note {i}: asked about invoice {i % 977}")
        yield i, f"user{i}@example.org", f"+4930{i:08d}", note


class TextWorld:
    """One engine's archive, its connector settings and the hand-written statements."""

    def __init__(self, kind: str, rows: int, tmp: str) -> None:
        self.kind = kind
        self.name = f"bench_text_{uuid.uuid4().hex[:12]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp}/archive.db"
            self.admin = sa.create_engine(self.url)
            self.schema: str | None = None
        elif kind == "postgresql":
            self.url, self.schema = URL, self.name
            self.admin = sa.create_engine(URL, isolation_level="AUTOCOMMIT")
        else:
            base = "mysql+pymysql://root@127.0.0.1:3306"
            self.admin = sa.create_engine(f"{base}/test", isolation_level="AUTOCOMMIT")
            self.url, self.schema = f"{base}/{self.name}", None
        self.engine = self.admin if kind != "mariadb" else None
        meta = sa.MetaData(schema=self.schema)
        sa.Table("customers", meta, sa.Column("id", sa.BigInteger, primary_key=True),
                 sa.Column("email", sa.String(255)))
        self.archive = sa.Table(
            "archive", meta,
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            *(sa.Column(c, sa.Text if c == "note" else sa.String(255))
              for c in ("email", "phone", "note")))
        with self.admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(sa.schema.CreateSchema(self.name))
            elif kind == "mariadb":
                conn.execute(sa.text("CREATE DATABASE " + self.quote(self.name)))
        if kind == "mariadb":
            self.engine = sa.create_engine(self.url)
        assert self.engine is not None
        meta.create_all(self.engine)
        cols = ("id", "email", "phone", "note")
        with self.engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            for row in text_rows(rows):
                batch.append(dict(zip(cols, row, strict=True)))
                if len(batch) == 10_000:
                    conn.execute(self.archive.insert(), batch)
                    batch = []
            if batch:
                conn.execute(self.archive.insert(), batch)
        with self.admin.connect() as conn:
            if kind == "postgresql":
                conn.execute(sa.text(f"VACUUM (ANALYZE) {self.table()}"))
            elif kind == "mariadb":
                conn.execute(sa.text(f"ANALYZE TABLE {self.table()}"))

    def quote(self, name: str) -> str:
        return self.admin.dialect.identifier_preparer.quote(name)

    def table(self) -> str:
        """The archive's name, quoted by the dialect (names are the bench's own)."""
        return (f"{self.quote(self.schema)}." if self.schema else "") + self.quote("archive")

    def drop(self) -> None:
        assert self.engine is not None
        self.engine.dispose()
        with self.admin.connect() as conn:
            if self.kind == "postgresql":
                conn.execute(sa.schema.DropSchema(self.name, cascade=True))
            elif self.kind == "mariadb":
                conn.execute(sa.text("DROP DATABASE " + self.quote(self.name)))
        self.admin.dispose()

    def statements(self, keys: list[str]) -> dict[str, Callable[[sa.Connection], int]]:
        """Hand-written counts of the archive's rows, by what they find."""
        cols = [self.quote(c) for c in ("email", "phone", "note")]
        t, n = self.table(), len(keys[0])
        numbers = ["+49" + k for k in keys]
        if self.kind == "postgresql":
            whole = " OR ".join(f"{c} = ANY(:numbers)" for c in cols)
            squeeze = "{}"
            for sep in SQLITE_SEPARATORS:
                squeeze = squeeze.replace("{}", f"replace({{}}, '{sep}', '')")
            ends = " OR ".join(f"right({squeeze.format(c)}, {n}) = ANY(:keys)" for c in cols)
            # the digits alone (regexp_replace), then every window of the number's length
            # looked up in the hashed array: faster than a regular expression of the batch
            digits = "(SELECT regexp_replace({}, '[^0-9]+', '', 'g') AS d) s"
            anywhere = " OR ".join(
                "EXISTS (SELECT 1 FROM " + digits.format(c)  # noqa: S608 - quoted names
                + f", generate_series(1, length(s.d) - {n - 1}) g"
                f" WHERE substr(s.d, g, {n}) = ANY(:keys))" for c in cols)
            params: dict[str, Any] = {"numbers": numbers, "keys": keys}
        else:
            squeeze = "{}"
            for sep in SQLITE_SEPARATORS:
                squeeze = squeeze.replace("{}", f"replace({{}}, '{sep}', '')")
            right = f"substr({{}}, -{n})" if self.kind == "sqlite" else f"right({{}}, {n})"
            if self.kind == "sqlite":
                listed = " IN (SELECT value FROM json_each(:{}))"
                whole = " OR ".join(c + listed.format("numbers") for c in cols)
                ends = " OR ".join(right.format(squeeze.format(c)) + listed.format("keys")
                                   for c in cols)
                # No regular expressions, no generate_series: windows of the squeezed value
                # from a JSON array of positions took 87 s for 20,000 rows. What anyone
                # does with SQLite instead: read the values and search them in Python.
                anywhere = "SELECT email, phone, note FROM " + t  # noqa: S608 - quoted names
                params = {"numbers": json.dumps(numbers), "keys": json.dumps(keys)}
            else:
                whole = " OR ".join(f"{c} IN :numbers" for c in cols)
                ends = " OR ".join(f"{right.format(squeeze.format(c))} IN :keys" for c in cols)
                # PCRE2: one alternation of the batch over the digits alone (windows over a
                # sequence table measured 18x slower)
                anywhere = " OR ".join(f"REGEXP_REPLACE({c}, '[^0-9]+', '') REGEXP :pattern"
                                       for c in cols)
                params = {"numbers": numbers, "keys": keys, "pattern": "|".join(keys)}
        count = "SELECT count(*) FROM " + t + " WHERE "  # noqa: S608 - quoted names

        def counted(stmt: str) -> Callable[[sa.Connection], int]:
            return lambda conn: conn.execute(sa.text(stmt), params).scalar_one()

        best = counted(count + anywhere)
        if self.kind == "sqlite":
            best = functools.partial(_python_count, anywhere, keys)
        return {"whole values (baseline)": counted(count + whole),
                "previous design: digits ending with a number": counted(
                    count + f"({whole}) OR {ends}"),
                "best hand-written: a number anywhere": best}


def text_mode(kind: str, rows: int, batch: int, repeats: int) -> int:
    """Time the deep scan for phones written inside sentences on one engine; 0 if PASS."""
    import tempfile

    step = max(2, rows // batch) // 2 * 2  # even: the note holds the number too
    keys = [f"30{i * step:08d}" for i in range(batch // 2)]
    keys += [f"40{i:08d}" for i in range(batch - len(keys))]
    asked = ["+49" + k for k in keys]
    expected = 2 * (batch // 2)  # each present number: its phone and its note
    with tempfile.TemporaryDirectory() as tmp:
        print(f"[{kind}] loading {rows:,} rows ...", flush=True)
        t0 = time.perf_counter()
        world = TextWorld(kind, rows, tmp)
        print(f"[{kind}] loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            return _time_text(world, asked, keys, expected, repeats)
        finally:
            world.drop()


def _time_text(world: TextWorld, asked: list[str], keys: list[str], expected: int,
               repeats: int) -> int:
    settings = SqlSettings.model_validate({
        "url": world.url, "phone_region": "DE",
        **({"schema": world.schema} if world.schema else {}),
        "tables": {"customers": {"identifiers": {"email": "email"}}}})
    connector = SqlConnector("bench", settings)
    connector.check()
    scan = connector.deep_scan()
    statements = world.statements(keys)
    times: dict[str, list[float]] = {"deep scan": [], **{k: [] for k in statements}}
    counts: dict[str, int] = {}
    assert world.engine is not None
    for i in range(repeats + 1):  # the first round warms the caches and is not counted
        t0 = time.perf_counter()
        hits = scan.scan(asked)
        took = time.perf_counter() - t0
        counts["deep scan"] = sum(sum(c.values()) for c in hits.values())
        if i:
            times["deep scan"].append(took)
        for label, count in statements.items():
            with world.engine.connect() as conn:
                t0 = time.perf_counter()
                counts[label] = count(conn)
                took = time.perf_counter() - t0
            if i:
                times[label].append(took)
    connector.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["whole values (baseline)"]
    print(f"[{world.kind}] {len(asked)} phones asked, {len(asked) // 2} written in the archive "
          f"(E.164 in one column, inside a sentence in another); load {_load()}")
    for label, t in medians.items():
        what = "places found" if label == "deep scan" else "rows counted"
        print(f"[{world.kind}] {label:48s} {t * 1000:9.1f} ms  {t / base:6.2f}x  "
              f"{counts[label]} {what}")
    best = medians["best hand-written: a number anywhere"]
    ratio = medians["deep scan"] / best
    found = counts["deep scan"] == expected
    print(f"[{world.kind}] deep scan / best hand-written = {ratio:.2f} (target <= "
          f"{TEXT_TARGET}): {'PASS' if ratio <= TEXT_TARGET else 'FAIL'}; every number found "
          f"({counts['deep scan']} of {expected}): {'PASS' if found else 'FAIL'}", flush=True)
    return 0 if ratio <= TEXT_TARGET and found else 1


def _python_count(select: str, keys: list[str], conn: sa.Connection) -> int:
    """Rows with a value whose digits hold a key: every value read, each window of its
    digits looked up in a set (a regular expression of the batch: 10x slower)."""
    import re

    digits, batch, n = re.compile(r"[^0-9]+"), set(keys), len(keys[0])

    def holds(value: str | None) -> bool:
        d = digits.sub("", value or "")
        return any(d[i:i + n] in batch for i in range(len(d) - n + 1))

    return sum(1 for row in conn.execute(sa.text(select)) if any(map(holds, row)))


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
