"""The steps of a batch of requests: find with expansion, act, verify, finish with receipts."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from .expansion import Evidence, Scoped, finding_evidence, strong_fixpoint
from .export import json_safe, write_package
from .isolation import run_isolated
from .ledger import RequestRow, requests_t, tasks_t, utcnow
from .models import (
    Action,
    Finding,
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


def _act_once(system: System, action: Action, batch: list[Finding]) -> CallResult:
    """One connector call of ``action`` over ``batch`` (items retried alone when transient)."""
    if action is Action.EXPORT:
        return system.call(lambda c: c.export(batch))
    return system.call_items(_ITEM_FN[action], batch)


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
        """Find in every system, feeding identifiers found in one into the others.

        Each round searches every system with the identifiers it may see (id spaces) and
        has not been asked yet; rounds go on until nothing new is found or
        ``expansion_rounds`` is reached. Strength is computed once from all the evidence
        (:func:`~erasure.expansion.strong_fixpoint`), so the plan never depends on the
        order in which systems answered.
        """
        spaces = self.o.config.id_spaces
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
        queried: dict[tuple[str, str], set[Scoped]] = defaultdict(set)
        # request -> system -> item ref -> what the item matched and showed
        evidence: dict[str, dict[str, dict[str, Evidence]]] = defaultdict(
            lambda: defaultdict(dict))
        failed: set[tuple[str, str]] = set()
        by_id = {w.row.id: w for w in works}
        for _round in range(self.host.expansion_rounds + 1):
            asked = self._unasked(todo, queried, failed)
            if not asked:
                break
            calls = {}
            for name, subjects in asked.items():
                for s in subjects:
                    queried[(s.key, name)].update(spaces.scope(i, name) for i in s.identifiers)
                calls[name] = self._find_call(self.o.systems[name], subjects)
            for name, per_subject in fan_out(calls, self.host.max_workers).items():
                for rid, res in per_subject.items():
                    w, key = by_id[rid], (rid, name)
                    t = w.tasks[name]
                    t.attempt("find", res.attempts)
                    if res.error:
                        if key not in failed:
                            failed.add(key)
                            t.fail(res.error, res.error_kind or "permanent")
                        continue
                    for f in res.values:
                        if f.system != name:
                            continue  # a connector bug must never attach data elsewhere
                        matched, related = finding_evidence(f, name, spaces, queried[key])
                        if not matched:
                            continue
                        t.state.merge(f)
                        ev = evidence[rid][name].setdefault(f.ref, Evidence(f.kind))
                        ev.matched |= matched
                        ev.related |= related
                        for r in related:
                            w.known.add(r)
        # Identifiers still unasked when the round limit stopped the search: the plan and
        # the receipts say the expansion was cut short.
        cut_short = {s.key for ss in self._unasked(todo, queried, failed).values() for s in ss}
        strong_types = set(self.host.strong_identifiers)
        searched = {w.row.id: w for ws in todo.values() for w in ws}
        for rid, w in searched.items():
            w.known.complete = rid not in cut_short
            ev_all = [e for evs in evidence[rid].values() for e in evs.values()]
            # Seeded with what was strong before: a resumed find never weakens a decision.
            seeds = w.known.given | set(w.known.strong())
            w.known.set_strong(strong_fixpoint(seeds, ev_all, strong_types))
        for name, ws in todo.items():
            for w in ws:
                t = w.tasks[name]
                if (w.row.id, name) in failed:
                    t.stage, t.outcome = "done", Outcome.FAILED.value
                    continue
                t.state.actionable = {
                    ref for ref, ev in evidence[w.row.id][name].items()
                    if any(w.known.is_strong(m) for m in ev.matched)
                }
                t.summary["found"] = len(t.state.findings)
                t.summary["review"] = len(t.state.findings) - len(t.state.actionable)
                t.stage = "found"
        if persist:
            self._save(works, stage_from={"found", "done"}, identifiers=True)

    def _unasked(self, todo: dict[str, list[Work]], queried: dict[tuple[str, str], set[Scoped]],
                 failed: set[tuple[str, str]]) -> dict[str, list[Subject]]:
        """Per system, each subject with the identifiers it may search there and was not
        searched with yet."""
        spaces = self.o.config.id_spaces
        out: dict[str, list[Subject]] = {}
        for name, ws in todo.items():
            system = self.o.systems[name]
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

    def _find_call(self, system: System, subjects: list[Subject]
                   ) -> Callable[[], dict[str, CallResult]]:
        """One system's find over ``subjects``, in calls of whole subjects."""
        def run() -> dict[str, CallResult]:
            return run_isolated(
                lambda batch: system.call(lambda c: c.find(batch)),
                [(s.key, [s]) for s in subjects], self._limit(system),
                lambda f: f.subject)
        return run

    def _limit(self, system: System) -> int:
        own = system.cls.max_batch if system.cls else None
        return min(self.host.batch_size, own or self.host.batch_size)

    # act -----------------------------------------------------------------------------

    def act(self, works: Sequence[Work]) -> None:
        """Export, delete, anonymise or restrict what find marked actionable.

        Work is grouped by (system, action): a connector call never carries two actions, so
        no request is ever acted on with another request's action.
        """
        per_system: dict[str, dict[Action, list[tuple[Work, TaskWork]]]] = defaultdict(
            lambda: defaultdict(list))
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
                per_system[name][action].append((w, t))
        # Recorded before the calls: a run killed now re-runs the (idempotent) action.
        self._save(works, with_state=False)
        calls = {name: self._act_call(name, by_action) for name, by_action in per_system.items()}
        fan_out(calls, self.host.max_workers)
        self._save(works)

    def _act_call(self, name: str, by_action: dict[Action, list[tuple[Work, TaskWork]]]
                  ) -> Callable[[], None]:
        """One system's actions, one action at a time (one thread per system)."""
        system = self.o.systems[name]

        def run() -> None:
            for action in sorted(by_action):
                pairs = by_action[action]
                by_req = {w.row.id: t for w, t in pairs}
                groups = [(w.row.id, [t.state.findings[ref] for ref in sorted(t.state.actionable)])
                          for w, t in pairs if t.state.actionable]
                results = run_isolated(partial(_act_once, system, action), groups,
                                       self._limit(system),
                                       lambda v: v.finding.subject)
                for rid, res in results.items():
                    t = by_req[rid]
                    t.attempt(action.value, res.attempts)
                    if res.error:
                        t.fail(res.error, res.error_kind or "permanent")
                    for v in res.values:
                        if v.finding.ref not in t.state.actionable:
                            continue  # not asked for: never recorded as this subject's
                        if isinstance(v, Record):
                            t.state.records.append((v.finding.kind, json_safe(dict(v.data))))
                            t.state.outcomes[v.finding.ref] = "exported"
                        else:
                            t.state.outcomes[v.finding.ref] = v.status.value
                if action is Action.EXPORT:
                    stamp = utcnow().isoformat()
                    for t in by_req.values():
                        t.summary.setdefault("exported_at", stamp)
                for t in by_req.values():
                    t.stage = "acted"
        return run

    # verify --------------------------------------------------------------------------

    def verify(self, works: Sequence[Work]) -> None:
        """After delete or anonymise, find again: anything left is residue, never success."""
        spaces = self.o.config.id_spaces
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
            subjects = []
            for w in ws:
                idents = tuple(s.ident for s in w.known.strong() if spaces.searchable_in(s, name))
                if idents:
                    subjects.append(Subject(w.row.id, idents))
            calls[name] = self._find_call(self.o.systems[name], subjects)
        results = fan_out(calls, self.host.max_workers)
        by_id = {w.row.id: w for w in works}
        for name, per_subject in results.items():
            for w in todo[name]:
                t = w.tasks[name]
                res = per_subject.get(w.row.id, CallResult())
                t.attempt("verify", res.attempts)
                t.summary["verified"] = res.error is None
                if res.error:
                    t.fail(f"verification failed: {res.error}", res.error_kind or "permanent")
                    continue
                for f in res.values:
                    if f.system != name or t.state.outcomes.get(f.ref) == ItemStatus.RETAINED.value:
                        continue
                    strong = any(by_id[w.row.id].known.is_strong(spaces.scope(m, name))
                                 for m in f.matched)
                    if strong and f.ref not in t.state.residue:
                        t.state.residue.append(f.ref)
            for w in todo[name]:
                w.tasks[name].stage = "done"
        self._save(works)

    # finish --------------------------------------------------------------------------

    def finish(self, w: Work) -> str:
        """Receipts for every system, the request's outcome, hooks, then purge."""
        now = utcnow()
        self._package(w)
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

    def _package(self, w: Work) -> None:
        """Write the access or portability package from the records the ledger holds for
        the request, so a resumed run writes what an uninterrupted one would have."""
        if w.type not in (RequestType.ACCESS, RequestType.PORTABILITY) or not any(
            t.summary.get("action") == Action.EXPORT.value for t in w.tasks.values()
        ):
            return
        records = {name: t.state.records for name, t in w.tasks.items() if t.state.records}
        stamps = [t.summary["exported_at"] for t in w.tasks.values() if "exported_at" in t.summary]
        path = write_package(self.host.exports(), w.row.id, w.type.value, records,
                             generated_at=min(stamps) if stamps else utcnow().isoformat())
        for t in w.tasks.values():
            t.summary["package"] = path.name

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
        spaces = self.o.config.id_spaces
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
            "id_spaces": spaces.used(w.known.all(), t.system),
            "expansion_complete": w.known.complete,
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
