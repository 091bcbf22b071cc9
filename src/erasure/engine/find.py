"""The find step: every system searched with the identifiers it may see, in rounds, and
strength decided once from all the evidence (order-free)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from ..models import Capability, Finding, Outcome, Subject
from ..systems import CallResult, System, fan_out
from .expansion import Evidence, Scoped, finding_evidence, scoped_to_json, strong_fixpoint
from .tasks import Stage, TaskWork
from .work import StepContext, Work, failed_call, find_call, limit

__all__ = ["coverage_gap", "find", "wait_for_plugins"]

_NOTICE = "notice"  # the one finding of a system that cannot be searched, only told



def _searchable(system: System) -> bool:
    return system.cls is not None and system.cls.supports(Capability.FIND)


# find --------------------------------------------------------------------------------

def find(ctx: StepContext, works: Sequence[Work], now: float) -> None:
    """Find in every system, feeding identifiers found in one into the others.

    Each round asks every system, in parallel, for the identifiers it may see (id spaces)
    and was not asked yet; rounds go on until nothing new is found or ``expansion_rounds``
    is reached. Strength is computed once from all the evidence, so the result never
    depends on the order in which systems answered. Tasks already found are searched again
    only with identifiers new to them (a deferred system answered late).
    """
    wait_for_plugins(ctx, works, now)
    spaces = ctx.config.id_spaces
    todo: dict[str, list[Work]] = defaultdict(list)
    queried: dict[tuple[str, str], set[Scoped]] = defaultdict(set)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    searching = [w for w in works
                 if any(t.stage is Stage.PENDING and t.due(now) for t in w.tasks.values())]
    for w in searching:
        for name, t in w.tasks.items():
            if t.stage not in (Stage.PENDING, Stage.FOUND) or not t.due(now):
                continue
            system = ctx.systems.get(name)
            if t.summary.started_at is None:
                t.summary.started_at = stamp
            if system is None:  # removed from the configuration (or disabled) since
                t.fail("system not configured", "uncovered")
                t.move(Stage.DONE, "not covered", outcome=Outcome.NOT_COVERED.value)
                continue
            if not _searchable(system):
                continue  # told, never searched: see _notice below
            queried[(w.row.id, name)] = set(t.data.searched)
            todo[name].append(w)
    failed: set[tuple[str, str]] = set()
    by_id = {w.row.id: w for w in searching}
    for _round in range(ctx.host.expansion_rounds + 1):
        asked = _unasked(ctx, todo, queried, failed)
        if not asked:
            break
        calls = {}
        for name, subjects in asked.items():
            for s in subjects:
                queried[(s.key, name)].update(spaces.scope(i, name) for i in s.identifiers)
            calls[name] = find_call(ctx.systems[name], subjects, limit(ctx, name))
        for name, per_subject in fan_out(calls, ctx.host.max_workers).items():
            for rid, res in per_subject.items():
                w = by_id[rid]
                t = w.tasks[name]
                t.attempt("find", res.attempts)
                if res.error:
                    if (rid, name) not in failed:
                        failed.add((rid, name))
                        if t.stage is Stage.FOUND:
                            # A search for identifiers found later failed: the task is
                            # not found any more, and its request must not act meanwhile.
                            t.move(Stage.PENDING, "to be searched again")
                        failed_call(ctx, w, t, res, now, step="find")
                    continue
                for f in res.values:
                    if f.system != name:
                        continue  # a connector bug must never attach data elsewhere
                    matched, related = finding_evidence(f, name, spaces, queried[(rid, name)])
                    if not matched and f.matched:
                        continue  # matched only what it was not asked: a connector bug
                    # (A finding that matched nothing is one the connector lists for
                    # review, e.g. a row reached only through someone else's link: kept,
                    # never acted on unless an operator includes it.)
                    t.data.merge(f)
                    for r in related:
                        w.known.add(r)
    strong_types = set(ctx.host.strong_identifiers)
    for w in searching:
        # Strength from everything every search of the request ever found, not only this
        # run's: an item found in an earlier run may be what links a later answer on.
        evidence = _evidence(ctx, w, queried)
        # Seeded with what was strong before: a later search never weakens a decision.
        seeds = w.known.given | set(w.known.strong())
        w.known.set_strong(strong_fixpoint(seeds, evidence, strong_types))
        told = []
        for name, t in w.tasks.items():
            if (w.row.id, name) in failed or t.stage not in (Stage.PENDING, Stage.FOUND):
                continue
            if not t.due(now):
                continue
            system = ctx.systems[name]
            if not _searchable(system):
                told.append(t)  # after every searched system's actionable items are known
                continue
            t.data.searched = sorted(queried[(w.row.id, name)], key=scoped_to_json)
            before = (len(t.data.findings), set(t.data.actionable))
            t.data.actionable = {
                ref for ref, f in t.data.findings.items()
                if any(w.known.is_strong(spaces.scope(m, name)) for m in f.matched)
            }
            t.summary.found = len(t.data.findings)
            t.summary.review = len(t.data.findings) - len(t.data.actionable)
            if t.stage is Stage.PENDING:
                t.move(Stage.FOUND, "found")
            elif before != (len(t.data.findings), t.data.actionable):
                t.move(Stage.FOUND, "found more through identifiers found later")
        for t in told:
            _notice(ctx, w, t)
        w.known.complete = _complete(ctx, w)


#: the step a task in each state waits to make (named in its blocked cause)
_STEP_OF = {Stage.PENDING: "find", Stage.FOUND: "act", Stage.ACTING: "act",
            Stage.WAITING: "poll", Stage.VERIFYING: "verify"}


def wait_for_plugins(ctx: StepContext, works: Sequence[Work], now: float) -> None:
    """Block every due task of a system whose connector is not there (its plugin failed
    to load, is blocked by ``ERASURE_BLOCK_PLUGINS``, or is not installed): a broken or
    blocked plugin after an upgrade is for an operator to fix, so the task waits, saying
    why, for ``erasure retry`` (or fails at the request's give-up time), as for a wrong
    password; it is never ended ``not_covered``. A task waiting for a processor's
    confirmation needs no connector and is left as it is."""
    for w in works:
        for name, t in w.tasks.items():
            system = ctx.systems.get(name)
            if system is None or not system.uncovered or not t.due(now) \
                    or t.stage is Stage.AWAITING_CONFIRMATION:
                continue
            step = _STEP_OF.get(t.stage, t.stage.value)
            failed_call(ctx, w, t, CallResult(error=system.uncovered, error_kind="blocked"),
                        now, step=step)


def _evidence(ctx: StepContext, w: Work, queried: dict[tuple[str, str], set[Scoped]]
              ) -> list[Evidence]:
    """What the request's searches learnt about each item, in every system."""
    spaces = ctx.config.id_spaces
    out = []
    for name, t in w.tasks.items():
        allowed = queried.get((w.row.id, name)) or set(t.data.searched)
        for f in t.data.findings.values():
            if f.ref == _NOTICE:
                continue
            matched, related = finding_evidence(f, name, spaces, allowed)
            if matched:
                out.append(Evidence(f.kind, matched, related))
    return out


def _complete(ctx: StepContext, w: Work) -> bool:
    """Whether every system the request is searched in was searched with every identifier
    it may see there. Not while a search failed and waits to be made again, nor while the
    round limit left identifiers unasked: in any system, whether or not it was searched in
    this run."""
    spaces = ctx.config.id_spaces
    for name, t in w.tasks.items():
        system = ctx.systems.get(name)
        if system is None or system.uncovered or not _searchable(system):
            continue
        if t.stage is Stage.PENDING:
            return False
        if t.stage is not Stage.FOUND:
            continue  # acting or done: the search it acted on was judged when it ended
        types = system.identifier_types
        searched = set(t.data.searched)
        if any(s not in searched for s in w.known.all()
               if spaces.searchable_in(s, name) and (types is None or s.type in types)):
            return False
    return True


def coverage_gap(ctx: StepContext, w: Work, name: str) -> str | None:
    """Why a system that can be searched was searched with nothing, because none of the
    request's identifiers is of a type its connector instance searches; None otherwise. A
    system that looked for nothing found nothing, and is not covered, never "found 0". (An
    id of a space the system does not share is, as configured, no identifier of it.)"""
    system = ctx.systems[name]
    t = w.tasks[name]
    types = system.identifier_types
    if t.data.searched or types is None or not _searchable(system):
        return None
    kinds = sorted({s.type.value for s in w.known.all()})
    if {x.value for x in types} & set(kinds):
        return None
    return (f"searches only {', '.join(sorted(x.value for x in types))}; the request has "
            f"{', '.join(kinds)}")


def _notice(ctx: StepContext, w: Work, t: TaskWork) -> None:
    """A system that can only be told (a processor with no API): it is never searched, so
    it never reports a search. Its one "finding" carries the identifiers it may see that
    are the person's: strong ones, those that came with the request, and those shown by
    the items the request acts on elsewhere (the phone on the person's own contact, which
    a carrier needs though phones are too weak to match by), for the connector to pass
    on. Find-only and access requests leave it not covered."""
    spaces = ctx.config.id_spaces
    rule = w.rule(ctx, t.system)
    theirs = {*w.known.strong(), *w.known.given}
    for other in w.tasks.values():
        for ref in other.data.actionable:
            f = other.data.findings.get(ref)
            if f is not None and f.ref != _NOTICE:
                theirs.update(spaces.scope(i, other.system) for i in f.related)
    told = tuple(sorted({s.ident for s in theirs if spaces.searchable_in(s, t.system)},
                        key=lambda i: (i.type.value, i.value)))
    if rule.idle_outcome is Outcome.RETAINED:
        t.move(Stage.DONE, "retained", outcome=Outcome.RETAINED.value)
        return
    if not rule.notice or not told:
        t.fail("this system cannot be searched; it can only be told of erasure or "
               "restriction", "unsupported")
        t.move(Stage.DONE, "cannot be searched", outcome=Outcome.NOT_COVERED.value)
        return
    t.data.findings = {_NOTICE: Finding(t.system, w.row.id, _NOTICE, _NOTICE, told)}
    t.data.actionable = {_NOTICE}
    t.move(Stage.FOUND, "to be told")


def _unasked(ctx: StepContext, todo: dict[str, list[Work]],
             queried: dict[tuple[str, str], set[Scoped]],
             failed: set[tuple[str, str]]) -> dict[str, list[Subject]]:
    """Per system, each subject with the identifiers it may search there and was not
    searched with yet."""
    spaces = ctx.config.id_spaces
    out: dict[str, list[Subject]] = {}
    for name, ws in todo.items():
        system = ctx.systems[name]
        types = system.identifier_types
        subjects = []
        for w in ws:
            if (w.row.id, name) in failed:
                continue
            asked = queried[(w.row.id, name)]
            new = tuple(sorted(
                (s.ident for s in w.known.all()
                 if s not in asked and spaces.searchable_in(s, name)
                 and (types is None or s.type in types)),
                key=lambda i: (i.type.value, i.value)))
            if new:
                subjects.append(Subject(w.row.id, new))
        if subjects:
            out[name] = subjects
    return out


