"""Scale benchmark: time per subject stays flat from 1,000 to 10,000 subjects.

A real Orchestrator with 5 in-memory systems (no latency) and a SQLite ledger file in a
temporary folder: ``submit_many`` of N verified ERASURE requests, then ``run`` until none
is left. Every subject has an email and a customer_id; each system holds a profile (email,
customer_id) and two orders (customer_id) per subject, and the requests give both
identifiers. Each size uses its own fresh ledger, keys and stores. Target: time per subject
at the large size <= 1.2x the time per subject at the small size.

Run: ``.venv/bin/python bench/scale.py [--quick] [--repeat N] [--sizes SMALL LARGE]``.
``--quick`` is 500 vs 5,000 subjects. Sizes alternate (small, large, small, ...) and the
figures are medians over the repeats. Exit status 0 on PASS, 1 on FAIL (or a wrong result).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from erasure.config import parse_config
from erasure.models import RequestType
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.plugins import PluginHost
from erasure.testing.memory import MemoryStore

TARGET = 1.2
SYSTEMS = 5
ORDERS = 2


@dataclass
class Result:
    subjects: int
    submit: float
    run: float
    cpu: float = 0.0  # process CPU seconds (all threads) of submit + run


    @property
    def total(self) -> float:
        return self.submit + self.run

    @property
    def per_subject_ms(self) -> float:
        return self.total / self.subjects * 1000

    @property
    def cpu_per_subject_ms(self) -> float:
        return self.cpu / self.subjects * 1000


def email(i: int) -> str:
    return f"subject{i}@example.com"


def customer_id(i: int) -> str:
    return f"C-{i:07d}"


def seed(prefix: str, names: Sequence[str], n: int) -> None:
    for name in names:
        store = MemoryStore.named(f"{prefix}:{name}")
        for i in range(n):
            cid = customer_id(i)
            store.add(f"profile-{i}", "profile", {"email": email(i), "customer_id": cid,
                                                  "plan": "pro"})
            for k in range(ORDERS):
                store.add(f"order-{i}-{k}", "order", {"customer_id": cid, "amount": 10 + k})


def run_once(n: int, plugins: PluginHost, tag: str,
             profile: Path | None = None) -> Result:
    """One fresh ledger and fresh stores: submit n erasure requests and run them all."""
    names = [f"sys{i}" for i in range(1, SYSTEMS + 1)]
    prefix = f"bench-scale-{tag}"
    seed(prefix, names, n)
    specs = [
        RequestSpec(RequestType.ERASURE, (("email", email(i)), ("customer_id", customer_id(i))),
                    ticket=f"T-{i}", verified=True)
        for i in range(n)
    ]
    with tempfile.TemporaryDirectory(prefix="erasure-bench-") as tmp:
        config = parse_config({
            "erasure": {"state_dir": tmp},
            "systems": {n_: {"connector": "memory", "store": f"{prefix}:{n_}"} for n_ in names},
            "id_spaces": {"customer": {"type": "customer_id", "systems": list(names)}},
        })
        orch = Orchestrator(config, plugins)
        try:
            orch.keys  # noqa: B018 -- create the keys before timing
            orch.ledger  # noqa: B018 -- and the ledger file with its tables
            prof = None
            if profile is not None:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            c0 = time.process_time()
            t0 = time.perf_counter()
            orch.submit_many(specs)
            t1 = time.perf_counter()
            summary = orch.run()
            t2 = time.perf_counter()
            c2 = time.process_time()
            if prof is not None and profile is not None:
                prof.disable()
                prof.dump_stats(str(profile))
            left = [MemoryStore.named(f"{prefix}:{s}").items for s in names]
            if len(summary.finished) != n or not summary.ok or any(left):
                raise SystemExit(
                    f"scale: wrong result at {n} subjects: {len(summary.finished)} finished, "
                    f"outcomes {dict(summary.outcomes)}, "
                    f"{sum(len(x) for x in left)} items left"
                )
        finally:
            orch.close()
    for s in names:
        MemoryStore.reset(f"{prefix}:{s}")
    return Result(n, t1 - t0, t2 - t1, c2 - c0)


def median_result(results: Sequence[Result]) -> Result:
    return Result(
        results[0].subjects,
        statistics.median(r.submit for r in results),
        statistics.median(r.run for r in results),
        statistics.median(r.cpu for r in results),
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Time per subject at two sizes (see the docstring).")
    p.add_argument("--quick", action="store_true", help="500 vs 5,000 subjects")
    p.add_argument("--repeat", type=int, default=None, help="runs per size (default 3)")
    p.add_argument("--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"), default=None)
    p.add_argument("--profile", type=Path, default=None,
                   help="write a cProfile of one extra large run to this file")
    args = p.parse_args(argv)
    small, large = args.sizes or ((500, 5_000) if args.quick else (1_000, 10_000))
    repeat = args.repeat or 3

    # Each fresh state folder gets new keys; the orchestrator warns about that every time.
    logging.getLogger("erasure.orchestrator").setLevel(logging.ERROR)
    plugins = PluginHost.load()
    print(f"scale: {SYSTEMS} in-memory systems, {1 + ORDERS} items per subject per system, "
          f"SQLite ledger, erasure requests; {small:,} vs {large:,} subjects, "
          f"median of {repeat}")
    run_once(50, plugins, "warmup")  # imports, first-use costs
    runs: dict[int, list[Result]] = {small: [], large: []}
    for r in range(repeat):
        for n in (small, large):
            res = run_once(n, plugins, f"{n}-{r}")
            runs[n].append(res)
            print(f"  run {r + 1} {n:>7,} subjects: submit {res.submit:7.2f} s  "
                  f"run {res.run:7.2f} s  {res.per_subject_ms:6.2f} ms/subject  "
                  f"(cpu {res.cpu_per_subject_ms:6.2f} ms/subject)", flush=True)
    med = {n: median_result(rs) for n, rs in runs.items()}
    # The compared figure: the median over runs of (submit + run) / subjects.
    per = {n: statistics.median(r.per_subject_ms for r in rs) for n, rs in runs.items()}
    for n, m in med.items():
        print(f"  {n:>7,} subjects (median): submit {m.submit:7.2f} s "
              f"({m.submit / n * 1000:.2f} ms/subject)  run {m.run:7.2f} s "
              f"({m.run / n * 1000:.2f} ms/subject)  total {per[n] * n / 1000:7.2f} s  "
              f"{per[n]:.2f} ms/subject  {1000 / per[n]:,.0f} subjects/s  "
              f"cpu {m.cpu_per_subject_ms:.2f} ms/subject")
    ratio = per[large] / per[small]
    cpu_ratio = med[large].cpu_per_subject_ms / med[small].cpu_per_subject_ms
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    # For information: CPU time is less disturbed by other processes on a shared machine.
    print(f"  cpu-time ratio (for information): {cpu_ratio:.3f}")
    print(f"scale ratio (per subject at {large:,} / at {small:,}): {ratio:.3f}  "
          f"target <= {TARGET}  {verdict}")
    if args.profile is not None:
        run_once(large, plugins, "profile", profile=args.profile)
        print(f"  cProfile of one {large:,}-subject run written to {args.profile}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
