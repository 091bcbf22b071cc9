"""Benchmark: telling a processor of N erasures, one message per run against one per request.

N erasure requests (default 1,000), each with a phone number, and one carrier told by email
through a real SMTP server (aiosmtpd on 127.0.0.1). ``erasure run`` is timed end to end
(find, the notices, the ledger writes, the sent-log) twice: with ``batch = "run"`` (one
message per call, i.e. per ``batch_size`` requests) and with ``batch = "request"``, the
baseline: one message, one SMTP session and two sent-log commits per request.

    .venv/bin/python bench/notify_batch.py [--requests 1000] [--quick]

Expected by design: N / batch_size messages instead of N, and a run that takes at most
half the baseline's time (the ledger's own per-request work is the same in both).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from erasure_notify.fakes import SmtpSink

from erasure import PluginHost, RequestType
from erasure.config import parse_config
from erasure.orchestrator import Orchestrator, RequestSpec

#: batched run time / per-request run time must be at most this
TARGET_RATIO = 0.5
BATCH = 500


def run_once(n: int, batch: str) -> tuple[float, int]:
    """Seconds of one ``erasure run`` over ``n`` fresh requests; messages sent."""
    sink = SmtpSink().start()
    try:
        with tempfile.TemporaryDirectory() as root:
            host = PluginHost.load()
            cfg = parse_config({
                "erasure": {"state_dir": str(Path(root) / "state"), "batch_size": BATCH},
                "systems": {"m3st": {
                    "connector": "notify", "transport": "smtp", "host": "127.0.0.1",
                    "port": sink.port, "security": "plain", "sender": "privacy@shop.example",
                    "to": ["dpo@m3st.example"], "identifiers": ["phone"], "batch": batch}}},
                known_connectors={k: host.registry.get(k) for k in host.registry.names()})
            orch = Orchestrator(cfg, host)
            try:
                orch.submit_many([RequestSpec(
                    RequestType.ERASURE, (("phone", f"+4477009{i:05d}"),), verified=True)
                    for i in range(n)])
                start = time.perf_counter()
                summary = orch.run()
                took = time.perf_counter() - start
                assert summary.waiting.get("awaiting_confirmation") == n, summary
            finally:
                orch.close()
        told = sum(d.text.count("Our reference:") for d in sink.delivered)
        assert told == n, told
        return took, len(sink.delivered)
    finally:
        sink.stop()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="300 requests, one repeat")
    args = ap.parse_args(argv)
    n, repeats = (300, 1) if args.quick else (args.requests, args.repeats)
    batched = [run_once(n, "run") for _ in range(repeats)]
    single = [run_once(n, "request") for _ in range(repeats)]
    t_batched = statistics.median(t for t, _m in batched)
    t_single = statistics.median(t for t, _m in single)
    ratio = t_batched / t_single
    ok = ratio <= TARGET_RATIO
    print(f"notify_batch: {n} erasures told to one carrier by SMTP (aiosmtpd, 127.0.0.1), "
          f"batch_size {BATCH}, median of {repeats}")
    print(f"  batch = \"run\":     {t_batched:6.2f} s, {batched[0][1]} messages")
    print(f"  batch = \"request\": {t_single:6.2f} s, {single[0][1]} messages (baseline)")
    print(f"  ratio run/request: {ratio:.3f} (target <= {TARGET_RATIO}) "
          f"{'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
