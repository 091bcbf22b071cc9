"""Fan-out benchmark: a find over 5 slow systems costs about as much as the slowest one alone.

Every system is an in-memory system whose calls each sleep ``--latency-ms`` (200 ms by
default). We time a find (``Orchestrator.plan`` of a FIND request: the find stage with its
identifier expansion rounds, nothing written) with all systems configured, and the same find
with each system configured on its own. Target: all-systems time <= 1.15x the slowest single
system's time.

The same comparison is made a second way, through the ledger: ``submit`` one FIND request
and ``run`` it (the timed part is ``run``: find, ledger writes, signed receipts); both must
meet the target.

Fairness: every system holds the same data (its own store), seeded so that a find takes the
maximum number of expansion rounds (``expansion_rounds = 2``, so 3 rounds) in both
configurations: the request's email finds a profile that reveals a customer_id, which finds
an order that reveals a user_id, which is looked up in the last round. The connector calls
are counted and must be the same per system in both configurations, else the run fails.

Run: ``.venv/bin/python bench/fanout.py [--quick] [--repeat N] [--latency-ms MS]``.
Exit status 0 on PASS, 1 on FAIL. Times are medians over the repeats (shared, noisy machines).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from erasure.config import parse_config
from erasure.hookspecs import hookimpl
from erasure.models import RequestType, Subject
from erasure.orchestrator import Orchestrator, RequestSpec
from erasure.plugins import PluginHost
from erasure.testing.memory import MemoryConnector, MemoryStore

TARGET = 1.15
SYSTEMS = 5
EXPANSION_ROUNDS = 2
EMAIL = "ada@example.com"
STORE_PREFIX = "bench-fanout"


class CountingMemory(MemoryConnector):
    """The memory connector, counting find calls per system (to check the rounds match)."""

    name = "bench-counting-memory"
    calls: Counter[str] = Counter()
    _lock = threading.Lock()

    def find(self, subjects: Sequence[Subject]) -> Iterator[Any]:
        with CountingMemory._lock:
            CountingMemory.calls[self.system] += 1
        return super().find(subjects)


class _Plugin:
    @hookimpl
    def erasure_register_connectors(self, registry: Any) -> None:
        registry.add(CountingMemory)


def seed(store_name: str) -> None:
    """Data for 3 expansion rounds: email -> customer_id -> user_id."""
    store = MemoryStore.named(store_name)
    store.add("profile-1", "profile", {"email": EMAIL, "customer_id": "C-1001", "plan": "pro"})
    store.add("order-1", "order", {"customer_id": "C-1001", "user_id": "u-77", "amount": 12})
    store.add("login-1", "login", {"user_id": "u-77", "ip": "192.0.2.1"})


def make_orchestrator(names: Sequence[str], plugins: PluginHost, latency_ms: float,
                      state_dir: str) -> Orchestrator:
    config = parse_config(
        {
            "erasure": {"state_dir": state_dir, "expansion_rounds": EXPANSION_ROUNDS,
                        "max_workers": 8},
            "systems": {
                n: {"connector": CountingMemory.name, "store": f"{STORE_PREFIX}:{n}",
                    "latency_ms": latency_ms}
                for n in names
            },
        },
        known_connectors={CountingMemory.name: CountingMemory},
    )
    return Orchestrator(config, plugins)


def time_find(orch: Orchestrator, repeat: int, via: str) -> tuple[float, dict[str, int], int]:
    """Median seconds of one find, find calls per system per find, and items found.

    ``via`` is "plan" (a dry run, nothing written) or "run" (one FIND request submitted to
    the ledger, then run; only the run is timed).
    """
    spec = RequestSpec(RequestType.FIND, (("email", EMAIL),))

    def once() -> tuple[float, int]:
        if via == "plan":
            t0 = time.perf_counter()
            lines = orch.plan(spec)
            return time.perf_counter() - t0, sum(line.found for line in lines)
        rid = orch.submit(spec)
        t0 = time.perf_counter()
        summary = orch.run(only=[rid])
        elapsed = time.perf_counter() - t0
        # Not summary.ok: a find request is recorded "partial" when it finds erasable items
        # (known bug, xfail in tests/test_cli.py); only the time is measured here.
        if summary.finished != [rid] or summary.outcomes.get("failed"):
            raise SystemExit(f"fan-out: the find request did not complete: {summary}")
        found = sum(r["body"]["counts"]["found"] for r in orch.ledger.receipts(rid))
        return elapsed, found

    once()  # warm-up: builds the connectors, the ledger and keys, first-use costs
    CountingMemory.calls.clear()
    times = []
    found = 0
    for _ in range(repeat):
        elapsed, found = once()
        times.append(elapsed)
    calls = {name: n // repeat for name, n in CountingMemory.calls.items()}
    return statistics.median(times), calls, found


def compare(names: Sequence[str], plugins: PluginHost, latency_ms: float, repeat: int,
            via: str, tmp: str) -> bool:
    """Time each system alone and all together; print the figures; True on PASS."""
    singles: dict[str, tuple[float, dict[str, int], int]] = {}
    for n in [*names, "all"]:
        orch = make_orchestrator(names if n == "all" else [n], plugins, latency_ms,
                                 f"{tmp}/{via}-{n}")
        try:
            singles[n] = time_find(orch, repeat, via)
        finally:
            orch.close()
    all_time, all_calls, all_found = singles.pop("all")
    print(f"via {via}:")
    for n, (t, calls, found) in singles.items():
        print(f"  single {n}: {t * 1000:8.1f} ms  ({calls.get(n, 0)} find calls, "
              f"{found} items)")
    slowest_name = max(singles, key=lambda n: singles[n][0])
    slowest = singles[slowest_name][0]
    ratio = all_time / slowest
    print(f"  all {len(names)} systems: {all_time * 1000:8.1f} ms  "
          f"({sum(all_calls.values())} find calls, {all_found} items)")
    print(f"  slowest single system ({slowest_name}): {slowest * 1000:.1f} ms")
    fair = True
    for n, (_t, calls, found) in singles.items():
        if calls.get(n, 0) != all_calls.get(n, 0) or found * len(names) != all_found:
            print(f"  UNFAIR: {n} made {calls.get(n, 0)} find calls alone but "
                  f"{all_calls.get(n, 0)} with all systems (or found other items)")
            fair = False
    ok = fair and ratio <= TARGET
    print(f"fan-out ratio via {via} (all / slowest single): {ratio:.3f}  target <= {TARGET}  "
          f"{'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--repeat", type=int, default=None, help="finds timed per configuration")
    p.add_argument("--latency-ms", type=float, default=200.0, help="sleep per connector call")
    args = p.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)

    names = [f"sys{i}" for i in range(1, SYSTEMS + 1)]
    MemoryStore.reset()
    for n in names:
        seed(f"{STORE_PREFIX}:{n}")
    plugins = PluginHost.load(extra_plugins=(_Plugin(),), entry_points=False)

    print(f"fan-out: {SYSTEMS} systems, {args.latency_ms:.0f} ms per connector call, "
          f"expansion_rounds={EXPANSION_ROUNDS}, median of {repeat}", flush=True)
    logging.getLogger("erasure.orchestrator").setLevel(logging.ERROR)  # "created new keys"
    with tempfile.TemporaryDirectory(prefix="erasure-bench-") as tmp:
        ok = [compare(names, plugins, args.latency_ms, repeat, via, tmp)
              for via in ("plan", "run")]
    MemoryStore.reset()
    print(f"fan-out: {'PASS' if all(ok) else 'FAIL'}")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
