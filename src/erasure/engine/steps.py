"""The steps a batch of requests goes through: find (with expansion, in
:mod:`.find`), start acting, act, poll, verify.

Each step takes the batch's works, calls the connectors (one thread per system, one action
per call, whole subjects per call) and moves tasks to their next state, recording why. No
step writes the ledger or reaches back into the runner: the runner saves what the steps
changed, so an in-process runner and a distributed one execute the same functions.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..connector import UNMAPPED_RESIDUE
from ..export import json_safe
from ..models import (
    Action,
    Capability,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    Outcome,
    Record,
    Subject,
)
from ..systems import CallResult, System, fan_out
from . import rights
from .find import coverage_gap, find
from .isolation import run_isolated
from .rules import NOT_ACTED, capability_for
from .tasks import Stage, TaskWork
from .work import (
    WAITS,
    StepContext,
    Work,
    failed_call,
    find_call,
    give_up_at,
    limit,
    outcome_of,
    verify_failed,
)

__all__ = [
    "StepContext", "Work", "act", "find", "outcome_of", "poll", "start_acting", "verify",
]

_ITEM_FN: dict[Action, Callable[[Any, Sequence[Finding]], Any]] = {
    Action.DELETE: lambda c, fs: c.delete(fs),
    Action.ANONYMISE: lambda c, fs: c.anonymise(fs),
    Action.RESTRICT: lambda c, fs: c.restrict(fs),
}

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
            t.summary.action = action.value if action else None
            gap = coverage_gap(ctx, w, name) if rule.idle_outcome is not Outcome.RETAINED \
                else None
            if gap is not None:
                t.fail(f"not searched: {gap}", "unsupported")
                t.move(Stage.DONE, "searched none of the request's identifiers",
                       outcome=Outcome.NOT_COVERED.value)
            elif action is None:
                t.move(Stage.DONE, "nothing to do", outcome=rule.idle_outcome.value)
            elif not system.cls or not system.cls.supports(capability_for(action)):
                t.fail(f"connector {system.config.connector!r} cannot {action.value}",
                       "unsupported")
                t.move(Stage.DONE, "not supported", outcome=Outcome.NOT_COVERED.value)
            elif action is Action.RECTIFY and not rights.start_rectifying(w, t):
                continue  # nothing it may correct here: done (refused for review, or none)
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


#: Within a system, exports go first: a person who asks for access and erasure in one
#: batch gets a package of what there was, then the erasure.
_ACTION_ORDER = [Action.EXPORT, Action.RESTRICT, Action.OBJECT, Action.RECTIFY,
                 Action.ANONYMISE, Action.DELETE]


def _act_system(ctx: StepContext, name: str,
                by_action: dict[Action, list[tuple[Work, TaskWork]]], now: float) -> None:
    """One system's actions, one action at a time (one thread per system)."""
    for action in sorted(by_action, key=_ACTION_ORDER.index):
        for pairs in rights.calls_apart(action, by_action[action]):
            _act_pairs(ctx, name, action, pairs, now)


def _act_pairs(ctx: StepContext, name: str, action: Action,
               pairs: list[tuple[Work, TaskWork]], now: float) -> None:
    """One action over tasks whose requests may share a call."""
    system = ctx.systems[name]
    by_req = {w.row.id: (w, t) for w, t in pairs}
    groups = []
    for w, t in pairs:
        if action is Action.EXPORT:
            t.data.records = []  # a resumed export starts over: no record twice
        # Items kept by a hold that may be lifted are all that is left to ask about when
        # the task comes back to check them (the rest was acted on already).
        todo = sorted(t.data.held) if t.data.held and action is not Action.EXPORT else sorted(
            ref for ref in t.data.actionable if ref not in t.data.handles)
        if todo:
            groups.append((w.row.id, [t.data.findings[ref] for ref in todo]))
    due = {rid: w.row.due_at for rid, (w, _t) in by_req.items()}
    how = rights.call_arguments(action, [w for w, _t in pairs])
    results = run_isolated(partial(_act_once, system, action, due, how), groups,
                           limit(ctx, name), lambda v: v.finding.subject)
    for rid, (w, t) in by_req.items():
        res = results.get(rid, CallResult())
        t.attempt(action.value, res.attempts)
        if res.values and t.data.held:
            t.summary.held = []  # named again below for the items still held
        _record(t, res.values)
        if action is Action.EXPORT and t.summary.exported_at is None:
            t.summary.exported_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        if res.error and res.error_kind in WAITS:
            failed_call(ctx, w, t, res, now, step=action.value)
        elif res.error_kind == "unsupported" and action in (Action.RECTIFY, Action.OBJECT):
            # The system cannot do it (no field for an address, no opt-out for profiling):
            # not covered, with the connector's reason on the receipt.
            t.fail(res.error or "not supported", "unsupported")
            t.move(Stage.DONE, "not supported", outcome=Outcome.NOT_COVERED.value)
        elif _stale(t):
            _find_again(t)
        else:
            if res.error:
                t.fail(res.error, res.error_kind or "permanent")
                t.summary.failed_at = Stage.ACTING.value
            _after_action(ctx, w, t, now)


def _act_once(system: System, action: Action, due: dict[str, Any], how: dict[str, Any],
              batch: list[Finding]) -> CallResult:
    """One connector call of ``action`` over ``batch`` (items retried alone when transient).
    ``how``: per request, a rectification's corrections or an objection's scope."""
    subjects = {f.subject for f in batch}
    context = system.context(action.value, subjects,
                             due={s: due[s] for s in subjects if s in due})
    if action is Action.EXPORT:
        return system.call(lambda c: c.export(batch), context)
    if action is Action.RECTIFY:
        return system.call_items(lambda c, fs: c.rectify(fs, [
            fix for s in sorted({f.subject for f in fs}) for fix in how[s]]), batch, context)
    if action is Action.OBJECT:
        (scope,) = {how[s] for s in subjects}  # calls_apart: one scope per call
        return system.call_items(lambda c, fs: c.object_to(fs, scope), batch, context)
    return system.call_items(_ITEM_FN[action], batch, context)


def _record(t: TaskWork, values: Sequence[Any]) -> None:
    """Keep each value that belongs to an item the task asked for."""
    for v in values:
        ref = v.finding.ref
        if ref not in t.data.actionable:
            continue  # not asked for: never recorded as this subject's
        if isinstance(v, Record):
            t.data.records.append((v.finding.kind, json_safe(dict(v.data))))
            t.data.outcomes[ref] = "exported"
            continue
        t.data.outcomes[ref] = v.status.value
        if ref in t.data.held:
            t.data.held.remove(ref)
        if v.status is ItemStatus.RETAINED and v.held:
            # Kept by a hold that may be lifted: asked again later (see _after_action).
            t.data.held.append(ref)
            reason = f"retained: {v.error or 'held'}"
            if reason not in t.summary.held and len(t.summary.held) < _MAX_ITEM_ERRORS:
                t.summary.held.append(reason)
            t.data.handles.pop(ref, None)
            continue
        if v.status in (ItemStatus.PENDING, ItemStatus.AWAITING_CONFIRMATION):
            t.data.handles[ref] = v.handle or ""
        else:
            t.data.handles.pop(ref, None)
        if v.status is ItemStatus.FAILED and v.error and not v.transient:
            _item_error(t, f"{v.finding.kind}: {v.error}")
        elif v.status.value in NOT_ACTED and v.status is not ItemStatus.FAILED:
            _not_acted(t, f"{v.status.value}: {v.error or v.finding.kind}")


#: distinct item failures a receipt lists (the counts say how many items failed)
_MAX_ITEM_ERRORS = 10


def _item_error(t: TaskWork, message: str) -> None:
    """Name why items failed on the receipt ("Contact: in the Recycle Bin until ...",
    "Case: delete: ENTITY_IS_LOCKED"); connectors' item errors hold no personal data."""
    errors = t.summary.errors
    if message not in errors and len(errors) < _MAX_ITEM_ERRORS:
        errors.append(message)


def _not_acted(t: TaskWork, reason: str) -> None:
    """Name why items were left as they were on the receipt (distinct reasons, capped)."""
    if reason not in t.summary.not_acted and len(t.summary.not_acted) < _MAX_ITEM_ERRORS:
        t.summary.not_acted.append(reason)


#: how many times one task searches again after stale findings before it fails
_MAX_REFINDS = 3


def _stale(t: TaskWork) -> bool:
    return ItemStatus.STALE.value in {t.data.outcomes.get(ref) for ref in t.data.actionable}


def _find_again(t: TaskWork) -> None:
    """The system renumbered items since find: forget this task's findings (their refs may
    name other people's items now) and search it again; the request acts when every system
    has been found again. Items already acted on are found no more."""
    t.summary.refinds += 1
    refinds = t.summary.refinds
    if refinds > _MAX_REFINDS:
        t.fail(f"findings went stale {refinds} times (the system keeps renumbering its "
               "items)", "permanent")
        t.summary.failed_at = Stage.ACTING.value
        t.move(Stage.DONE, "stale again", outcome=Outcome.FAILED.value)
        return
    t.data.findings.clear()
    t.data.actionable = set()
    t.data.outcomes.clear()
    t.data.handles.clear()
    t.data.searched = []
    t.move(Stage.PENDING, "findings stale: find again")


def _after_action(ctx: StepContext, w: Work, t: TaskWork, now: float) -> None:
    """Where a task goes once its call returned: wait for the system, for a confirmation,
    to be verified, or done."""
    statuses = {t.data.outcomes.get(ref) for ref in t.data.handles}
    system = ctx.systems[t.system]
    if ItemStatus.PENDING.value in statuses:
        if t.stage is not Stage.WAITING:
            t.move(Stage.WAITING, "the system finishes later")
        # the instance's: a connector may take its interval from its settings
        interval = system.connector().poll_interval if system.cls else 60.0
        t.defer(now + interval, "waiting for the system", retrying=False)
    elif ItemStatus.AWAITING_CONFIRMATION.value in statuses:
        if t.summary.told_at is None:
            t.summary.told_at = now
        # the notices' references (message ids), for the receipt: no personal data
        waiting = ItemStatus.AWAITING_CONFIRMATION.value
        t.summary.notices = sorted({h for ref, h in t.data.handles.items()
                                    if h and t.data.outcomes.get(ref) == waiting})
        t.move(Stage.AWAITING_CONFIRMATION, "told; awaiting confirmation")
        t.defer(now + ctx.host.confirmation_reminder_days * 86400, "awaiting confirmation",
                retrying=False)
    elif t.data.held and t.stage is Stage.ACTING and now < give_up_at(ctx, w):
        # A hold may be lifted while the request is open: the task waits (in acting, its
        # other items acted on) and asks again, daily by default, until the give-up time;
        # then it is verified and ends ``retained``, the hold named on the receipt.
        t.defer(min(now + ctx.host.hold_recheck_hours * 3600, give_up_at(ctx, w)),
                "kept under a hold: checked again later", retrying=False)
    elif w.rule(ctx, t.system).verify and system.cls is not None \
            and system.cls.supports(Capability.FIND):
        t.move(Stage.VERIFYING, "acted")  # a system that is only told cannot be searched
    else:
        t.move(Stage.DONE, "acted", outcome=outcome_of(t))


# poll ----------------------------------------------------------------------------------

def poll(ctx: StepContext, works: Sequence[Work], now: float) -> int:
    """Ask systems about work they accepted earlier (PENDING items), when due; remind
    processors whose confirmation has waited ``confirmation_reminder_days``. Returns how
    many tasks it moved or deferred."""
    per_system: dict[str, list[tuple[Work, TaskWork]]] = defaultdict(list)
    to_remind: dict[str, list[tuple[Work, TaskWork]]] = defaultdict(list)
    for w in works:
        for name, t in w.tasks.items():
            if not t.due(now):
                continue
            if t.stage is Stage.WAITING:
                per_system[name].append((w, t))
            elif t.stage is Stage.AWAITING_CONFIRMATION:
                to_remind[name].append((w, t))
    calls: dict[str, Callable[[], None]] = {
        name: partial(_poll_system, ctx, name, pairs, now) for name, pairs in per_system.items()}
    for name, pairs in to_remind.items():
        calls[name] = (partial(_both, calls[name], partial(_remind_system, ctx, name, pairs, now))
                       if name in calls else partial(_remind_system, ctx, name, pairs, now))
    fan_out(calls, ctx.host.max_workers)
    return sum(len(p) for p in to_remind.values()) + sum(len(p) for p in per_system.values())


def _both(first: Callable[[], None], second: Callable[[], None]) -> None:
    first()
    second()


def _remind_system(ctx: StepContext, name: str, pairs: list[tuple[Work, TaskWork]],
                   now: float) -> None:
    """Remind a system's processor of the notices it has not confirmed (where the
    connector can send reminders; elsewhere the reminder is only counted and shown)."""
    system = ctx.systems[name]
    period = ctx.host.confirmation_reminder_days * 86400
    if system.cls is None or not system.cls.supports(Capability.NOTIFY):
        for _w, t in pairs:
            t.summary.reminders += 1
            t.defer(now + period, "no confirmation yet: reminder due", retrying=False)
        return
    # Tasks due for the same reminder number go in one call: each reminder number makes
    # its own idempotency keys, so a reminder retried after a crash is the same reminder.
    by_number: dict[int, list[tuple[Work, TaskWork]]] = defaultdict(list)
    for w, t in pairs:
        by_number[t.summary.reminders + 1].append((w, t))
    for number, group in sorted(by_number.items()):
        _remind_group(ctx, system, number, group, now, period)


def _remind_group(ctx: StepContext, system: System, number: int,
                  pairs: list[tuple[Work, TaskWork]], now: float, period: float) -> None:
    waiting = ItemStatus.AWAITING_CONFIRMATION.value
    groups = [(w.row.id, [ItemOutcome(t.data.findings[ref], ItemStatus.AWAITING_CONFIRMATION,
                                      handle=h)
                          for ref, h in sorted(t.data.handles.items())
                          if t.data.outcomes.get(ref) == waiting])
              for w, t in pairs]
    due = {w.row.id: w.row.due_at for w, _t in pairs}

    def call(batch: list[ItemOutcome]) -> CallResult:
        subjects = {o.finding.subject for o in batch}
        context = system.context("remind", subjects, key_action=f"remind:{number}",
                                 due={s: due[s] for s in subjects})
        return system.call(lambda c: c.remind(batch), context)

    results = run_isolated(call, [g for g in groups if g[1]], limit(ctx, system.name),
                           lambda v: v.finding.subject)
    for w, t in pairs:
        if w.row.id not in results:  # nothing it could name: counted, as elsewhere
            t.summary.reminders = number
            t.defer(now + period, "no confirmation yet: reminder due", retrying=False)
            continue
        res = results[w.row.id]
        t.attempt("remind", res.attempts)
        if res.error:
            # The notice went out; a reminder that fails is tried again later and never
            # fails the task (the processor may still confirm).
            t.summary.last_error = res.error
            wait = period
            if res.error_kind == "transient":
                wait = res.retry_after if res.retry_after is not None else min(
                    ctx.host.retry.defer_initial, period)
            t.defer(now + wait, f"reminder failed: {res.error}", retrying=False)
            continue
        _record(t, res.values)
        t.summary.reminders = number
        t.summary.last_error = None
        t.defer(now + period, "no confirmation yet: reminder sent", retrying=False)


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
    results = run_isolated(call, [g for g in groups if g[1]], limit(ctx, name),
                           lambda v: v.finding.subject)
    for w, t in pairs:
        res = results.get(w.row.id, CallResult())
        t.attempt("poll", res.attempts)
        _record(t, res.values)
        if res.error and res.error_kind in WAITS:
            failed_call(ctx, w, t, res, now, step="poll")
            continue
        if res.error:
            t.fail(res.error, res.error_kind or "permanent")
            t.summary.failed_at = Stage.ACTING.value
            t.move(Stage.DONE, f"poll failed: {res.error}", outcome=outcome_of(t, failed=True))
            continue
        _after_action(ctx, w, t, now)


# verify --------------------------------------------------------------------------------

def verify(ctx: StepContext, works: Sequence[Work], now: float) -> None:
    """After delete or anonymise, read the acted items back by id (where the connector can)
    and find again: anything left is residue, never success. Rectifications first (their
    own check: :func:`.rights.verify_rectified`)."""
    spaces = ctx.config.id_spaces
    todo: dict[str, list[Work]] = defaultdict(list)
    rights.verify_rectified(ctx, works, now)
    for w in works:
        for name, t in w.tasks.items():
            if t.stage is Stage.VERIFYING and t.due(now):
                todo[name].append(w)
    calls = {}
    for name, ws in todo.items():
        subjects = []
        types = ctx.systems[name].identifier_types
        for w in ws:
            idents = tuple(s.ident for s in w.known.strong() if spaces.searchable_in(s, name)
                           and (types is None or s.type in types))
            w.tasks[name].summary.verified_types = sorted({i.type.value for i in idents})
            # The phones the request came with are searched too, though not strong (a
            # household shares one): a connector searching beyond its mapping (the sql
            # deep scan) then reports a copy of one for review (_given_phone_places).
            phones = tuple(i for i in _given_phones(ctx, w, name) if i not in idents)
            if idents or phones:
                subjects.append(Subject(w.row.id, idents + phones))
        calls[name] = partial(_verify_system, ctx, name, ws, subjects)
    results = fan_out(calls, ctx.host.max_workers)
    for name, (looked, per_subject) in results.items():
        for w in todo[name]:
            t = w.tasks[name]
            res = per_subject.get(w.row.id, CallResult())
            again = looked.get(w.row.id, CallResult())
            if verify_failed(ctx, w, t, res, again, now):
                continue
            t.summary.verified = True
            left = {f.ref for f in again.values if f.system == name}
            left |= {f.ref for f in res.values if f.system == name and any(
                w.known.is_strong(spaces.scope(m, name)) for m in f.matched)}
            for ref in sorted(left):
                kept = t.data.outcomes.get(ref) == ItemStatus.RETAINED.value
                if not kept and ref not in t.data.residue:
                    t.data.residue.append(ref)
            # Places outside the mapping (see Connector.find and Connector.lookup): named on
            # the receipt.
            places = {p for f in [*res.values, *again.values] if f.system == name
                      and f.kind == UNMAPPED_RESIDUE and f.ref in left for p in f.fields}
            for ref, place in _given_phone_places(ctx, w, name, res.values, left):
                if ref not in t.data.residue:
                    t.data.residue.append(ref)
                places.add(place)
            if places:
                t.summary.unmapped_residue = sorted(places | set(t.summary.unmapped_residue))
            t.move(Stage.DONE, "verified", outcome=outcome_of(t))


def _given_phones(ctx: StepContext, w: Work, name: str) -> tuple[Identifier, ...]:
    """The phones given with the request that ``name`` may search (not strong ones)."""
    types = ctx.systems[name].identifier_types
    return tuple(sorted(
        (s.ident for s in w.known.given if s.type is IdentifierType.PHONE
         and not w.known.is_strong(s) and ctx.config.id_spaces.searchable_in(s, name)
         and (types is None or s.type in types)),
        key=lambda i: i.value))


def _given_phone_places(ctx: StepContext, w: Work, name: str, found: Sequence[Finding],
                        left: set[str]) -> list[tuple[str, str]]:
    """(ref, place) of unmapped residue matched only by a phone given with the request: a
    copy of the person's number left outside the mapping, or of a housemate's same number,
    so residue for a person to review (the task is ``partial``, never ``completed``), its
    place named ``schema.table.column (a phone: review)``, never its value."""
    phones = set(_given_phones(ctx, w, name))
    return [(f.ref, f"{p} (a phone: review)") for f in found
            if f.system == name and f.kind == UNMAPPED_RESIDUE and f.ref not in left
            and phones.intersection(f.matched) for p in f.fields]


def _verify_system(ctx: StepContext, name: str, ws: list[Work], subjects: list[Subject]
                   ) -> tuple[dict[str, CallResult], dict[str, CallResult]]:
    """(lookup results, find results) per request of one system."""
    system = ctx.systems[name]
    looked: dict[str, CallResult] = {}
    # An anonymised item still exists, by design: only deleted items are read back.
    deleted = [w for w in ws if w.rule(ctx, name).read_back]
    if deleted and system.cls is not None and system.cls.supports(Capability.LOOKUP):
        def call(batch: list[Finding]) -> CallResult:
            return system.call(lambda c: c.lookup(batch),
                               system.context("lookup", {f.subject for f in batch}))
        groups = [(w.row.id, [w.tasks[name].data.findings[r]
                              for r in sorted(w.tasks[name].data.actionable)])
                  for w in deleted]
        looked = run_isolated(call, [g for g in groups if g[1]], limit(ctx, name),
                              lambda f: f.subject)
    found = find_call(system, subjects, limit(ctx, name), "verify")() if subjects else {}
    return looked, found


