"""Connector calls cut at subject boundaries, and failures narrowed down to their subject.

A call carries whole subjects only: a customer row and its orders always go together, so a
parent is never deleted in one call while its children wait for the next. When a batched
call fails permanently, or items of several subjects fail in it, the subjects are split in
halves and called again until each failure belongs to one subject: one bad row fails one
request, and every other request of the batch completes in the same run.

A blocked error (errors.py) is split only while its halves fail differently: when both
halves fail as the whole did, the error is the system's, not a subject's, and every subject
of the call waits with it (three calls, not 2N-1). An error the connector marks
``system_wide`` is never split. Transient errors are not split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..models import ItemOutcome, ItemStatus
from ..systems import CallResult

__all__ = ["Group", "pack", "run_isolated"]

#: One subject's items for one call: (subject key, items).
Group = tuple[str, list[Any]]

#: Call errors worth narrowing down: one subject's data can cause them. Transient errors
#: concern the system; splitting would only multiply calls to a system that struggles.
_ISOLATE_KINDS = frozenset({"permanent", "blocked"})


def pack(groups: Sequence[Group], subjects: int, items: int | None = None
         ) -> list[list[Group]]:
    """Cut ``groups`` into calls of at most ``subjects`` groups and ``items`` items, never
    splitting a group (a group larger than ``items`` goes alone)."""
    calls: list[list[Group]] = []
    current: list[Group] = []
    size = 0
    for group in groups:
        n = len(group[1])
        if current and (len(current) >= subjects or (items is not None and size + n > items)):
            calls.append(current)
            current, size = [], 0
        current.append(group)
        size += n
    if current:
        calls.append(current)
    return calls


def run_isolated(
    call: Callable[[list[Any]], CallResult],
    groups: Sequence[Group],
    limit: tuple[int, int | None],
    subject_of: Callable[[Any], str],
) -> dict[str, CallResult]:
    """Run ``call`` over ``groups`` in packed calls (``limit``: most subjects, most items
    per call); the result of each subject.

    A value is attributed to the subject ``subject_of`` names, and only if that subject was
    in the call: a connector bug must never attach data to another request.
    """
    out: dict[str, CallResult] = {key: CallResult() for key, _ in groups}
    for chunk in pack(groups, *limit):
        _isolate(call, chunk, subject_of, out)
    return out


def _failed_items(result: CallResult) -> bool:
    return any(isinstance(v, ItemOutcome) and v.status is ItemStatus.FAILED
               for v in result.values)


_Part = tuple[CallResult, dict[str, CallResult]]


def _isolate(call: Callable[[list[Any]], CallResult], chunk: list[Group],
             subject_of: Callable[[Any], str], out: dict[str, CallResult]) -> None:
    _settle(call, chunk, _once(call, chunk, subject_of, out), subject_of, out)


def _once(call: Callable[[list[Any]], CallResult], chunk: list[Group],
          subject_of: Callable[[Any], str], out: dict[str, CallResult]) -> _Part:
    """One call over ``chunk``: its result and each subject's values."""
    res = call([item for _key, items in chunk for item in items])
    per: dict[str, CallResult] = {key: CallResult() for key, _ in chunk}
    for v in res.values:
        got = per.get(subject_of(v))
        if got is not None:
            got.values.append(v)
    for key, _ in chunk:
        out[key].attempts += res.attempts
    return res, per


def _alike(a: CallResult, b: CallResult) -> bool:
    return a.error is not None and (a.error_kind, a.error) == (b.error_kind, b.error)


def _settle(call: Callable[[list[Any]], CallResult], chunk: list[Group], part: _Part,
            subject_of: Callable[[Any], str], out: dict[str, CallResult]) -> None:
    """Give each subject of ``chunk`` its result, splitting where a failure may be one
    subject's doing."""
    res, per = part
    if (len(chunk) > 1 and res.error and res.error_kind in _ISOLATE_KINDS
            and not res.system_wide):
        mid = len(chunk) // 2
        halves = [chunk[:mid], chunk[mid:]]
        parts = [_once(call, half, subject_of, out) for half in halves]
        if res.error_kind != "permanent" and all(_alike(p[0], res) for p in parts):
            # Both halves fail as the whole did: not one subject's doing, so no further
            # split (a blocked task waits, it does not end). A permanent error does
            # belong to its items: it is split until each failure has its subject.
            for half, (r, p) in zip(halves, parts, strict=True):
                for key, _ in half:
                    _keep(out[key], p[key], r)
            return
        for half, half_part in zip(halves, parts, strict=True):
            _settle(call, half, half_part, subject_of, out)
        return
    failing = [g for g in chunk if _failed_items(per[g[0]])]
    if len(failing) > 1:
        # Items of several subjects failed: perhaps one subject's item undid the others'
        # transaction. Their actions are idempotent, so they are asked again, apart.
        failing_keys = {g[0] for g in failing}
        for key, _ in chunk:
            if key not in failing_keys:
                _keep(out[key], per[key], res)
        mid = len(failing) // 2
        _isolate(call, failing[:mid], subject_of, out)
        _isolate(call, failing[mid:], subject_of, out)
        return
    for key, _ in chunk:
        _keep(out[key], per[key], res)


def _keep(into: CallResult, part: CallResult, whole: CallResult) -> None:
    into.values.extend(part.values)
    if whole.error:
        into.error, into.error_kind = whole.error, whole.error_kind
        into.retry_after, into.system_wide = whole.retry_after, whole.system_wide
