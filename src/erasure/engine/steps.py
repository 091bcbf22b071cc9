"""The steps a batch of requests goes through: find (with expansion), act, poll, verify.

Each step takes the batch's works, calls the connectors (one thread per system, one action
per call, whole subjects per call) and moves tasks to their next state, recording why. No
step writes the ledger or reaches back into the runner: the runner saves what the steps
changed, so an in-process runner and a distributed one execute the same functions.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..config import Config
from ..keys import KeyRing
from ..ledger import RequestRow
from ..models import (
    Action,
    Capability,
    Finding,
    ItemOutcome,
    ItemStatus,
    Outcome,
    Record,
    RequestType,
    Subject,
)
from ..state import KnownIdentifiers
from ..systems import CallResult, System, fan_out
from .expansion import Evidence, Scoped, finding_evidence, scoped_to_json, strong_fixpoint
from .isolation import run_isolated
from .rules import Rule, capability_for, rule_for
from .tasks import Stage, TaskWork

__all__ = [
    "StepContext", "Work", "act", "find", "outcome_of", "poll", "start_acting", "verify",
]

_ITEM_FN: dict[Action, Callable[[Any, Sequence[Finding]], Any]] = {
    Action.DELETE: lambda c, fs: c.delete(fs),
    Action.ANONYMISE: lambda c, fs: c.anonymise(fs),
    Action.RESTRICT: lambda c, fs: c.restrict(fs),
}
_NOTICE = "notice"  # the one finding of a system that cannot be searched, only told


@dataclass(frozen=True)
class StepContext:
    """What the steps need: the configuration, the systems and the keys."""

    config: Config
    systems: dict[str, System]
    keys: KeyRing

    @property
    def host(self) -> Any:
        return self.config.host


@dataclass(eq=False)  # identity: works are kept in sets during a batch
class Work:
    """One request during a run."""

    row: RequestRow
    type: RequestType
    known: KnownIdentifiers
    tasks: dict[str, TaskWork]

    def rule(self, ctx: StepContext, system: str) -> Rule:
        return rule_for(self.type, ctx.systems[system].config.policy)

    def found_everywhere(self) -> bool:
        """No task still waits for its search: acting may start (the plan is complete)."""
        return all(t.stage is not Stage.PENDING for t in self.tasks.values())


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
            t.summary.setdefault("started_at", stamp)
            if system is None or system.uncovered:
                t.fail(system.uncovered if system else "system not configured", "uncovered")
                t.move(Stage.DONE, "not covered", outcome=Outcome.NOT_COVERED.value)
                continue
            if not _searchable(system):
                continue  # told, never searched: see _notice below
            queried[(w.row.id, name)] = set(t.data.searched)
            todo[name].append(w)
    evidence: dict[str, dict[str, dict[str, Evidence]]] = defaultdict(lambda: defaultdict(dict))
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
            calls[name] = _find_call(ctx.systems[name], subjects, _limit(ctx, name))
        for name, per_subject in fan_out(calls, ctx.host.max_workers).items():
            for rid, res in per_subject.items():
                w = by_id[rid]
                t = w.tasks[name]
                t.attempt("find", res.attempts)
                if res.error:
                    if (rid, name) not in failed:
                        failed.add((rid, name))
                        _failed_call(ctx, w, t, res, now, step="find")
                    continue
                for f in res.values:
                    if f.system != name:
                        continue  # a connector bug must never attach data elsewhere
                    matched, related = finding_evidence(f, name, spaces, queried[(rid, name)])
                    if not matched:
                        continue
                    t.data.merge(f)
                    ev = evidence[rid][name].setdefault(f.ref, Evidence(f.kind))
                    ev.matched |= matched
                    ev.related |= related
                    for r in related:
                        w.known.add(r)
    cut_short = {s.key for ss in _unasked(ctx, todo, queried, failed).values() for s in ss}
    strong_types = set(ctx.host.strong_identifiers)
    for w in searching:
        w.known.complete = w.row.id not in cut_short
        ev_all = [e for evs in evidence[w.row.id].values() for e in evs.values()]
        # Seeded with what was strong before: a later search never weakens a decision.
        seeds = w.known.given | set(w.known.strong())
        w.known.set_strong(strong_fixpoint(seeds, ev_all, strong_types))
        for name, t in w.tasks.items():
            if (w.row.id, name) in failed or t.stage not in (Stage.PENDING, Stage.FOUND):
                continue
            if not t.due(now):
                continue
            system = ctx.systems[name]
            if not _searchable(system):
                _notice(ctx, w, t)
                continue
            t.data.searched = sorted(queried[(w.row.id, name)], key=scoped_to_json)
            before = (len(t.data.findings), set(t.data.actionable))
            t.data.actionable = {
                ref for ref, f in t.data.findings.items()
                if any(w.known.is_strong(spaces.scope(m, name)) for m in f.matched)
            }
            t.summary["found"] = len(t.data.findings)
            t.summary["review"] = len(t.data.findings) - len(t.data.actionable)
            if t.stage is Stage.PENDING:
                t.move(Stage.FOUND, "found")
            elif before != (len(t.data.findings), t.data.actionable):
                t.move(Stage.FOUND, "found more through identifiers found later")


def _notice(ctx: StepContext, w: Work, t: TaskWork) -> None:
    """A system that can only be told (a processor with no API): it is never searched, so
    it never reports a search. Its one "finding" carries the strong identifiers it may see,
    for the connector to pass on; find-only and access requests leave it not covered."""
    spaces = ctx.config.id_spaces
    rule = w.rule(ctx, t.system)
    told = tuple(s.ident for s in w.known.strong() if spaces.searchable_in(s, t.system))
    if rule.idle_outcome is Outcome.RETAINED:
        t.move(Stage.DONE, "retained", outcome=Outcome.RETAINED.value)
        return
    if rule.action in (None, Action.EXPORT) or not told:
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
        types = system.cls.identifier_types if system.cls else None
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


def _find_call(system: System, subjects: list[Subject], limit: tuple[int, int | None],
               action: str = "find") -> Callable[[], dict[str, CallResult]]:
    """One system's find over ``subjects``, in calls of whole subjects."""
    def call(batch: list[Subject]) -> CallResult:
        return system.call(lambda c: c.find(batch),
                           system.context(action, (s.key for s in batch)))

    def run() -> dict[str, CallResult]:
        return run_isolated(call, [(s.key, [s]) for s in subjects], limit, lambda f: f.subject)
    return run


def _limit(ctx: StepContext, name: str) -> tuple[int, int | None]:
    """(most subjects, most items) per call of a system: ``batch_size`` subjects, and the
    connector's ``max_batch`` items if it declares one."""
    system = ctx.systems[name]
    return ctx.host.batch_size, system.cls.max_batch if system.cls else None


def _failed_call(ctx: StepContext, w: Work, t: TaskWork, res: CallResult, now: float, *,
                 step: str) -> None:
    """A call that failed for this task: a transient failure waits for a later run (with
    growing backoff, or as long as the system asked), anything else fails the task."""
    retry = ctx.host.retry
    t.summary["last_error"] = res.error  # for `erasure status`; errors hold failures only
    if res.error_kind == "transient":
        n = t.summary.get("deferrals", 0)
        wait = min(retry.defer_initial * 2 ** n, retry.defer_max) * random.uniform(0.8, 1.2)
        if res.retry_after is not None:
            wait = max(res.retry_after, 0.0)
        if now + wait < _epoch(w.row) - retry.give_up_before_due_hours * 3600:
            t.defer(now + wait, f"{step} deferred: {res.error}")
            return
        t.fail(res.error or "error", "transient")
        t.fail("given up: the request's due date is near", "transient")
    else:
        t.fail(res.error or "error", res.error_kind or "permanent")
    t.summary["failed_at"] = t.stage.value
    t.move(Stage.DONE, f"{step} failed: {res.error}", outcome=outcome_of(t, failed=True))


def _epoch(row: RequestRow) -> float:
    """The request's due date as epoch seconds (stored as naive UTC)."""
    import calendar

    return float(calendar.timegm(row.due_at.timetuple()))


# act ---------------------------------------------------------------------------------

def start_acting(ctx: StepContext, works: Sequence[Work], now: float) -> None:
    """Decide each found task's action: none (done), not supported (done), or acting.

    Run (and saved) before :func:`act` calls anything, so a run killed during the calls
    is known to have been acting. A request acts only when its search is complete
    everywhere.
    """
    for w in works:
        if not w.found_everywhere():
            continue
        for name, t in w.tasks.items():
            if t.stage is not Stage.FOUND or not t.due(now):
                continue
            system = ctx.systems[name]
            rule = w.rule(ctx, name)
            action = rule.action
            t.summary["action"] = action.value if action else None
            if action is None:
                t.move(Stage.DONE, "nothing to do", outcome=rule.idle_outcome.value)
            elif not system.cls or not system.cls.supports(capability_for(action)):
                t.fail(f"connector {system.config.connector!r} cannot {action.value}",
                       "unsupported")
                t.move(Stage.DONE, "not supported", outcome=Outcome.NOT_COVERED.value)
            else:
                t.move(Stage.ACTING, action.value)


def act(ctx: StepContext, works: Sequence[Work], now: float) -> None:
    """Export, delete, anonymise, restrict (or tell) what :func:`start_acting` chose.

    Work is grouped by (system, action): a connector call never carries two actions, so
    no request is ever acted on with another request's action.
    """
    per_system: dict[str, dict[Action, list[tuple[Work, TaskWork]]]] = defaultdict(
        lambda: defaultdict(list))
    for w in works:
        if not w.found_everywhere():
            continue
        for name, t in w.tasks.items():
            action = w.rule(ctx, name).action
            if t.stage is Stage.ACTING and t.due(now) and action is not None:
                per_system[name][action].append((w, t))
    calls = {name: partial(_act_system, ctx, name, by_action, now)
             for name, by_action in per_system.items()}
    fan_out(calls, ctx.host.max_workers)


def _act_system(ctx: StepContext, name: str,
                by_action: dict[Action, list[tuple[Work, TaskWork]]], now: float) -> None:
    """One system's actions, one action at a time (one thread per system)."""
    system = ctx.systems[name]
    for action in sorted(by_action):
        pairs = by_action[action]
        by_req = {w.row.id: (w, t) for w, t in pairs}
        groups = []
        for w, t in pairs:
            if action is Action.EXPORT:
                t.data.records = []  # a resumed export starts over: no record twice
            todo = sorted(ref for ref in t.data.actionable if ref not in t.data.handles)
            if todo:
                groups.append((w.row.id, [t.data.findings[ref] for ref in todo]))
        results = run_isolated(partial(_act_once, system, action), groups,
                               _limit(ctx, name), lambda v: v.finding.subject)
        for rid, (w, t) in by_req.items():
            res = results.get(rid, CallResult())
            t.attempt(action.value, res.attempts)
            _record(t, res.values)
            if action is Action.EXPORT:
                t.summary.setdefault("exported_at",
                                     time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)))
            if res.error and res.error_kind == "transient":
                _failed_call(ctx, w, t, res, now, step=action.value)
            else:
                if res.error:
                    t.fail(res.error, res.error_kind or "permanent")
                    t.summary["failed_at"] = Stage.ACTING.value
                _after_action(ctx, w, t, now)


def _act_once(system: System, action: Action, batch: list[Finding]) -> CallResult:
    """One connector call of ``action`` over ``batch`` (items retried alone when transient)."""
    context = system.context(action.value, {f.subject for f in batch})
    if action is Action.EXPORT:
        return system.call(lambda c: c.export(batch), context)
    return system.call_items(_ITEM_FN[action], batch, context)


def _record(t: TaskWork, values: Sequence[Any]) -> None:
    """Keep each value that belongs to an item the task asked for."""
    for v in values:
        ref = v.finding.ref
        if ref not in t.data.actionable:
            continue  # not asked for: never recorded as this subject's
        if isinstance(v, Record):
            from ..export import json_safe

            t.data.records.append((v.finding.kind, json_safe(dict(v.data))))
            t.data.outcomes[ref] = "exported"
            continue
        t.data.outcomes[ref] = v.status.value
        if v.status in (ItemStatus.PENDING, ItemStatus.AWAITING_CONFIRMATION):
            t.data.handles[ref] = v.handle or ""
        else:
            t.data.handles.pop(ref, None)


def _after_action(ctx: StepContext, w: Work, t: TaskWork, now: float) -> None:
    """Where a task goes once its call returned: wait for the system, for a confirmation,
    to be verified, or done."""
    statuses = {t.data.outcomes.get(ref) for ref in t.data.handles}
    system = ctx.systems[t.system]
    if ItemStatus.PENDING.value in statuses:
        if t.stage is not Stage.WAITING:
            t.move(Stage.WAITING, "the system finishes later")
        interval = system.cls.poll_interval if system.cls else 60.0
        t.defer(now + interval, "waiting for the system")
        t.summary["deferrals"] -= 1  # waiting on a job is not a failure being retried
    elif ItemStatus.AWAITING_CONFIRMATION.value in statuses:
        t.summary.setdefault("told_at", now)
        t.move(Stage.AWAITING_CONFIRMATION, "told; awaiting confirmation")
        t.defer(now + ctx.host.confirmation_reminder_days * 86400, "awaiting confirmation")
        t.summary["deferrals"] -= 1
    elif w.rule(ctx, t.system).verify:
        t.move(Stage.VERIFYING, "acted")
    else:
        t.move(Stage.DONE, "acted", outcome=outcome_of(t))


# poll ----------------------------------------------------------------------------------

def poll(ctx: StepContext, works: Sequence[Work], now: float) -> int:
    """Ask systems about work they accepted earlier (PENDING items), when due; remind of
    confirmations that are overdue. Returns how many tasks it moved or deferred."""
    per_system: dict[str, list[tuple[Work, TaskWork]]] = defaultdict(list)
    reminded = 0
    for w in works:
        for name, t in w.tasks.items():
            if not t.due(now):
                continue
            if t.stage is Stage.WAITING:
                per_system[name].append((w, t))
            elif t.stage is Stage.AWAITING_CONFIRMATION:
                t.summary["reminders"] = t.summary.get("reminders", 0) + 1
                t.defer(now + ctx.host.confirmation_reminder_days * 86400,
                        "confirmation overdue: reminder")
                t.summary["deferrals"] -= 1
                reminded += 1
    calls = {name: partial(_poll_system, ctx, name, pairs, now)
             for name, pairs in per_system.items()}
    fan_out(calls, ctx.host.max_workers)
    return reminded + sum(len(pairs) for pairs in per_system.values())


def _poll_system(ctx: StepContext, name: str, pairs: list[tuple[Work, TaskWork]],
                 now: float) -> None:
    system = ctx.systems[name]

    def call(batch: list[ItemOutcome]) -> CallResult:
        return system.call(lambda c: c.poll(batch),
                           system.context("poll", {o.finding.subject for o in batch}))

    groups = [(w.row.id, [ItemOutcome(t.data.findings[ref], ItemStatus.PENDING, handle=h)
                          for ref, h in sorted(t.data.handles.items())
                          if t.data.outcomes.get(ref) == ItemStatus.PENDING.value])
              for w, t in pairs]
    results = run_isolated(call, [g for g in groups if g[1]], _limit(ctx, name),
                           lambda v: v.finding.subject)
    for w, t in pairs:
        res = results.get(w.row.id, CallResult())
        t.attempt("poll", res.attempts)
        _record(t, res.values)
        if res.error and res.error_kind == "transient":
            _failed_call(ctx, w, t, res, now, step="poll")
            continue
        if res.error:
            t.fail(res.error, res.error_kind or "permanent")
            t.summary["failed_at"] = Stage.ACTING.value
            t.move(Stage.DONE, f"poll failed: {res.error}", outcome=outcome_of(t, failed=True))
            continue
        _after_action(ctx, w, t, now)


# verify --------------------------------------------------------------------------------

def verify(ctx: StepContext, works: Sequence[Work], now: float) -> None:
    """After delete or anonymise, read the acted items back by id (where the connector can)
    and find again: anything left is residue, never success."""
    spaces = ctx.config.id_spaces
    todo: dict[str, list[Work]] = defaultdict(list)
    for w in works:
        for name, t in w.tasks.items():
            if t.stage is Stage.VERIFYING and t.due(now):
                todo[name].append(w)
    calls = {}
    for name, ws in todo.items():
        subjects = []
        for w in ws:
            idents = tuple(s.ident for s in w.known.strong() if spaces.searchable_in(s, name))
            if idents:
                subjects.append(Subject(w.row.id, idents))
        calls[name] = partial(_verify_system, ctx, name, ws, subjects)
    results = fan_out(calls, ctx.host.max_workers)
    for name, (looked, per_subject) in results.items():
        for w in todo[name]:
            t = w.tasks[name]
            res = per_subject.get(w.row.id, CallResult())
            again = looked.get(w.row.id, CallResult())
            t.attempt("verify", res.attempts + again.attempts)
            error = res if res.error else again if again.error else None
            if error is not None:
                if error.error_kind == "transient":
                    _failed_call(ctx, w, t, error, now, step="verify")
                    continue
                t.summary["verified"] = False
                t.fail(f"verification failed: {error.error}", error.error_kind or "permanent")
                t.move(Stage.DONE, "verification failed", outcome=outcome_of(t))
                continue
            t.summary["verified"] = True
            left = {f.ref for f in again.values if f.system == name}
            left |= {f.ref for f in res.values if f.system == name and any(
                w.known.is_strong(spaces.scope(m, name)) for m in f.matched)}
            for ref in sorted(left):
                kept = t.data.outcomes.get(ref) == ItemStatus.RETAINED.value
                if not kept and ref not in t.data.residue:
                    t.data.residue.append(ref)
            t.move(Stage.DONE, "verified", outcome=outcome_of(t))


def _verify_system(ctx: StepContext, name: str, ws: list[Work], subjects: list[Subject]
                   ) -> tuple[dict[str, CallResult], dict[str, CallResult]]:
    """(lookup results, find results) per request of one system."""
    system = ctx.systems[name]
    looked: dict[str, CallResult] = {}
    # An anonymised item still exists, by design: only deleted items are read back.
    deleted = [w for w in ws if w.tasks[name].summary.get("action") == Action.DELETE.value]
    if deleted and system.cls is not None and system.cls.supports(Capability.LOOKUP):
        def call(batch: list[Finding]) -> CallResult:
            return system.call(lambda c: c.lookup(batch),
                               system.context("lookup", {f.subject for f in batch}))
        groups = [(w.row.id, [w.tasks[name].data.findings[r]
                              for r in sorted(w.tasks[name].data.actionable)])
                  for w in deleted]
        looked = run_isolated(call, [g for g in groups if g[1]], _limit(ctx, name),
                              lambda f: f.subject)
    found = _find_call(system, subjects, _limit(ctx, name), "verify")() if subjects else {}
    return looked, found


# outcome -------------------------------------------------------------------------------

def outcome_of(t: TaskWork, *, failed: bool = False) -> str:
    """The receipt's outcome of a task that is done."""
    statuses = list(t.data.outcomes.values())
    failed_items = sum(1 for s in statuses if s == ItemStatus.FAILED.value)
    not_done = len(t.data.actionable) - len(statuses)
    if (failed or t.summary.get("error")) and not any(
            s != ItemStatus.FAILED.value for s in statuses):
        return Outcome.FAILED.value
    if t.summary.get("action") is None:  # find only: nothing was to be acted on
        return Outcome.COMPLETED.value
    if failed_items or t.data.residue or t.summary.get("error") or not_done > 0:
        return Outcome.PARTIAL.value
    return Outcome.COMPLETED.value
