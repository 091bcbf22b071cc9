"""Rectification (Art. 16) and objection (Art. 21): what the host works out before it calls
a connector, and how a rectification is verified.

A rectification is planned once per request, from every system's findings (so every
system gets the same decision): for each correction, the old values are those of its type
on the items the request may act on (matched through a strong identifier). A correction is
refused, for a person to review, when one of those old values is also on an item the
request may not act on (a phone another person shares): correcting it would change what
that person is known by, or leave the two records disagreeing without anyone deciding.
Nothing of a refused correction is applied anywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..errors import UsageError
from ..models import (
    Action,
    Capability,
    Correction,
    CorrectionType,
    Finding,
    Identifier,
    IdentifierType,
    ItemStatus,
    ObjectionScope,
    Outcome,
    Subject,
)
from ..systems import CallResult, fan_out
from .tasks import Stage, TaskWork
from .work import (
    StepContext,
    Work,
    find_call,
    limit,
    outcome_of,
    verify_failed,
)

__all__ = [
    "CorrectionPlan", "call_arguments", "calls_apart", "plan_corrections", "plan_for",
    "rectified_left", "start_rectifying", "verification_subject", "verify_rectified",
]

#: why a correction is refused (the receipt's error; no values)
SHARED = "its old value is also on items of someone else: refused, for review"
AMBIGUOUS = ("the items hold several values and the request names none as the old one: "
             "refused, for review (give the old value, e.g. --phone OLD)")


@dataclass(frozen=True)
class CorrectionPlan:
    """What a rectification request does: the corrections to apply (with the old values
    they replace) and, per refused type, why."""

    apply: tuple[Correction, ...]
    refused: dict[str, str]

    @property
    def types(self) -> list[str]:
        """The corrected fields' names, for the receipt (never values)."""
        return sorted(c.type.value for c in self.apply)


def _values(f: Finding) -> Iterable[Identifier]:
    """The identifiers an item holds, normalised (``related`` is the connector's own)."""
    for i in (*f.matched, *f.related):
        try:
            yield Identifier.parse(i.type, i.value)
        except UsageError:
            continue


def plan_corrections(request_id: str, corrections: Sequence[tuple[str, str]],
                     findings: Iterable[tuple[Finding, bool]],
                     given: Iterable[Identifier] = ()) -> CorrectionPlan:
    """The request's corrections with their old values, given every finding of every
    system (and whether the request may act on it) and the identifiers the request gave.

    The old values of a type are those the request gave (``--email old@ --set email=new@``:
    the person said which value is wrong), else the one value of the type on the items the
    request may act on. Several values and none given: refused, which one is wrong is the
    person's to say (an order may carry a gift recipient's email). An old value also on an
    item the request may not act on (a phone two people share): refused, for review.
    """
    told: dict[IdentifierType, set[str]] = defaultdict(set)
    for i in given:
        told[i.type].add(i.value)
    held: dict[IdentifierType, set[str]] = defaultdict(set)
    elsewhere: dict[IdentifierType, set[str]] = defaultdict(set)
    for f, actionable in findings:
        for i in _values(f):
            (held if actionable else elsewhere)[i.type].add(i.value)
    apply, refused = [], {}
    for ctype, value in corrections:
        fix = Correction.parse(ctype, value, subject=request_id)
        itype = fix.type.identifier_type
        if itype is None:  # an address is never searched: every address field is set
            apply.append(fix)
            continue
        old = (told[itype] or held[itype]) - {fix.new}
        if len(old) > 1 and not told[itype]:
            refused[fix.type.value] = AMBIGUOUS
        elif old & elsewhere[itype]:
            refused[fix.type.value] = SHARED
        elif old:
            apply.append(Correction(request_id, fix.type, fix.new, tuple(sorted(old))))
    return CorrectionPlan(tuple(apply), refused)


def verification_subject(request_id: str, plan: CorrectionPlan,
                         searchable: frozenset[IdentifierType] | None) -> Subject | None:
    """Who to find to verify a rectification in a system that searches ``searchable``
    (None: every type): the old values (to be gone) and the new ones (to be there)."""
    idents = []
    for c in plan.apply:
        itype = c.type.identifier_type
        if itype is None or (searchable is not None and itype not in searchable):
            continue
        idents += [Identifier(itype, v) for v in (*c.old, c.new)]
    return Subject(request_id, tuple(dict.fromkeys(idents))) if idents else None


def rectified_left(plan: CorrectionPlan, findings: dict[str, Finding],
                   outcomes: dict[str, str], found_again: Iterable[Finding],
                   searchable: frozenset[IdentifierType] | None) -> set[str]:
    """Refs of rectified items that still hold an old value or lack the new one: every
    item that held an old value must be found again by the new value and not by an old."""
    again: dict[str, set[Identifier]] = defaultdict(set)
    for f in found_again:
        again[f.ref].update(_values(f))
    left = set()
    for ref, f in findings.items():
        if outcomes.get(ref) not in (ItemStatus.DONE.value, ItemStatus.ALREADY_DONE.value):
            continue  # failed or not acted on: counted as such, not as residue
        holds = set(_values(f))
        for c in plan.apply:
            itype = c.type.identifier_type
            if itype is None or (searchable is not None and itype not in searchable):
                continue
            if not any(Identifier(itype, v) in holds for v in c.old):
                continue  # this item held no old value of the type: nothing to correct
            now = again.get(ref, set())
            if Identifier(itype, c.new) not in now or any(
                    Identifier(itype, v) in now for v in c.old):
                left.add(ref)
    return left


def plan_for(w: Work) -> CorrectionPlan:
    """The rectification plan of a request whose search is complete everywhere."""
    return plan_corrections(w.row.id, w.intent.corrections, (
        (f, ref in t.data.actionable)
        for t in w.tasks.values() for ref, f in t.data.findings.items()),
        given=(s.ident for s in w.known.given))


def start_rectifying(w: Work, t: TaskWork) -> bool:
    """Record what the rectification corrects in this system (types only: the receipt's
    ``corrections`` and ``corrections_refused``); False when it is done already: nothing
    left to correct here (refused for review, or no item holds an old value)."""
    plan = plan_for(w)
    t.summary.corrections = plan.types
    t.summary.corrections_refused = sorted(plan.refused)
    for ctype, why in sorted(plan.refused.items()):
        t.fail(f"{ctype}: {why}", "review")
    if plan.apply and t.data.actionable:
        return True
    outcome = Outcome.PARTIAL if plan.refused else Outcome.COMPLETED
    t.move(Stage.DONE, "refused for review" if plan.refused else "nothing to correct",
           outcome=outcome.value)
    return False


def calls_apart(action: Action, pairs: list[tuple[Work, TaskWork]]
                ) -> list[list[tuple[Work, TaskWork]]]:
    """The tasks of one action in groups that may share a call: one objection scope per
    call (a call never carries two requests' intents that differ)."""
    if action is not Action.OBJECT:
        return [pairs]
    by_scope: dict[ObjectionScope, list[tuple[Work, TaskWork]]] = defaultdict(list)
    for w, t in pairs:
        by_scope[scope_of(w.intent.scope)].append((w, t))
    return [by_scope[s] for s in sorted(by_scope)]


def call_arguments(action: Action, works: Sequence[Work]) -> dict[str, Any]:
    """Per request, what a call of ``action`` carries besides findings: a rectification's
    corrections, an objection's scope."""
    if action is Action.RECTIFY:
        return {w.row.id: plan_for(w).apply for w in works}
    if action is Action.OBJECT:
        return {w.row.id: scope_of(w.intent.scope) for w in works}
    return {}


def verify_rectified(ctx: StepContext, works: Sequence[Work], now: float) -> None:
    """Rectified items read back: found again by the new values and not by the old ones
    (every system can find), the new address in the exported item (where it exports).
    An item that fails either is residue: the outcome is ``partial``."""
    todo: dict[str, list[Work]] = defaultdict(list)
    for w in works:
        for name, t in w.tasks.items():
            if (t.stage is Stage.VERIFYING and t.due(now)
                    and t.summary.action == Action.RECTIFY.value):
                todo[name].append(w)
    calls = {name: partial(_verify_system, ctx, name, ws) for name, ws in todo.items()}
    for name, (found, exported) in fan_out(calls, ctx.host.max_workers).items():
        for w in todo[name]:
            t = w.tasks[name]
            res = found.get(w.row.id, CallResult())
            read = exported.get(w.row.id, CallResult())
            if verify_failed(ctx, w, t, res, read, now):
                continue
            plan = plan_for(w)
            system = ctx.systems[name]
            types = system.identifier_types
            left = rectified_left(plan, t.data.findings, t.data.outcomes,
                                  (f for f in res.values if f.system == name), types)
            left |= _address_missing(plan, t.data.findings, t.data.outcomes, read.values)
            left |= _readback_left(plan, t.data.findings, t.data.outcomes, read.values, types)
            t.data.residue = sorted(set(t.data.residue) | left)
            t.summary.verified = True
            t.move(Stage.DONE, "verified", outcome=outcome_of(t))


def _verify_system(ctx: StepContext, name: str, ws: list[Work]
                   ) -> tuple[dict[str, CallResult], dict[str, CallResult]]:
    """(find results, export results) per request of one system."""
    system = ctx.systems[name]
    types = system.identifier_types
    subjects = [s for w in ws if (s := verification_subject(w.row.id, plan_for(w), types))]
    found = find_call(system, subjects, limit(ctx, name), "verify")() if subjects else {}
    exported: dict[str, CallResult] = {}
    readable = system.cls is not None and system.cls.supports(Capability.EXPORT)
    groups = [(w.row.id, [t.data.findings[r] for r in sorted(t.data.actionable)
                          if t.data.outcomes.get(r) == ItemStatus.DONE.value])
              for w in ws if any(not _found_again(c, types) for c in plan_for(w).apply)
              for t in (w.tasks[name],)]
    if readable and any(g for _rid, g in groups):
        from .isolation import run_isolated

        def call(batch: list[Finding]) -> CallResult:
            return system.call(lambda c: c.export(batch),
                               system.context("verify", {f.subject for f in batch}))
        exported = run_isolated(call, [g for g in groups if g[1]], limit(ctx, name),
                                lambda r: r.finding.subject)
    return found, exported


def _found_again(c: Correction, searchable: frozenset[IdentifierType] | None) -> bool:
    """Whether a correction is verified by finding again (else by reading items back)."""
    itype = c.type.identifier_type
    return itype is not None and (searchable is None or itype in searchable)


def _readback_left(plan: CorrectionPlan, findings: dict[str, Finding],
                   outcomes: dict[str, str], records: Sequence[Any],
                   searchable: frozenset[IdentifierType] | None) -> set[str]:
    """Refs of changed items, read back, that still hold an old value, or lack the new one,
    of an identifier type the system cannot be searched by."""
    fixes = [c for c in plan.apply if c.type.identifier_type is not None
             and not _found_again(c, searchable)]
    left = set()
    for r in records:
        f = findings.get(r.finding.ref)
        if f is None or outcomes.get(f.ref) != ItemStatus.DONE.value:
            continue
        holds = set(_values(f))
        values = [v for v in r.data.values() if isinstance(v, str)]
        for c in fixes:
            itype = c.type.identifier_type
            if itype is None or not any(Identifier(itype, v) in holds for v in c.old):
                continue
            if (not any(c.matches(v) is True for v in values)
                    or any(c.matches(v) is False for v in values)):
                left.add(f.ref)
    return left


def _address_missing(plan: CorrectionPlan, findings: dict[str, Finding],
                     outcomes: dict[str, str], records: Sequence[Any]) -> set[str]:
    """Refs of items changed by an address correction whose record lacks the new address.

    An address is never searched by, so which field holds it is the connector's to know:
    only an item changed by nothing but the address correction (it held no old value of
    another correction) must show the new address when read back.
    """
    fixes = [c for c in plan.apply if c.type is CorrectionType.ADDRESS]
    if not fixes:
        return set()
    others = {Identifier(itype, v) for c in plan.apply
              if (itype := c.type.identifier_type) is not None for v in c.old}
    missing = set()
    for r in records:
        ref = r.finding.ref
        if outcomes.get(ref) != ItemStatus.DONE.value or ref not in findings:
            continue
        if set(_values(findings[ref])) & others:
            continue  # changed by another correction too: the address may not be there
        values = [v for v in r.data.values() if isinstance(v, str)]
        if not all(any(c.matches(v) is True for v in values) for c in fixes):
            missing.add(ref)
    return missing


def scope_of(value: str | None) -> ObjectionScope:
    """An objection's scope (marketing unless the request named another)."""
    return ObjectionScope(value or ObjectionScope.MARKETING.value)
