"""The operator's desk: a request's review items and plan as the ledger holds them, and the
decisions and approval an operator records (``erasure review``, ``erasure plan``,
``erasure approve``). Nothing here calls a system: what is shown is what the last find
stored, encrypted, for the open request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..freetext import check_reference, seal_reason
from ..ledger import Ledger, RequestRow, utcnow
from ..shredding import RequestKeys
from ..state import read_request_blob
from .review import (
    EXCLUDE,
    INCLUDE,
    Resolved,
    ReviewItem,
    apply_decisions,
    plan_hash,
    resolve,
    review_items,
    weak_values,
)
from .tasks import Stage
from .work import Decision, StepContext, Work
from .writer import TaskWriter

__all__ = ["Desk", "PlanSystem", "PlanView", "ReviewView"]

#: other open requests compared for a shared weak identifier (the newest due first)
_COMPARED = 10_000


@dataclass
class ReviewView:
    """What ``erasure review R`` shows."""

    row: RequestRow
    #: False once the request ended: its values are purged and only hashes remain
    values: bool
    items: list[ReviewItem] = field(default_factory=list)
    #: per system, why it has no items to show yet (not searched, acting already)
    notes: dict[str, str] = field(default_factory=dict)
    #: (system, item hash, decision) recorded by this command
    recorded: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PlanSystem:
    """One system's part of the plan an approval covers."""

    system: str
    connector: str
    policy: str
    action: str
    stage: str
    items: int
    review: tuple[ReviewItem, ...]
    note: str = ""


@dataclass
class PlanView:
    """What ``erasure plan R`` shows: per system, and the plan's hash (None while a
    system is not searched yet: there is no whole plan to approve)."""

    row: RequestRow
    systems: list[PlanSystem]
    plan_hash: str | None


class Desk:
    """Review, plan and approval of one ledger's requests."""

    def __init__(self, ctx: StepContext, ledger: Ledger, writer: TaskWriter,
                 ciphers: RequestKeys) -> None:
        self.ctx, self.ledger, self.writer, self.ciphers = ctx, ledger, writer, ciphers

    # reading ---------------------------------------------------------------------------

    def _work(self, row: RequestRow) -> Work:
        w = self.writer.load([row])[0]
        apply_decisions(self.ctx, [w])  # decisions recorded since the last run count
        return w

    def review(self, request_id: str) -> ReviewView:
        """The request's review items with why each is weak; values only while open."""
        row = self.ledger.get_request(request_id)
        if row.status == "done":
            return self._ended(row)
        w = self._work(row)
        view = ReviewView(row, values=True)
        view.items = review_items(self.ctx, w, shared_with_others=self._shared(w))
        view.notes = _notes(self.ctx, w)
        return view

    def _ended(self, row: RequestRow) -> ReviewView:
        """An ended request: the receipts' review item hashes and decisions, no values."""
        view = ReviewView(row, values=False)
        for r in self.ledger.receipts(row.id):
            body = r["body"] if isinstance(r["body"], dict) else json.loads(r["body"])
            decided = {d["item"]: d for d in body.get("review_decisions", [])}
            # included items were acted on (the receipt's items): still review items, in
            # the same hash order as while the request was open
            reviewed = sorted({*body.get("review_items", []), *decided})
            for n, item in enumerate(reviewed, 1):
                d = decided.get(item)
                view.items.append(ReviewItem(
                    system=body["system"], index=n, item=item, kind="", reasons=(),
                    decision=None if d is None else Decision(
                        d["decision"], d["by"], d["at"], d.get("reason"))))
        return view

    def _shared(self, w: Work) -> list[tuple[str, str]]:
        """Weak identifiers of the request's review items that another open request's
        subject was given or has been found with (a shared phone)."""
        wanted = weak_values(self.ctx, w)
        if not wanted:
            return []
        rows = [r for r in self.ledger.list_requests(open_only=True, limit=_COMPARED)
                if r.id != w.row.id and r.identifiers is not None]
        self.ciphers.load([r.id for r in rows])
        shared: set[tuple[str, str]] = set()
        for r in rows:
            known, _intent = read_request_blob(self.ciphers.decrypt(r.id, r.identifiers or b""))
            shared.update(v for s in known.all()
                          if (v := (s.type.value, s.ident.value)) in wanted)
        return sorted(shared)

    def plan(self, request_id: str) -> PlanView:
        """The plan an approval covers: per system its action, policy, the items it acts
        on (included review items among them) and its review items with decisions."""
        row = self.ledger.get_request(request_id)
        if row.status == "done":
            raise UsageError(f"request {request_id} has ended ({row.outcome}): its receipts "
                             f"say what was done (`erasure receipts show {request_id}`)")
        w = self._work(row)
        items = review_items(self.ctx, w)
        notes = _notes(self.ctx, w)
        systems = []
        for name in sorted(w.tasks):
            if name not in self.ctx.systems:
                continue
            t = w.tasks[name]
            system = self.ctx.systems[name]
            action = w.rule(self.ctx, name).action
            systems.append(PlanSystem(
                system=name, connector=system.config.connector,
                policy=system.config.policy.value,
                action=action.value if action else "none", stage=t.stage.value,
                items=len(t.data.actionable),
                review=tuple(i for i in items if i.system == name),
                note=notes.get(name, "")))
        whole = all(t.stage is not Stage.PENDING for t in w.tasks.values())
        return PlanView(row, systems, plan_hash(self.ctx, w) if whole else None)

    # recording -------------------------------------------------------------------------

    def decide(self, request_id: str, *, include: Sequence[str] = (),
               exclude: Sequence[str] = (), by: str, reason: str | None = None
               ) -> ReviewView:
        """Record the operator's decisions on review items (``system:N``, a hash prefix,
        or ``all``). Every reference is resolved before anything is recorded: one that
        names no item, or an item of a system that has acted already, records nothing."""
        check_reference(by, self.ctx.host.ticket_pattern, "--by")
        if reason is not None and (not reason.strip() or len(reason) > 500):
            raise UsageError("--reason must be 1-500 characters; nothing was recorded")
        row = self.ledger.get_request(request_id)
        if row.status == "done":
            raise UsageError(f"request {request_id} has ended ({row.outcome}): decisions are "
                             "taken before it acts; nothing was recorded")
        view = self.review(request_id)
        chosen = Resolved()
        resolve(view.items, include, INCLUDE, chosen)
        resolve(view.items, exclude, EXCLUDE, chosen)
        if not chosen.chosen:
            raise UsageError(f"request {request_id} has no review items; nothing was recorded")
        with self._held(row) as held:
            w = held or self.writer.load([row])[0]
            late = sorted({s for s, _i in chosen.chosen
                           if w.tasks[s].stage is not Stage.FOUND})
            if late:
                raise UsageError(f"request {request_id} has acted in {', '.join(late)} "
                                 "already: decisions are taken before a system acts; nothing "
                                 "was recorded")
            return self._record(request_id, chosen, by, reason)

    @contextmanager
    def _held(self, row: RequestRow) -> Iterator[Work | None]:
        """An open request's work under its lease while decisions are checked and
        recorded, so that a run cannot start acting in between (a request awaiting
        approval is never claimed by a run: None, nothing to hold)."""
        if row.status != "open":
            yield None
            return
        got = self.ledger.claim(1, self.ctx.host.lease_seconds, self.ctx.clock(),
                                only=[row.id], due_by=float("inf"))
        if not got:
            raise UsageError(f"request {row.id} is being worked on by a run; try again when "
                             "it has finished; nothing was recorded")
        try:
            yield self.writer.load(got)[0]
        finally:
            self.ledger.release([row.id])

    def _record(self, request_id: str, chosen: Resolved, by: str,
                reason: str | None) -> ReviewView:
        now = utcnow()
        sealed = None if reason is None else seal_reason(
            self.ctx.keys.digest, lambda data: self.ciphers.encrypt(request_id, data),
            request_id, "review", reason)
        rows: list[dict[str, Any]] = [
            {"request_id": request_id, "system": s, "item": item, "decision": d,
             "decided_by": by, "decided_at": now, "reason": sealed}
            for (s, item), d in sorted(chosen.chosen.items())]
        self.ledger.record_decisions(rows)
        view = self.review(request_id)
        view.recorded = [(r["system"], r["item"], r["decision"]) for r in rows]
        return view

    def approve(self, request_id: str, expect: str | None = None) -> str:
        """Approve the plan of a request awaiting approval; its hash. With ``expect``,
        refused (nothing recorded) unless the plan is still the one with that hash."""
        row = self.ledger.get_request(request_id)
        if row.status != "awaiting_approval":
            raise UsageError(f"request {request_id} is not awaiting approval "
                             f"(it is {row.status})")
        plan = self.plan(request_id)
        if plan.plan_hash is None:
            raise UsageError(f"request {request_id} is not searched everywhere yet; "
                             "nothing was approved")
        if expect is not None and expect.strip().lower() != plan.plan_hash:
            raise UsageError(_mismatch(request_id, expect.strip().lower(), row.plan_hash,
                                       plan.plan_hash))
        # The hash of the plan with its decisions: the run after this one finds again and
        # acts only if the systems still hold this plan.
        self.ledger.update_request(request_id, status="open", approved_at=utcnow(),
                                   plan_hash=plan.plan_hash)
        return plan.plan_hash


def _mismatch(request_id: str, given: str, stopped_at: str | None, now: str) -> str:
    """Why ``approve --plan-hash GIVEN`` is refused, in words: a value that is no plan hash
    at all (a typo) is not told as a plan that changed."""
    see = f"see `erasure plan {request_id}`; nothing was approved"
    if given == stopped_at:
        return (f"the plan of {request_id} changed since it stopped for approval with hash "
                f"{given}: its hash is now {now}; {see}")
    if len(given) != len(now) or any(c not in "0123456789abcdef" for c in given):
        return (f"--plan-hash {given} is not a plan hash ({len(now)} hex digits), so it "
                f"matched no plan; the current plan of {request_id} has hash {now}; {see}")
    return (f"--plan-hash {given} does not match the current plan of {request_id}, whose "
            f"hash is {now}; {see}")


def _notes(ctx: StepContext, w: Work) -> dict[str, str]:
    """Per system, why its review items cannot be shown or decided (yet, or any more)."""
    out = {}
    for name, t in sorted(w.tasks.items()):
        if name not in ctx.systems:
            continue
        if t.stage is Stage.PENDING:
            out[name] = "not searched yet: `erasure run` searches it"
        elif t.stage is Stage.DONE:
            out[name] = f"done ({t.outcome})"
        elif t.stage is not Stage.FOUND:
            out[name] = f"{t.stage.value.replace('_', ' ')}: decisions are closed"
    return out
