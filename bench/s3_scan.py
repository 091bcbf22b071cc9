"""Benchmark: the s3 connector's content scan against ``grep -c -F -f`` on the same bytes.

1,000 subjects (an email and a phone each: 2,000 patterns) are searched in a JSON Lines
file of ``--mb`` megabytes on local disk, once with the connector's scan (the code
``find`` runs on every object version: ``decoded`` -> ``blocks`` -> Aho-Corasick over the
lower-cased block -> exact re-check of candidate lines) and once with
``grep -c -F -f patterns file``. The scan also finds phones written other ways
(``+49 30 ...``, issue 27): each block's digits alone are searched for the numbers'
national significant numbers, so the baseline does that too, with coreutils:
``tr -cd '0-9\n' < file | grep -c -F -f keys``. Target: the scan's throughput is at least
**0.5x** the baseline's (the issue's figure, for 500 MB; the default size). Both must
count the same lines. The cost of written forms is shown as the scan's time over the
same scan with E.164 only.

Memory: the scan's peak traced allocation (tracemalloc) over a file 4x larger must stay
within 1.5x of the smaller one: objects are streamed in blocks, never held whole.

    .venv/bin/python bench/s3_scan.py [--quick] [--mb 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

TARGET = 0.5
MEMORY_TARGET = 1.5
SUBJECTS = 1000
USERS = 200_000  # distinct people in the log; every 200th is a subject


def write_jsonl(path: Path, megabytes: float) -> int:
    """A log of events by USERS people; returns the number of lines."""
    target = int(megabytes * 1e6)
    pad = "lorem ipsum dolor sit amet consectetur " * 2
    size = lines = 0
    with path.open("w", encoding="utf-8") as fh:
        while size < target:
            block = []
            for n in range(lines, lines + 10_000):
                u = (n * 7919) % USERS
                block.append(f'{{"seq": {n}, "event": "page_view", '
                             f'"email": "user{u}@example.org", "phone": "+4930{u:07d}", '
                             f'"path": "/shop/item/{n % 977}", "note": "{pad}"}}\n')
            text = "".join(block)
            fh.write(text)
            size += len(text)
            lines += len(block)
    return lines


def subjects() -> list[object]:
    from erasure import Identifier, Subject

    out = []
    for s in range(SUBJECTS):
        u = s * (USERS // SUBJECTS)
        out.append(Subject(f"req-{s}", (Identifier.parse("email", f"user{u}@example.org"),
                                        Identifier.parse("phone", f"+4930{u:07d}"))))
    return out


def scan(path: Path, people: list[object]) -> int:
    """The connector's scan of one object version, reading the file as S3 would stream it;
    returns the number of rows holding a subject's identifier."""
    from erasure_s3.locate import VersionScan, scan_lines
    from erasure_s3.matching import Matcher
    from erasure_s3.stream import decoded

    matcher = Matcher(people, {})  # type: ignore[arg-type]
    out = VersionScan()
    with path.open("rb") as fh:
        scan_lines(decoded(fh), "jsonl", matcher, out)
    return len(out.rows)  # every line of the log differs (seq), so rows = lines


def grep(path: Path, patterns: Path) -> int:
    res = subprocess.run(["grep", "-c", "-F", "-f", str(patterns), str(path)],
                         capture_output=True, text=True, check=False, env={"LC_ALL": "C"})
    return int(res.stdout.strip() or 0)


def digits_grep(path: Path, keys: Path) -> int:
    """The written-form prefilter by coreutils: each line's digits, grepped for the keys."""
    with path.open("rb") as fh:
        tr = subprocess.Popen(["tr", "-cd", "0-9\n"], stdin=fh,  # noqa: S607
                              stdout=subprocess.PIPE, env={"LC_ALL": "C"})
        res = subprocess.run(["grep", "-c", "-F", "-f", str(keys)],  # noqa: S607
                             stdin=tr.stdout, capture_output=True, text=True, check=False,
                             env={"LC_ALL": "C"})
        tr.wait()
    return int(res.stdout.strip() or 0)


def literal_only(path: Path, people: list[object]) -> int:
    """The scan as it was before written forms: phones in E.164 only."""
    import erasure_s3.matching as matching

    real = matching.PhoneFinder
    matching.PhoneFinder = lambda _numbers, region=None: real((), region)  # type: ignore
    try:
        return scan(path, people)
    finally:
        matching.PhoneFinder = real  # type: ignore[misc]


def timed(fn: object, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def peak(path: Path, people: list[object]) -> int:
    tracemalloc.start()
    try:
        scan(path, people)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 MB, 2 repeats")
    ap.add_argument("--mb", type=float, default=None, help="size of the JSON Lines file")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    mb = args.mb or (100.0 if args.quick else 500.0)
    repeats = args.repeats or (2 if args.quick else 3)
    if shutil.which("grep") is None:
        print("grep not found")
        return 1
    people = subjects()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, patterns = folder / "events.jsonl", folder / "patterns.txt"
        t0 = time.perf_counter()
        lines = write_jsonl(data, mb)
        size = data.stat().st_size
        values = [i.value for s in people for i in s.identifiers]  # type: ignore[attr-defined]
        patterns.write_text("".join(f"{v}\n" for v in values), encoding="utf-8")
        keys = folder / "keys.txt"  # +49 and the national significant number
        keys.write_text("".join(f"{v[3:]}\n" for v in values if v.startswith("+")))
        print(f"data: {size / 1e6:.0f} MB, {lines:,} lines, {SUBJECTS} subjects "
              f"({2 * SUBJECTS} patterns), written in {time.perf_counter() - t0:.1f} s")
        grep(data, patterns)  # warm the page cache for both
        g_time, g_count = timed(lambda: grep(data, patterns), repeats)
        d_time, _ = timed(lambda: digits_grep(data, keys), repeats)
        s_time, s_count = timed(lambda: scan(data, people), repeats)
        e_time, _ = timed(lambda: literal_only(data, people), repeats)
        g_rate, s_rate = size / (g_time + d_time) / 1e6, size / s_time / 1e6
        ratio = s_rate / g_rate
        print(f"grep -c -F -f:  {g_time:6.2f} s  {size / g_time / 1e6:7.0f} MB/s  "
              f"{g_count:,} lines")
        print(f"+ tr | grep:    {d_time:6.2f} s  (digits, national numbers): "
              f"{g_rate:7.0f} MB/s together")
        print(f"connector scan: {s_time:6.2f} s  {s_rate:7.0f} MB/s  {s_count:,} rows")
        print(f"written forms of phones cost {s_time / e_time:.2f}x the scan of E.164 only "
              f"({e_time:.2f} s)")
        same = g_count == s_count
        print(f"throughput ratio scan/baseline = {ratio:.2f} (target >= {TARGET}): "
              f"{'PASS' if ratio >= TARGET else 'FAIL'}; same lines: {same}")

        small, large = folder / "small.jsonl", folder / "large.jsonl"
        base = 10.0 if args.quick else 25.0
        write_jsonl(small, base)
        write_jsonl(large, 4 * base)
        p_small, p_large = peak(small, people), peak(large, people)
        m_ratio = p_large / p_small
        print(f"peak traced memory: {base:.0f} MB file {p_small / 1e6:.1f} MB, "
              f"{4 * base:.0f} MB file {p_large / 1e6:.1f} MB: ratio {m_ratio:.2f} "
              f"(target <= {MEMORY_TARGET}): {'PASS' if m_ratio <= MEMORY_TARGET else 'FAIL'}")
    ok = ratio >= TARGET and same and m_ratio <= MEMORY_TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
