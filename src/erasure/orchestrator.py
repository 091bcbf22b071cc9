"""The orchestrator: plans, runs and records data-subject requests across all systems.

Flow of a batch of requests: find (in parallel, with identifier expansion rounds) ->
[approval] -> export / delete / anonymise / restrict (in parallel, with retries) -> verify
(find again) -> signed receipts -> hooks -> purge of raw identifiers. Each step is written
to the ledger before and after it runs, so ``run`` resumes a killed run where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .config import Config
from .errors import UsageError
from .expansion import Scoped
from .keys import KeyRing
from .ledger import Ledger, RequestRow, add_months, ledger_exists, utcnow
from .models import Identifier, Policy, RequestType
from .plugins import PluginHost
from .policy import OK_OUTCOMES
from .stages import Stages, TaskWork, Work
from .state import KnownIdentifiers, TaskState
from .systems import System, build_systems, check_system

__all__ = ["Orchestrator", "PlanLine", "RequestSpec", "RunSummary"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RequestSpec:
    """A request as a user or a ticketing workflow hands it over (validated by ``submit``).

    ``identifiers`` are ``(type, value)`` pairs, or ``(type, value, id_space)`` for an id
    (customer id, user id) of a space other than its type's default.
    """

    type: RequestType
    identifiers: tuple[tuple[str, str] | tuple[str, str, str], ...]
    ticket: str | None = None
    verified: bool = False
    override_unverified: str | None = None
    received_at: datetime | None = None

    def __repr__(self) -> str:
        return f"RequestSpec({self.type.value}, ticket={self.ticket!r})"


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


@dataclass
class RunSummary:
    """What ``run`` finished."""

    finished: list[str] = field(default_factory=list)
    awaiting_approval: list[str] = field(default_factory=list)
    #: approved requests whose systems now hold a different set: approve them again
    replanned: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return all(o in OK_OUTCOMES for o in self.outcomes)


class Orchestrator:
    """Runs requests for one configuration. Entry points (CLI, HTTP) only parse and call this."""

    def __init__(
        self,
        config: Config,
        plugins: PluginHost,
        *,
        ledger: Ledger | None = None,
        keys: KeyRing | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self._keys = keys
        self._ledger = ledger
        self.sleep = sleep
        self.progress = progress
        self.systems: dict[str, System] = build_systems(config, plugins, sleep=sleep)
        self.stages = Stages(self)

    # Opened on first use: bad input is rejected before any key or ledger file is created.
    @property
    def keys(self) -> KeyRing:
        if self._keys is None:
            self._keys = KeyRing.load(self.config.host)
            if self._keys.created:
                log.warning(
                    "created new signing and encryption keys in %s (back them up; production "
                    "sets [erasure.keys] from env references)",
                    self.config.host.state_dir / "keys",
                )
        return self._keys

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.config.host.ledger_url())
        return self._ledger

    def close(self) -> None:
        for s in self.systems.values():
            s.close()
        if self._ledger is not None:
            self._ledger.close()

    # requests ------------------------------------------------------------------------

    def validate(self, spec: RequestSpec, *, dry_run: bool = False) -> tuple[Scoped, ...]:
        """Parse identifiers, place ids in their id spaces and check the rules; raises
        UsageError with one line.

        A dry run changes nothing, so it may look before the identity is verified.
        """
        if not spec.identifiers:
            raise UsageError("a request needs at least one identifier (e.g. --email)")
        spaces = self.config.id_spaces
        idents = tuple(dict.fromkeys(
            spaces.for_request(Identifier.parse(i[0], i[1]), i[2] if len(i) > 2 else None)
            for i in spec.identifiers))
        if (spec.type is RequestType.ERASURE and not spec.verified
                and not spec.override_unverified and not dry_run):
            raise UsageError(
                "refusing erasure: the subject's identity is not marked verified "
                "(pass --verified once checked, or --override-unverified REASON)"
            )
        if spec.override_unverified is not None and not spec.override_unverified.strip():
            raise UsageError("--override-unverified needs a reason")
        if spec.ticket is not None and len(spec.ticket) > 200:
            raise UsageError("ticket id is longer than 200 characters")
        return idents

    def submit(self, spec: RequestSpec) -> str:
        """Validate and record one request; returns its id."""
        return self.submit_many([spec])[0]

    def submit_many(self, specs: Sequence[RequestSpec]) -> list[str]:
        """Validate every spec first, then record all in one transaction (all or nothing)."""
        import uuid

        rows = []
        strong_types = self.config.host.strong_identifiers
        validated = [(spec, self.validate(spec)) for spec in specs]
        for spec, idents in validated:
            known = KnownIdentifiers.from_request(idents, strong_types)
            received = spec.received_at or utcnow()
            rid = f"r-{uuid.uuid4().hex[:16]}"
            rows.append({
                "id": rid,
                "ticket": spec.ticket,
                "type": spec.type.value,
                "verified": spec.verified,
                "override": spec.override_unverified,
                "received_at": received,
                "due_at": add_months(received, 1),
                "identifiers": self.keys.encrypt(json.dumps(known.to_json()).encode()),
                "subject_digest": self.keys.digest(
                    *sorted(f"{i.type.value}:{i.ident.value}" for i in idents)
                ),
            })
        self.ledger.add_requests(rows)
        return [r["id"] for r in rows]

    def get_request(self, request_id: str) -> RequestRow:
        """A request by id; UsageError naming it when there is none (creates no ledger)."""
        if self._ledger is None and not ledger_exists(self.config.host.ledger_url()):
            raise UsageError(f"no request {request_id!r} in the ledger")
        return self.ledger.get_request(request_id)

    def approve(self, request_id: str) -> None:
        row = self.get_request(request_id)
        if row.status != "awaiting_approval":
            raise UsageError(f"request {request_id} is not awaiting approval (it is {row.status})")
        self.ledger.update_request(request_id, status="open", approved_at=utcnow())

    def extend(self, request_id: str, months: int, reason: str) -> datetime:
        """Extend the deadline (Art. 12(3): by up to two further months, with a reason)."""
        row = self.get_request(request_id)
        if not reason.strip():
            raise UsageError("an extension needs a reason")
        if not 1 <= months <= 2:
            raise UsageError("an extension is 1 or 2 months (GDPR Art. 12(3))")
        if row.extension_reason:
            raise UsageError(f"request {request_id} was already extended")
        due = add_months(row.received_at, 1 + months)
        self.ledger.update_request(request_id, due_at=due, extension_reason=reason.strip())
        return due

    # running -------------------------------------------------------------------------

    def run(self, *, only: Sequence[str] | None = None, limit: int | None = None) -> RunSummary:
        """Process every open request (or ``only`` these) in batches until none is left."""
        summary = RunSummary()
        host = self.config.host
        total = self.ledger.count_requests("open") if only is None else len(only)
        done = 0
        while limit is None or done < limit:
            size = host.batch_size if limit is None else min(host.batch_size, limit - done)
            rows = self.ledger.claim(size, host.lease_seconds, time.time(), only=only)
            if not rows:
                break
            try:
                self._process(rows, summary)
            finally:
                self.ledger.release([r.id for r in rows])
            done += len(rows)
            if self.progress:
                self.progress("requests", done, max(total, done))
        return summary

    def _load(self, rows: Sequence[RequestRow]) -> list[Work]:
        tasks_by_req: dict[str, dict[str, TaskWork]] = {r.id: {} for r in rows}
        self.ledger.ensure_tasks((r.id, s) for r in rows for s in self.systems)
        for t in self.ledger.tasks_for([r.id for r in rows]):
            if t.system not in self.systems and t.stage != "done":
                continue  # system removed from config since: nothing to run there
            state = TaskState.from_bytes(
                t.system, t.request_id,
                self.keys.decrypt(t.state) if t.state else None,
            )
            tasks_by_req[t.request_id][t.system] = TaskWork(
                system=t.system, stage=t.stage, outcome=t.outcome, state=state,
                summary=json.loads(t.summary) if t.summary else {},
            )
        works = []
        for r in rows:
            if r.identifiers is None:
                known = KnownIdentifiers()
            else:
                known = KnownIdentifiers.from_json(json.loads(self.keys.decrypt(r.identifiers)))
            works.append(Work(row=r, type=RequestType(r.type), known=known,
                              tasks=tasks_by_req[r.id]))
        return works

    def _process(self, rows: Sequence[RequestRow], summary: RunSummary) -> None:
        works = self._load(rows)
        ids = [w.row.id for w in works]
        st = self.stages
        self._find_again_if_approved(works)
        st.find(works)
        self.ledger.renew(ids, self.config.host.lease_seconds, time.time())
        gated = []
        for w in works:
            if not self._gated(w):
                continue
            plan = self._plan_hash(w)
            if w.row.approved_at is None or plan != w.row.plan_hash:
                if w.row.approved_at is not None:
                    summary.replanned.append(w.row.id)
                gated.append(w)
                self.ledger.update_request(w.row.id, status="awaiting_approval",
                                           plan_hash=plan, approved_at=None)
                summary.awaiting_approval.append(w.row.id)
        gated_ids = {w.row.id for w in gated}
        works = [w for w in works if w.row.id not in gated_ids]
        st.act(works)
        self.ledger.renew(ids, self.config.host.lease_seconds, time.time())
        st.verify(works)
        for w in works:
            outcome = st.finish(w)
            summary.finished.append(w.row.id)
            summary.outcomes[outcome] += 1

    def _gated(self, w: Work) -> bool:
        return (self.config.host.require_approval
                and w.type in (RequestType.ERASURE, RequestType.RESTRICTION))

    def _find_again_if_approved(self, works: Sequence[Work]) -> None:
        """An approved request that has not acted yet is found again, so it acts only if
        the systems still hold what was approved (compared by :meth:`_plan_hash`)."""
        strong_types = self.config.host.strong_identifiers
        for w in works:
            if not (self._gated(w) and w.row.approved_at is not None):
                continue
            if any(t.stage not in ("found", "done") for t in w.tasks.values()):
                continue  # already acting: the approval was honoured
            w.known = KnownIdentifiers.from_request(w.known.given, strong_types)
            for t in w.tasks.values():
                if t.stage == "found":
                    t.stage, t.state = "pending", TaskState()
                    t.summary = {k: v for k, v in t.summary.items()
                                 if k in ("started_at", "attempts")}

    def _plan_hash(self, w: Work) -> str:
        """A keyed hash of what the request would act on: (system, action, item) triples."""
        parts = sorted(
            f"{name}\x1f{self.stages.action_of(w, self.systems[name])}\x1f{ref}"
            for name, t in w.tasks.items() if name in self.systems
            for ref in t.state.actionable)
        return self.keys.digest("plan", *parts)

    # dry run -------------------------------------------------------------------------

    def plan(self, spec: RequestSpec) -> list[PlanLine]:
        """Find across all systems and say what would happen. Writes nothing anywhere."""
        idents = self.validate(spec, dry_run=True)
        known = KnownIdentifiers.from_request(idents, self.config.host.strong_identifiers)
        now = utcnow()
        row = RequestRow(
            id="dry-run", ticket=spec.ticket, type=spec.type.value, status="open", outcome=None,
            verified=spec.verified, override=None, received_at=now, due_at=add_months(now, 1),
            extension_reason=None, created_at=now, finished_at=None, approved_at=None,
            plan_hash=None,
            identifiers=None, subject_digest=None, lease_owner=None, lease_until=None,
        )
        work = Work(row=row, type=spec.type, known=known, tasks={
            s: TaskWork(system=s, stage="pending", outcome=None, state=TaskState(), summary={})
            for s in self.systems
        })
        self.stages.find([work], persist=False)
        lines = []
        for name, system in self.systems.items():
            t = work.tasks[name]
            action = self.stages.action_of(work, system)
            note = system.uncovered or t.summary.get("error", "")
            if system.config.policy is Policy.RETAIN and spec.type is RequestType.ERASURE:
                note = f"retained: {system.config.reason}"
            if not known.complete:
                note = "; ".join(filter(None, [note, "expansion stopped at expansion_rounds"]))
            digest = self.keys.digest
            lines.append(PlanLine(
                system=name, connector=system.config.connector,
                policy=system.config.policy.value,
                action=action.value if action else "none",
                found=len(t.state.findings), actionable=len(t.state.actionable),
                review=len(t.state.findings) - len(t.state.actionable), note=note,
                items=tuple(sorted(digest(name, ref) for ref in t.state.actionable)),
                id_spaces=tuple(self.config.id_spaces.used(known.all(), name)),
            ))
        return lines

    # inspection ----------------------------------------------------------------------

    def check_systems(self) -> dict[str, str | None]:
        """Each system's problem (one line), or None when it is usable."""
        return {name: check_system(s) for name, s in self.systems.items()}

