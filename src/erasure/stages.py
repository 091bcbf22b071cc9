"""The steps of a batch of requests: find with expansion, act, verify, finish with receipts."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .export import write_package
from .ledger import RequestRow, requests_t, tasks_t, utcnow
from .models import (
    Action,
    Finding,
    Identifier,
    ItemOutcome,
    ItemStatus,
    Outcome,
    Policy,
    Record,
    RequestType,
    Subject,
)
from .policy import action_for, capability_for, worst
from .receipts import Receipt, seal
from .state import KnownIdentifiers, TaskState
from .systems import CallResult, System, fan_out

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

__all__ = ["Stages", "TaskWork", "Work"]

log = logging.getLogger(__name__)

_ITEM_FN: dict[Action, Callable[[Any, Sequence[Finding]], Any]] = {
    Action.DELETE: lambda c, fs: c.delete(fs),
    Action.ANONYMISE: lambda c, fs: c.anonymise(fs),
    Action.RESTRICT: lambda c, fs: c.restrict(fs),
}


@dataclass
class TaskWork:
    """One request in one system, in memory during a run."""

    system: str
    stage: str  # pending | found | acting | acted | done
    outcome: str | None
    state: TaskState
    summary: dict[str, Any] = field(default_factory=dict)

    def attempt(self, action: str, n: int) -> None:
        attempts = self.summary.setdefault("attempts", {})
        attempts[action] = attempts.get(action, 0) + n

    def fail(self, message: str, kind: str) -> None:
        self.summary.setdefault("errors", []).append(message)
        self.summary["error"] = message
        self.summary["error_kind"] = kind


@dataclass(eq=False)  # identity: works are kept in sets during a batch
class Work:
    """One request during a run."""

    row: RequestRow
    type: RequestType
    known: KnownIdentifiers
    tasks: dict[str, TaskWork]


class Stages:
    """Runs each step for a batch and writes it to the ledger."""

    def __init__(self, orch: Orchestrator) -> None:
        self.o = orch

    @property
    def host(self) -> Any:
        return self.o.config.host

    def action_of(self, w: Work, system: System) -> Action | None:
        return action_for(w.type, system.config.policy)

    def _chunks(self, items: list[Any]) -> list[list[Any]]:
        n = self.host.batch_size
        return [items[i : i + n] for i in range(0, len(items), n)]

    def _save(self, works: Sequence[Work], stage_from: set[str] | None = None,
              with_state: bool = True, identifiers: bool = False) -> None:
        updates = []
        enc = self.o.keys.encrypt
        for w in works:
            for t in w.tasks.values():
                if stage_from is not None and t.stage not in stage_from:
                    continue
                u: dict[str, Any] = {"request_id": w.row.id, "system": t.system,
                                     "stage": t.stage, "outcome": t.outcome,
                                     "summary": json.dumps(t.summary, sort_keys=True)}
                if with_state:
                    u["state"] = enc(t.state.to_bytes())
                updates.append(u)
        with self.o.ledger.tx() as conn:
            self.o.ledger.save_tasks(updates, conn)
            if identifiers:
                for w in works:
                    conn.execute(
                        requests_t.update().where(requests_t.c.id == w.row.id).values(
                            identifiers=enc(json.dumps(w.known.to_json()).encode())
                        )
                    )

    # find ----------------------------------------------------------------------------

    def find(self, works: Sequence[Work], *, persist: bool = True) -> None:
        """Find in every system, feeding identifiers found in one into the others."""
        strong_types = set(self.host.strong_identifiers)
        todo: dict[str, list[Work]] = defaultdict(list)
        now = utcnow().isoformat()
        for w in works:
            for name, t in w.tasks.items():
                if t.stage != "pending":
                    continue
                system = self.o.systems.get(name)
                t.summary.setdefault("started_at", now)
                if system is None or system.uncovered:
                    t.stage, t.outcome = "done", Outcome.NOT_COVERED.value
                    t.fail(system.uncovered if system else "system not configured", "uncovered")
                    continue
                todo[name].append(w)
        queried: dict[tuple[str, str], set[Identifier]] = defaultdict(set)
        failed: set[tuple[str, str]] = set()
        for _round in range(self.host.expansion_rounds + 1):
            calls: dict[str, Callable[[], CallResult]] = {}
            for name, ws in todo.items():
                system = self.o.systems[name]
                types = system.cls.identifier_types if system.cls else None
                subjects = []
                for w in ws:
                    if (w.row.id, name) in failed:
                        continue
                    new = tuple(
                        i for i in w.known.all()
                        if i not in queried[(w.row.id, name)] and (types is None or i.type in types)
                    )
                    if new:
                        queried[(w.row.id, name)].update(new)
                        subjects.append(Subject(w.row.id, new))
                if subjects:
                    calls[name] = self._find_call(system, subjects)
            if not calls:
                break
            results = fan_out(calls, self.host.max_workers)
            by_id = {w.row.id: w for w in works}
            changed = False
            for name, res in results.items():
                for w in todo[name]:
                    w.tasks[name].attempt("find", res.attempts)
                if res.error:
                    for w in todo[name]:
                        t = w.tasks[name]
                        if (w.row.id, name) not in failed:
                            failed.add((w.row.id, name))
                            t.fail(res.error, res.error_kind or "permanent")
                    continue
                for f in res.values:
                    w = by_id.get(f.subject)
                    if w is None or f.system != name:
                        continue  # a connector bug must never attach data to another request
                    w.tasks[name].state.merge(f)
                    strong = any(w.known.is_strong(m) for m in f.matched)
                    for rel in f.related:
                        try:
                            ident = Identifier.parse(rel.type, rel.value)
                        except UsageError:
                            continue
                        changed |= w.known.add(ident, strong and ident.type in strong_types)
            if not changed:
                break
        for name, ws in todo.items():
            for w in ws:
                t = w.tasks[name]
                if (w.row.id, name) in failed:
                    t.stage, t.outcome = "done", Outcome.FAILED.value
                    continue
                t.state.actionable = {
                    ref for ref, f in t.state.findings.items()
                    if any(w.known.is_strong(m) for m in f.matched)
                }
                t.summary["found"] = len(t.state.findings)
                t.summary["review"] = len(t.state.findings) - len(t.state.actionable)
                t.stage = "found"
        if persist:
            self._save(works, stage_from={"found", "done"}, identifiers=True)

    def _find_call(self, system: System, subjects: list[Subject]) -> Callable[[], CallResult]:
        def run() -> CallResult:
            out = CallResult()
            for chunk in self._chunks(subjects):
                res = system.call(lambda c, ch=chunk: c.find(ch))
                out.attempts += res.attempts
                if res.error:
                    out.error, out.error_kind = res.error, res.error_kind
                    return out
                out.values.extend(res.values)
            return out
        return run

    # act -----------------------------------------------------------------------------

    def act(self, works: Sequence[Work]) -> None:
        """Export, delete, anonymise or restrict what find marked actionable."""
        per_system: dict[str, list[tuple[Work, TaskWork]]] = defaultdict(list)
        for w in works:
            for name, t in w.tasks.items():
                if t.stage not in ("found", "acting"):
                    continue
                system = self.o.systems[name]
                action = self.action_of(w, system)
                t.summary["action"] = action.value if action else None
                if action is None:
                    t.stage = "acted"
                    if w.type is RequestType.ERASURE and system.config.policy is Policy.RETAIN:
                        t.outcome = Outcome.RETAINED.value
                    continue
                if not system.cls or not system.cls.supports(capability_for(action)):
                    t.stage, t.outcome = "done", Outcome.NOT_COVERED.value
                    t.fail(f"connector {system.config.connector!r} cannot {action.value}",
                           "unsupported")
                    continue
                t.stage = "acting"
                per_system[name].append((w, t))
        # Recorded before the calls: a run killed now re-runs the (idempotent) action.
        self._save(works, with_state=False)
        exports: dict[str, dict[str, list[Record]]] = defaultdict(dict)
        calls = {name: self._act_call(name, pairs, exports) for name, pairs in per_system.items()}
        fan_out(calls, self.host.max_workers)
        for w in works:
            if w.type in (RequestType.ACCESS, RequestType.PORTABILITY) and any(
                t.summary.get("action") == Action.EXPORT.value for t in w.tasks.values()
            ):
                path = write_package(
                    self.host.exports(), w.row.id, w.type.value, exports.get(w.row.id, {}),
                    generated_at=utcnow().isoformat(),
                )
                for t in w.tasks.values():
                    t.summary["package"] = path.name
        self._save(works)

    def _act_call(self, name: str, pairs: list[tuple[Work, TaskWork]],
                  exports: dict[str, dict[str, list[Record]]]) -> Callable[[], None]:
        system = self.o.systems[name]

        def run() -> None:
            action = Action(pairs[0][1].summary["action"])
            by_req = {w.row.id: t for w, t in pairs}
            findings = [
                t.state.findings[ref] for _w, t in pairs for ref in sorted(t.state.actionable)
            ]
            for chunk in self._chunks(findings):
                if action is Action.EXPORT:
                    res = system.call(lambda c, ch=chunk: c.export(ch))
                else:
                    res = system.call_items(_ITEM_FN[action], chunk)
                reqs = {f.subject for f in chunk}
                for rid in reqs:
                    by_req[rid].attempt(action.value, res.attempts)
                if res.error:
                    for rid in reqs:
                        by_req[rid].fail(res.error, res.error_kind or "permanent")
                for v in res.values:
                    t = by_req.get(v.finding.subject)
                    if t is None:
                        continue
                    if isinstance(v, Record):
                        exports[v.finding.subject].setdefault(name, []).append(v)
                        t.state.outcomes[v.finding.ref] = "exported"
                    elif isinstance(v, ItemOutcome):
                        t.state.outcomes[v.finding.ref] = v.status.value
            for _w, t in pairs:
                t.stage = "acted"
        return run

    # verify --------------------------------------------------------------------------

    def verify(self, works: Sequence[Work]) -> None:
        """After delete or anonymise, find again: anything left is residue, never success."""
        todo: dict[str, list[Work]] = defaultdict(list)
        for w in works:
            for name, t in w.tasks.items():
                if t.stage != "acted":
                    continue
                if t.summary.get("action") in (Action.DELETE.value, Action.ANONYMISE.value):
                    todo[name].append(w)
                else:
                    t.stage = "done"
        calls = {}
        for name, ws in todo.items():
            subjects = [Subject(w.row.id, w.known.strong()) for w in ws if w.known.strong()]
            calls[name] = self._find_call(self.o.systems[name], subjects)
        results = fan_out(calls, self.host.max_workers)
        by_id = {w.row.id: w for w in works}
        for name, res in results.items():
            ws = todo[name]
            in_ws = {w.row.id for w in ws}
            for w in ws:
                t = w.tasks[name]
                t.attempt("verify", res.attempts)
                t.summary["verified"] = res.error is None
                if res.error:
                    t.fail(f"verification failed: {res.error}", res.error_kind or "permanent")
            if not res.error:
                for f in res.values:
                    w = by_id.get(f.subject)
                    if w is None or w.row.id not in in_ws:
                        continue
                    t = w.tasks[name]
                    if t.state.outcomes.get(f.ref) == ItemStatus.RETAINED.value:
                        continue
                    strong = any(w.known.is_strong(m) for m in f.matched)
                    if strong and f.ref not in t.state.residue:
                        t.state.residue.append(f.ref)
            for w in ws:
                w.tasks[name].stage = "done"
        self._save(works)

    # finish --------------------------------------------------------------------------

    def finish(self, w: Work) -> str:
        """Receipts for every system, the request's outcome, hooks, then purge."""
        now = utcnow()
        bodies = []
        for name in sorted(w.tasks):
            t = w.tasks[name]
            if t.outcome is None:
                t.outcome = self._outcome(t)
            bodies.append(self._receipt_body(w, t, now))
        outcome = worst(t.outcome or "" for t in w.tasks.values())
        receipts: list[Receipt] = []
        with self.o.ledger.tx() as conn:
            seq, prev = self.o.ledger.chain_head(conn)
            rows = []
            for body in bodies:
                seq += 1
                r = seal(body, seq=seq, prev=prev, sign=self.o.keys.sign, key_id=self.o.keys.key_id)
                prev = r.hash
                receipts.append(r)
                rows.append({"seq": r.seq, "request_id": w.row.id, "system": body["system"],
                             "body": json.dumps(r.body, sort_keys=True), "hash": r.hash,
                             "signature": r.signature})
            self.o.ledger.add_receipts(conn, rows)
            conn.execute(tasks_t.update().where(tasks_t.c.request_id == w.row.id).values(
                state=None, stage="done"))
            conn.execute(requests_t.update().where(requests_t.c.id == w.row.id).values(
                status="done", outcome=outcome, finished_at=now, identifiers=None,
                lease_owner=None, lease_until=None))
        for r in receipts:
            self.o.plugins.notify("erasure_receipt_written", receipt=r)
        self.o.plugins.notify("erasure_request_finished", request_id=w.row.id,
                              ticket=w.row.ticket, outcome=outcome)
        return outcome

    @staticmethod
    def _outcome(t: TaskWork) -> str:
        statuses = list(t.state.outcomes.values())
        failed = sum(1 for s in statuses if s == ItemStatus.FAILED.value)
        not_done = len(t.state.actionable) - len(statuses)
        if t.summary.get("error") and not statuses:
            return Outcome.FAILED.value
        if t.summary.get("action") is None:  # find only: nothing was to be acted on
            return Outcome.COMPLETED.value
        if t.summary.get("action") == Action.EXPORT.value and not t.summary.get("error"):
            return Outcome.COMPLETED.value if not_done <= 0 else Outcome.PARTIAL.value
        if failed or t.state.residue or t.summary.get("error") or not_done > 0:
            return Outcome.PARTIAL.value
        return Outcome.COMPLETED.value

    def _receipt_body(self, w: Work, t: TaskWork, now: Any) -> dict[str, Any]:
        system = self.o.systems.get(t.system)
        digest = self.o.keys.digest
        counts: dict[str, int] = defaultdict(int)
        for s in t.state.outcomes.values():
            counts[s] += 1
        items = sorted(digest(t.system, ref) for ref in t.state.actionable)
        review = sorted(
            digest(t.system, ref) for ref in t.state.findings if ref not in t.state.actionable
        )
        started = t.summary.get("started_at")
        return {
            "request": w.row.id,
            "ticket": w.row.ticket,
            "request_type": w.type.value,
            "system": t.system,
            "connector": system.config.connector if system else None,
            "connector_version": system.version if system else None,
            "policy": system.config.policy.value if system else None,
            "policy_reason": system.config.reason if system else None,
            "action": t.summary.get("action"),
            "outcome": t.outcome,
            "counts": {
                "found": len(t.state.findings),
                "actionable": len(t.state.actionable),
                "review": len(review),
                "residue": len(t.state.residue),
                **dict(sorted(counts.items())),
            },
            "items": items,
            "review_items": review,
            "residue_items": sorted(digest(t.system, ref) for ref in t.state.residue),
            "attempts": t.summary.get("attempts", {}),
            "errors": t.summary.get("errors", []),
            "verification": {
                "performed": "verified" in t.summary,
                "ok": bool(t.summary.get("verified")) and not t.state.residue,
            },
            "subject_verified": bool(w.row.verified),
            "unverified_override": w.row.override,
            "package": t.summary.get("package"),
            "started_at": started,
            "finished_at": now.isoformat(),
            "received_at": w.row.received_at.isoformat(),
            "due_at": w.row.due_at.isoformat(),
        }
