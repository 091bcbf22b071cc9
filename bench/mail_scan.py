"""Benchmark: the mail connector's find over a large mbox for 1,000 subjects at once.

Against ``grep -c -F -f patterns FILE`` on the same file, in the same run: grep's fixed-string
multi-pattern search (Aho-Corasick / Commentz-Walter) is the floor for "read the bytes once
and look for many needles". The connector does that (pyahocorasick), and also tracks message
boundaries, parses the candidates and checks their addresses exactly. Target (issue 13): at
most **2x** grep's time. Memory: the peak RSS of a find over the file and over its first
half, each in a fresh process, must not differ by more than 64 MiB (flat, not proportional).

    .venv/bin/python bench/mail_scan.py [--quick] [--size-mb 1024] [--subjects 1000]

The default is the issue's 1 GB (about half a minute on 2 cores); ``--quick`` makes 64 MB.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 2.0
FLAT_MIB = 64

_BODY = ("Dear colleague,\n\nplease find the minutes of our meeting attached. The figures for "
         "the third quarter are in line with the forecast; the open items are listed below.\n"
         "\n- review the supplier contracts\n- renew the office lease\n- plan the audit\n\n"
         "Kind regards\n") * 6


def make_mbox(path: Path, size: int, subjects: list[str], seed: int = 7) -> int:
    """Write an mbox of about ``size`` bytes; every 500th message is from or to a subject.
    Returns the number of messages."""
    rnd = random.Random(seed)
    people = [f"person{n}@corp{n % 97}.example" for n in range(50_000)]
    written = n = 0
    with path.open("wb", buffering=1 << 20) as fh:
        while written < size:
            sender, to = rnd.choice(people), rnd.choice(people)
            if n % 500 == 0:
                sender = subjects[(n // 500) % len(subjects)]
            msg = (f"From {sender} Thu Dec  3 10:{n % 60:02d}:00 2026\n"
                   f"From: Someone <{sender}>\nTo: {to}\nCc: team{n % 13}@corp.example\n"
                   f"Subject: Minutes {n}\nDate: Thu, 3 Dec 2026 10:00:00 +0000\n"
                   f"Message-ID: <{n}@bench.example>\n\n{_BODY}\n").encode()
            fh.write(msg)
            written += len(msg)
            n += 1
    return n


def time_grep(path: Path, patterns: Path, repeats: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(["grep", "-c", "-F", "-f", str(patterns), str(path)],  # noqa: S607
                             capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        count = int(out.stdout.strip() or 0)
    return statistics.median(times), count


_CHILD = """
import resource, sys, time
from pathlib import Path
from erasure import Identifier, IdentifierType, Subject
from erasure_mail import MailConnector, MailSettings
emails = Path(sys.argv[2]).read_text().split()
subjects = [Subject(f"s{i}", (Identifier.parse(IdentifierType.EMAIL, e),))
            for i, e in enumerate(emails)]
conn = MailConnector("bench", MailSettings(backend="mbox", path=Path(sys.argv[1])))
t0 = time.perf_counter()
found = sum(1 for _ in conn.find(subjects))
took = time.perf_counter() - t0
print(took, found, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def time_find(path: Path, emails: Path, repeats: int) -> tuple[float, int, int]:
    """(median seconds of the find alone, findings, peak RSS MiB), each in a new process."""
    times, found, rss = [], 0, 0
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(emails)],
                             capture_output=True, text=True, check=True)
        took, found_s, rss_s = out.stdout.split()
        times.append(float(took))
        found, rss = int(found_s), max(rss, int(rss_s))
    return statistics.median(times), found, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="64 MB, one repeat")
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    size_mb, repeats = (64, 1) if args.quick else (args.size_mb, args.repeats)
    if shutil.which("grep") is None:
        print("grep not found: no baseline", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="erasure-bench-mail-"))
    try:
        subjects = [f"subject{n}@customers.example" for n in range(args.subjects)]
        emails = tmp / "patterns.txt"
        emails.write_text("\n".join(subjects) + "\n")
        half, full = tmp / "half.mbox", tmp / "full.mbox"
        t0 = time.perf_counter()
        make_mbox(half, size_mb << 19, subjects)
        messages = make_mbox(full, size_mb << 20, subjects)
        print(f"mbox: {full.stat().st_size / 1e6:.0f} MB, {messages} messages, "
              f"{args.subjects} subjects (made in {time.perf_counter() - t0:.1f} s)")
        grep_s, lines = time_grep(full, emails, repeats)
        ours_s, found, rss_full = time_find(full, emails, repeats)
        _, _, rss_half = time_find(half, emails, 1)
        ratio = ours_s / grep_s
        print(f"grep -c -F -f: {grep_s:.2f} s ({lines} matching lines)")
        print(f"mail find:     {ours_s:.2f} s ({found} findings, "
              f"{full.stat().st_size / ours_s / 1e6:.0f} MB/s)")
        ok_ratio = ratio <= TARGET
        print(f"ratio find / grep = {ratio:.2f} (target <= {TARGET}) "
              f"{'PASS' if ok_ratio else 'FAIL'}")
        grown = rss_full - rss_half
        ok_mem = grown <= FLAT_MIB
        print(f"peak RSS: {rss_half} MiB over half the file, {rss_full} MiB over all of it "
              f"(+{grown} MiB; flat if <= {FLAT_MIB}) {'PASS' if ok_mem else 'FAIL'}")
        if found != messages // 500 + (1 if messages % 500 else 0):
            print(f"FAIL: expected {messages // 500 + bool(messages % 500)} findings")
            return 1
        return 0 if ok_ratio and ok_mem else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
