"""Isolation of failures within a batched call: split only where a subject may be the cause.

A batch of N subjects whose call fails for a reason that is the system's (a bad mapping, a
corrupt shared object) must not cost 2N-1 calls: an error marked ``system_wide`` is not
split at all, and a blocked error whose halves fail alike stops splitting there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from erasure import (
    BlockedError,
    Finding,
    ItemOutcome,
    PermanentError,
    RequestType,
    TransientError,
    hookimpl,
)
from erasure.orchestrator import RequestSpec
from erasure.testing import MemoryConnector

N = 8


class Broken(MemoryConnector):
    """Deletes fail with ``error`` for every call holding a subject in ``culprits`` (all
    calls when it is None); every delete call's size is recorded."""

    name = "broken"
    error: ClassVar[Exception | None] = None
    culprits: ClassVar[set[str] | None] = None
    calls: ClassVar[list[int]] = []

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        type(self).calls.append(len({f.subject for f in findings}))
        error, culprits = type(self).error, type(self).culprits
        if error is not None and (culprits is None
                                  or any(f.subject in culprits for f in findings)):
            raise error
        return super().delete(findings)


class Plugin:
    @hookimpl
    def erasure_register_connectors(self, registry: Any) -> None:
        registry.add(Broken)


def _run(make_orch: Any, error: Exception, culprits: tuple[int, ...] | None = None
         ) -> tuple[Any, list[str], list[int]]:
    Broken.error, Broken.calls = error, []
    orch = make_orch({"systems": {"db": {"connector": "broken"}},
                      "erasure": {"batch_size": N}}, plugins=(Plugin(),))
    orch.systems["db"].connector().seed({
        f"c/{n}": ("contact", {"email": f"p{n}@example.com"}) for n in range(N)})
    rids = orch.submit_many([RequestSpec(RequestType.ERASURE, (("email", f"p{n}@example.com"),),
                                         verified=True) for n in range(N)])
    Broken.culprits = None if culprits is None else {rids[n] for n in culprits}
    orch.run()
    return orch, rids, list(Broken.calls)


def _tasks(orch: Any, rids: list[str]) -> list[tuple[str, str | None, bool]]:
    import json

    return [(t.stage, t.outcome, "blocked" in json.loads(t.summary or "{}"))
            for t in sorted(orch.ledger.tasks_for(rids), key=lambda t: rids.index(t.request_id))]


def test_a_system_wide_error_fails_or_defers_the_whole_call_at_once(make_orch) -> None:
    orch, rids, calls = _run(make_orch, BlockedError("invalid sql mapping: no table x",
                                                     system_wide=True))
    assert calls == [N]
    assert _tasks(orch, rids) == [("acting", None, True)] * N
    orch, rids, calls = _run(make_orch, PermanentError("corrupt shared object",
                                                       system_wide=True))
    assert calls == [N]
    assert [o for _s, o, _b in _tasks(orch, rids)] == ["failed"] * N


def test_halves_that_fail_alike_stop_the_split(make_orch) -> None:
    # An error the connector did not classify (a bug, a broken mapping it did not flag):
    # splitting it down to single subjects made 2N-1 calls.
    orch, rids, calls = _run(make_orch, RuntimeError("mapping broken"))
    assert calls == [N, N // 2, N // 2]
    assert _tasks(orch, rids) == [("acting", None, True)] * N


def test_one_subjects_blocked_error_is_still_narrowed_down_to_it(make_orch) -> None:
    orch, rids, calls = _run(make_orch, RuntimeError("one odd row"), culprits=(0,))
    assert calls == [8, 4, 4, 2, 2, 1, 1]
    tasks = _tasks(orch, rids)
    assert tasks[0] == ("acting", None, True)
    assert tasks[1:] == [("done", "completed", False)] * (N - 1)


def test_permanent_errors_are_split_down_to_their_subjects(make_orch) -> None:
    # Two refused subjects in different halves: the other six still complete.
    orch, rids, _calls = _run(make_orch, PermanentError("row is referenced"),
                              culprits=(0, N - 1))
    outcomes = [o for _s, o, _b in _tasks(orch, rids)]
    assert outcomes == ["failed"] + ["completed"] * (N - 2) + ["failed"]


def test_transient_errors_are_not_split(make_orch) -> None:
    _orch, _rids, calls = _run(make_orch, TransientError("down"))
    assert set(calls) == {N}
