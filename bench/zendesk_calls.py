"""Benchmark: Zendesk API requests per subject, counted at the fake Zendesk API.

1,000 subjects (``--quick``: 200), each a user with an email and a phone identity, two
tickets they requested (one archived) and, for every tenth, a comment on someone else's
ticket; as many other people beside them. Every stage of an access and an erasure request
runs through the connector and the real zenpy over HTTP, as the host calls it: find,
export, delete and the polls of its jobs until they end, verification (find again and
lookup by id). Each stage's requests are counted at the fake, per subject, twice: with the
host's batches (``--batch``, the default ``batch_size`` of 100 subjects a call) and, as the
baseline, with one subject per call (what an integration written per person does).

Target: the batched run needs at most **0.6x** the baseline's requests in all. The
requests that stay per user (identities, the requested list, comments) are Zendesk's own
limits: it has no bulk endpoint for them.

    .venv/bin/python bench/zendesk_calls.py [--quick] [--subjects 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

TARGET = 0.6
EMAIL, TOKEN = "agent@example.com", "bench-token"


def seed(fake: Any, n: int) -> None:
    st = fake.store
    agent = st.add_user("Ann Agent", "ann@corp.example", role="agent")
    for i in range(n):
        other = st.add_user(f"Other {i}", f"other{i}@example.net", f"+4940{i:07d}")
        st.add_ticket(other, f"Other's question {i}", [(other, "a question"),
                                                       (agent, "an answer")])
        uid = st.add_user(f"Subject {i}", f"s{i}@example.org", f"+4930{i:07d}")
        st.add_ticket(uid, f"Order {i}", [(uid, f"where is order {i}?"),
                                          (agent, "on its way")])
        st.add_ticket(uid, f"Old order {i}", [(uid, "thanks")], archived=True)
        if i % 10 == 0:
            st.add_ticket(other, f"Shared {i}", [(other, "hello"), (uid, "me too")])


def subjects(n: int) -> list[Any]:
    from erasure import Identifier, Subject

    return [Subject(f"req-{i}", (Identifier.parse("email", f"s{i}@example.org"),
                                 Identifier.parse("phone", f"+4930{i:07d}")))
            for i in range(n)]


def in_call(action: str, keys: Sequence[str], fn: Callable[[], Any]) -> Any:
    from erasure.connector import _CURRENT, CallContext

    token = _CURRENT.set(CallContext("helpdesk", action, time.monotonic() + 600,
                                     {k: f"bench:{k}:{action}" for k in keys}))
    try:
        return fn()
    finally:
        _CURRENT.reset(token)


def run(n: int, batch: int) -> tuple[Counter[str], float]:
    """Requests per stage for ``n`` subjects in calls of ``batch``; and the seconds taken."""
    from erasure_zendesk import ZendeskConnector, ZendeskSettings
    from erasure_zendesk.testing import FakeZendesk

    from erasure import ItemStatus

    counts: Counter[str] = Counter()
    with FakeZendesk(email=EMAIL, token=TOKEN) as fake:
        seed(fake, n)
        conn = ZendeskConnector("helpdesk", ZendeskSettings(url=fake.url, email=EMAIL,
                                                            token=TOKEN))
        people = subjects(n)
        t0 = time.perf_counter()

        def stage(name: str, fn: Callable[[], Any]) -> Any:
            before = fake.requests
            out = fn()
            counts[name] += fake.requests - before
            return out

        for start in range(0, n, batch):
            group = people[start:start + batch]
            keys = [s.key for s in group]
            found = stage("find", lambda g=group: list(conn.find(g)))
            stage("export", lambda f=found: list(conn.export(f)))
            outcomes = stage("delete", lambda f=found, k=keys: in_call(
                "delete", k, lambda: list(conn.delete(f))))
            while pending := [o for o in outcomes if o.status is ItemStatus.PENDING]:
                polled = stage("poll", lambda p=pending, k=keys: in_call(
                    "poll", k, lambda: list(conn.poll(p))))
                outcomes = [o for o in outcomes if o.status is not ItemStatus.PENDING]
                outcomes += polled
            bad = [o for o in outcomes if not o.ok]
            assert not bad, f"{len(bad)} items not erased"
            left = stage("verify", lambda g=group: list(conn.find(g)))
            left += stage("verify", lambda f=found: list(conn.lookup(f)))
            assert not left, f"{len(left)} items left after erasure"
        conn.close()
        return counts, time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 subjects")
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args(argv)
    n = 200 if args.quick else args.subjects

    batched, t_batched = run(n, args.batch)
    single, t_single = run(n, 1)
    print(f"Zendesk API requests per subject, {n} subjects (fake Zendesk, real zenpy)")
    print(f"{'stage':<8} {'batched':>9} {'one each':>9} {'ratio':>6}")
    for name in ("find", "export", "delete", "poll", "verify"):
        b, s = batched[name] / n, single[name] / n
        print(f"{name:<8} {b:>9.2f} {s:>9.2f} {b / s if s else 0:>6.2f}")
    total_b, total_s = sum(batched.values()) / n, sum(single.values()) / n
    ratio = total_b / total_s
    print(f"{'total':<8} {total_b:>9.2f} {total_s:>9.2f} {ratio:>6.2f}")
    print(f"time: batched {t_batched:.1f} s, one each {t_single:.1f} s")
    ok = ratio <= TARGET
    print(f"target: batched <= {TARGET}x one each: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
