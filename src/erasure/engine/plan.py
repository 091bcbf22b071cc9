"""The dry run: find across every system and say what each would do, writing nothing
anywhere (not even the ledger). It may run before the subject's identity is verified."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..dates import add_months, utcnow
from ..idspaces import Scoped
from ..ledger import RequestRow
from ..models import Outcome, RequestType
from ..state import KnownIdentifiers, RequestIntent, TaskData
from .find import coverage_gap, find
from .tasks import Stage, TaskWork
from .work import StepContext, Work

__all__ = ["PlanLine", "plan"]


@dataclass(frozen=True)
class PlanLine:
    """One system's part of a plan (``--dry-run``): what would happen, without doing it."""


    system: str
    connector: str
    policy: str
    action: str
    found: int
    actionable: int
    review: int
    note: str = ""
    #: keyed hashes of the items it would act on: the receipt's ``items`` for the same data
    items: tuple[str, ...] = ()
    id_spaces: tuple[str, ...] = ()
    #: why the system could not be searched (its counts then mean nothing); "" if it was
    unsearched: str = ""


def plan(ctx: StepContext, request_type: RequestType, idents: tuple[Scoped, ...], *,
         ticket: str | None, verified: bool, intent: RequestIntent) -> list[PlanLine]:
    """Find across all systems with ``idents`` and say what ``request_type`` would do in
    each. Writes nothing anywhere."""
    known = KnownIdentifiers.from_request(idents, ctx.host.strong_identifiers)
    now = utcnow()
    row = RequestRow(
        id="dry-run", ticket=ticket, type=request_type.value, status="open", outcome=None,
        verified=verified, override=None, received_at=now, due_at=add_months(now, 1),
        extension_reason=None, created_at=now, finished_at=None, approved_at=None,
        plan_hash=None,
        identifiers=None, subject_digest=None, lease_owner=None, lease_until=None,
    )
    work = Work(row=row, type=request_type, known=known, intent=intent, tasks={
        s: TaskWork(request_id="dry-run", system=s, stage=Stage.PENDING, outcome=None,
                    data=TaskData())
        for s in ctx.systems
    })
    find(ctx, [work], time.time())
    # A search that failed (deferred or blocked) leaves its task pending: never "found 0".
    unsearched = {name: t.summary.last_error or "the search failed"
                  for name, t in work.tasks.items() if t.stage is Stage.PENDING}
    lines = []
    for name, system in ctx.systems.items():
        t = work.tasks[name]
        rule = work.rule(ctx, name)
        action = rule.action
        note = system.uncovered or t.summary.error or ""
        if rule.action is None and rule.idle_outcome is Outcome.RETAINED:
            note = f"retained: {system.config.reason}"
        gap = coverage_gap(ctx, work, name) if t.stage is Stage.FOUND else None
        if name in unsearched:
            note = f"could not be searched: {unsearched[name]}"
        elif gap is not None:
            note = f"not covered: {gap}"
        elif not known.complete and not unsearched:
            note = "; ".join(filter(None, [note, "expansion stopped at expansion_rounds"]))
        digest = ctx.keys.digest
        lines.append(PlanLine(
            system=name, connector=system.config.connector,
            policy=system.config.policy.value,
            action=action.value if action else "none",
            found=len(t.data.findings), actionable=len(t.data.actionable),
            review=len(t.data.findings) - len(t.data.actionable), note=note,
            items=tuple(sorted(digest(name, ref) for ref in t.data.actionable)),
            id_spaces=tuple(ctx.config.id_spaces.used(known.all(), name)),
            unsearched=unsearched.get(name, ""),
        ))
    return lines
