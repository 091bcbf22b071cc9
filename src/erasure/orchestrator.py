"""The orchestrator: plans, runs and records data-subject requests across all systems.

Flow of a batch of requests: find (in parallel, with identifier expansion rounds) ->
[approval] -> export / delete / anonymise / restrict (in parallel, with retries) -> verify
(find again) -> signed receipts -> hooks -> purge of raw identifiers. Each step is written
to the ledger before and after it runs, so ``run`` resumes a killed run where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from .config import Config
from .errors import ConfigError, UsageError
from .freetext import check_reference, seal_reason
from .keys import KeyRing
from .ledger import Ledger, RequestRow, add_months, ledger_exists, utcnow
from .models import Identifier, RequestType
from .plugins import PluginHost
from .systems import System, build_systems, check_system

# The engine, the receipt chain, the callbacks and the shredding keys are imported where a
# command uses them: `erasure status`, `receipts verify`, `request create` start without
# them (issue 26, item 8).
if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .callbacks import CallbackSender, Secrets
    from .chain import ReceiptChain
    from .engine.commands import TaskCommands
    from .engine.desk import Desk, PlanView, ReviewView
    from .engine.expansion import Scoped
    from .engine.plan import PlanLine
    from .engine.runner import Runner, RunSummary
    from .engine.steps import StepContext
    from .shredding import RequestKeys
    from .state import RequestIntent

__all__ = ["Orchestrator", "PlanLine", "RequestSpec", "RunSummary"]

log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    """``PlanLine`` and ``RunSummary``, re-exported without importing the engine at load."""
    if name == "PlanLine":
        from .engine.plan import PlanLine

        return PlanLine
    if name == "RunSummary":
        from .engine.runner import RunSummary

        return RunSummary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    #: the caller's own key for this request (a message id): the same key again is the
    #: same request. Without one, the ticket with the type and identifiers is the key.
    request_key: str | None = None
    #: record it even if the same request was recorded before (the person asked twice)
    allow_duplicate: bool = False
    #: rectification only: ``(type, correct value)`` pairs (email, phone, name, address)
    corrections: tuple[tuple[str, str], ...] = ()
    #: objection only: the processing objected to (``marketing`` when not given)
    objection_scope: str | None = None
    #: the id to record it under (``r-`` and 16 hex digits; default: a new one), so that
    #: what an entry point keeps beside the request can be written before a run sees it
    request_id: str | None = None
    #: how refusals name what to change: the CLI's options (``cli``), the HTTP API's body
    #: fields (``api``) or a Zendesk ticket's tags (``zendesk``)
    wording: str = "cli"

    def __repr__(self) -> str:
        return f"RequestSpec({self.type.value}, ticket={self.ticket!r})"


#: what a refusal tells the person to change, in the words of each entry point
_WORDS: dict[str, dict[str, str]] = {
    "cli": {"verified": "pass --verified once checked, or --override-unverified REASON",
            "ticket": "--ticket", "identifier": "e.g. --email",
            "correction": "e.g. --set email=new@example.org", "corrections": "--set"},
    "api": {"verified": 'set "verified": true once checked',
            "ticket": "ticket", "identifier": "subject_identities",
            "correction": 'e.g. "corrections": [{"type": "email", "value": ...}]',
            "corrections": "corrections"},
    "zendesk": {"verified": "tag the ticket with verified_tag once checked",
                "ticket": "ticket", "identifier": "requester email or identifier_fields",
                "correction": "corrections", "corrections": "corrections"},
}


def _dedupe_key(keys: KeyRing, spec: RequestSpec, subject: str) -> str | None:
    """What makes two submissions one request (idempotent intake)."""
    if spec.allow_duplicate:
        return None
    if spec.request_key:
        return keys.digest("request-key", spec.request_key)
    if spec.ticket:
        return keys.digest("request", spec.type.value, spec.ticket, subject)
    return None


def _intent(spec: RequestSpec) -> RequestIntent:
    """A validated spec's corrections (normalised) and objection scope."""
    from .models import Correction, ObjectionScope
    from .state import RequestIntent

    if spec.type is RequestType.RECTIFICATION:
        fixes = (Correction.parse(t, v) for t, v in spec.corrections)
        return RequestIntent(corrections=tuple(dict.fromkeys((c.type.value, c.new)
                                                             for c in fixes)))
    if spec.type is RequestType.OBJECTION:
        return RequestIntent(scope=(spec.objection_scope or ObjectionScope.MARKETING.value))
    return RequestIntent()


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self._keys = keys
        self._ledger = ledger
        self._ciphers: RequestKeys | None = None
        self.sleep = sleep
        self.progress = progress
        self.clock = clock  # epoch seconds; tests move it to make deferred work due
        self.systems: dict[str, System] = build_systems(config, plugins, sleep=sleep)

    # Opened on first use: bad input is rejected before any key or ledger file is created.
    @property
    def keys(self) -> KeyRing:
        if self._keys is None:
            self._keys = KeyRing.load(self.config.host)
            if self._keys.created:
                from .chain import announce_new_keys

                announce_new_keys(self._keys, self.config.host.state_dir / "keys",
                                  self.ledger if ledger_exists(self.config.host.ledger_url())
                                  else None)
        return self._keys

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from .files import private_dir

            private_dir(self.config.host.state_dir)  # erasure's own folder: closed
            self._ledger = Ledger(self.config.host.ledger_url())
        return self._ledger

    @property
    def ciphers(self) -> RequestKeys:
        """Each open request's own key (crypto-shredding: see shredding.py)."""
        if self._ciphers is None:
            from .shredding import EpochKeys, RequestKeys

            epochs = EpochKeys(self.config.host.state_dir / "keys" / "epochs",
                               self.keys.fernet)
            self._ciphers = RequestKeys(self.ledger, epochs, legacy=self.keys.fernet)
        return self._ciphers

    @property
    def chain(self) -> ReceiptChain:
        """The receipt chain: the one way receipts are sealed, stored and signed."""
        from .chain import ReceiptChain, head_file_for

        return ReceiptChain(self.ledger, self.keys,
                            head_file_for(self.config.host.state_dir, self.ledger))

    @property
    def context(self) -> StepContext:
        """What the engine's steps are given: config, systems and keys."""
        from .engine.steps import StepContext

        return StepContext(self.config, self.systems, self.keys, clock=self.clock)

    def limit_calls(self) -> None:
        """Make every system with ``limits`` call within them, shared through the ledger
        with every other runner and worker (not for dry runs: they write nothing)."""
        from .limits import limiters

        for name, limiter in limiters({n: s.config.limits for n, s in self.systems.items()},
                                      lambda: self.ledger).items():
            self.systems[name].limiter = limiter

    def runner(self) -> Runner:
        """The in-process runner over this configuration and ledger."""
        from .engine.runner import Runner

        self.limit_calls()
        return Runner(self.context, self.ledger, self.plugins, self.ciphers,
                      progress=self.progress, clock=self.clock)

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
        from .engine import rules

        words = _WORDS.get(spec.wording, _WORDS["cli"])
        if not spec.identifiers:
            raise UsageError(f"a request needs at least one identifier "
                             f"({words['identifier']})")
        spaces = self.config.id_spaces
        idents = tuple(dict.fromkeys(
            spaces.for_request(Identifier.parse(i[0], i[1]), i[2] if len(i) > 2 else None)
            for i in spec.identifiers))
        # Erasing or correcting someone's data on an unchecked claim could be an attack
        # (a changed email takes over an account); an objection only stops processing.
        if (rules.for_request(spec.type, "verified_identity")
                and not spec.verified and not spec.override_unverified and not dry_run):
            raise UsageError(
                f"refusing {spec.type.value}: the subject's identity is not marked verified "
                f"({words['verified']})"
            )
        self._validate_intent(spec, words)
        if spec.override_unverified is not None and not spec.override_unverified.strip():
            raise UsageError("--override-unverified needs a reason")
        if spec.ticket is not None:
            check_reference(spec.ticket, self.config.host.ticket_pattern, words["ticket"])
        return idents

    @staticmethod
    def _validate_intent(spec: RequestSpec, words: dict[str, str]) -> None:
        """Corrections belong to rectifications, a scope to objections; both validated."""
        from .models import Correction, ObjectionScope

        if spec.type is RequestType.RECTIFICATION:
            if not spec.corrections:
                raise UsageError("a rectification needs at least one correction "
                                 f"({words['correction']})")
            types = [Correction.parse(ctype, value).type for ctype, value in spec.corrections]
            twice = sorted({t.value for t in types if types.count(t) > 1})
            if twice:
                raise UsageError(f"{', '.join(twice)} corrected twice: give one correct value")
        elif spec.corrections:
            raise UsageError(f"corrections ({words['corrections']}) belong to "
                             "rectifications, not to "
                             f"{spec.type.value} requests")
        if spec.type is RequestType.OBJECTION:
            if spec.objection_scope is not None:
                try:
                    ObjectionScope(spec.objection_scope)
                except ValueError:
                    known = ", ".join(s.value for s in ObjectionScope)
                    raise UsageError(f"unknown objection scope {spec.objection_scope!r} "
                                     f"(known: {known})") from None
        elif spec.objection_scope is not None:
            raise UsageError(f"a scope belongs to objections, not to {spec.type.value} "
                             "requests")

    def submit(self, spec: RequestSpec) -> str:
        """Validate and record one request; returns its id."""
        return self.submit_many([spec])[0]

    def record(self, spec: RequestSpec) -> tuple[str, bool]:
        """Validate and record one request: its id, and whether it is new (False: the
        same request was recorded before, and this is its id)."""
        new: set[str] = set()
        rid = self.submit_many([spec], new=new)[0]
        return rid, rid in new

    def submit_many(self, specs: Sequence[RequestSpec],
                    labels: Sequence[str] | None = None, *,
                    new: set[str] | None = None,
                    also: Callable[[Connection, list[str]], None] | None = None
                    ) -> list[str]:
        """Validate every spec first, then record all in one transaction (all or nothing),
        each request with its key and a pending task in every configured system.

        A bad spec raises UsageError prefixed with its label (``file.csv:7``) if given. A
        spec with a ticket whose request (same type, ticket and identifiers) was recorded
        before is not recorded again: its id is the earlier request's. ``new`` receives
        the ids that were recorded now. ``also`` writes what an entry point records with
        the new requests (the API's callback URLs), given their ids, in the same
        transaction.
        """
        import uuid

        from .shredding import Cipher
        from .state import KnownIdentifiers, request_blob

        rows = []
        strong_types = self.config.host.strong_identifiers
        validated = []
        for n, spec in enumerate(specs):
            try:
                validated.append((spec, self.validate(spec)))
            except UsageError as exc:
                if labels is None:
                    raise
                raise UsageError(f"{labels[n]}: {exc}") from None
        raw: dict[str, bytes] = {}
        for spec, idents in validated:
            known = KnownIdentifiers.from_request(idents, strong_types)
            received = spec.received_at or utcnow()
            rid = spec.request_id or f"r-{uuid.uuid4().hex[:16]}"
            raw[rid] = Cipher.new_key()
            cipher = Cipher(raw[rid])
            subject = self.keys.digest(
                *sorted(f"{i.type.value}:{i.space or ''}:{i.ident.value}" for i in idents))
            rows.append({
                "id": rid,
                "ticket": spec.ticket,
                "type": spec.type.value,
                "verified": spec.verified,
                "override": None if spec.override_unverified is None else seal_reason(
                    self.keys.digest, cipher.encrypt, rid, "unverified-override",
                    spec.override_unverified),
                "received_at": received,
                "due_at": add_months(received, 1),
                "identifiers": cipher.encrypt(request_blob(known, _intent(spec))),
                "subject_digest": subject,
                "dedupe_key": _dedupe_key(self.keys, spec, subject),
            })
        ciphers, ledger, systems = self.ciphers, self.ledger, list(self.systems)

        def with_new(conn: Connection, ids: list[str]) -> None:
            ciphers.seal(conn, {rid: raw[rid] for rid in ids})
            ledger.add_pending_tasks(conn, ids, systems)
            if also is not None:
                also(conn, ids)

        ids = ledger.add_requests(rows, seal=with_new)
        if new is not None:  # a row whose id came back was inserted, not found
            new.update(rid for rid, row in zip(ids, rows, strict=True) if rid == row["id"])
        return ids

    def get_request(self, request_id: str) -> RequestRow:
        """A request by id; UsageError naming it when there is none (creates no ledger)."""
        if self._ledger is None and not ledger_exists(self.config.host.ledger_url()):
            raise UsageError(f"no request {request_id!r} in the ledger")
        return self.ledger.get_request(request_id)

    def verify(self, request_id: str, method: str, by: str) -> None:
        """Record that the identity of an open request's subject was checked, by whom and
        how (references, no personal data: receipts show them); a request that waited for
        it goes on at the next run."""
        import json

        check_reference(method, self.config.host.ticket_pattern, "--method")
        check_reference(by, self.config.host.ticket_pattern, "--by")
        row = self.get_request(request_id)
        if row.status == "done":
            raise UsageError(f"request {request_id} has ended ({row.outcome}): its receipts "
                             "are written; nothing was recorded")
        if row.verified:
            raise UsageError(f"request {request_id} is verified already; nothing was recorded")
        how = json.dumps({"method": method, "by": by,
                          "at": utcnow().isoformat(timespec="seconds")})
        status = "open" if row.status == "awaiting_verification" else row.status
        self.ledger.update_request(request_id, verified=True, verified_how=how,
                                   status=status)

    def desk(self) -> Desk:
        """Review items, plans, decisions and approval, from what the ledger holds."""
        from .engine.desk import Desk
        from .engine.writer import TaskWriter

        writer = TaskWriter(self.ledger, self.ciphers, self.plugins, list(self.systems))
        return Desk(self.context, self.ledger, writer, self.ciphers)

    def approve(self, request_id: str, plan_hash: str | None = None) -> str:
        """Approve the plan of a request awaiting approval (refused unless its hash is
        ``plan_hash`` when given); the hash of the plan approved."""
        self.get_request(request_id)
        return self.desk().approve(request_id, plan_hash)

    def review(self, request_id: str) -> ReviewView:
        """The request's review items, with why each is weak (values while it is open)."""
        self.get_request(request_id)
        return self.desk().review(request_id)

    def decide(self, request_id: str, *, include: Sequence[str] = (),
               exclude: Sequence[str] = (), by: str, reason: str | None = None
               ) -> ReviewView:
        """Record an operator's decisions on review items (see :meth:`Desk.decide`)."""
        self.get_request(request_id)
        return self.desk().decide(request_id, include=include, exclude=exclude, by=by,
                                  reason=reason)

    def plan_of(self, request_id: str) -> PlanView:
        """The plan an approval of the request covers, with its hash."""
        self.get_request(request_id)
        return self.desk().plan(request_id)

    def extend(self, request_id: str, months: int, reason: str) -> datetime:
        """Extend the deadline (Art. 12(3): by up to two further months, with a reason)."""
        row = self.get_request(request_id)
        if not reason.strip():
            raise UsageError("an extension needs a reason")
        if not 1 <= months <= 2:
            raise UsageError("an extension is 1 or 2 months (GDPR Art. 12(3))")
        if row.extension_reason:
            raise UsageError(f"request {request_id} was already extended")
        if row.status == "done":
            raise UsageError(f"request {request_id} has ended ({row.outcome})")
        due = add_months(row.received_at, 1 + months)
        sealed = seal_reason(self.keys.digest,
                             lambda data: self.ciphers.encrypt(request_id, data),
                             request_id, "extension", reason)
        self.ledger.update_request(request_id, due_at=due, extension_reason=sealed)
        return due

    # running -------------------------------------------------------------------------

    def run(self, *, only: Sequence[str] | None = None, limit: int | None = None,
            upkeep: bool = True) -> RunSummary:
        """Process every due request (or ``only`` these) in batches until none is left;
        ``upkeep=False`` leaves the run's upkeep to a later :meth:`upkeep` (see
        :meth:`.engine.runner.Runner.run`)."""
        return self.runner().run(only=only, limit=limit, upkeep=upkeep)

    def upkeep(self) -> None:
        """What runs made with ``upkeep=False`` left: the key epoch's rotation, expired
        packages, undelivered events."""
        self.runner().upkeep()

    def callback_secrets(self) -> Secrets:
        """What signs status callbacks (a request's or token's secret, or the config's)."""
        from .callbacks import Secrets

        default = self.config.host.api.callback_secret
        return Secrets(None if default is None else default.get_secret_value().encode(),
                       self.keys)

    def callback_sender(self, *, strict: bool = True) -> CallbackSender:
        """The sender of queued status callbacks (and of outcome notes on Zendesk tickets
        when ``[erasure.api.zendesk]`` is set). Without zenpy installed that is a
        ConfigError (``strict``, ``serve``'s start) or a warning: the notes are left to a
        process that can post them (the end of ``erasure run``)."""
        deliverers = {}
        zendesk = self.config.host.api.zendesk
        if zendesk is not None:
            import importlib.util

            if importlib.util.find_spec("zenpy") is None:
                why = ("[erasure.api.zendesk] posts outcomes with zenpy: "
                       "pip install 'erasure-orchestrator[zendesk]'")
                if strict:
                    raise ConfigError(why)
                log.warning("%s (Zendesk notes left for `erasure serve`)", why)
                zendesk = None
        if zendesk is not None:
            from .heads import export
            from .zendesk_notes import ZendeskNotes

            deliverers["zendesk"] = ZendeskNotes(zendesk, lambda rid: export(self.chain, rid))
        from .callbacks import CallbackSender

        return CallbackSender(self.ledger, self.callback_secrets(),
                              attempts=self.config.host.api.callback_attempts,
                              deliverers=deliverers)

    def send_callbacks(self, seconds: float) -> int:
        """Send the due status callbacks for at most about ``seconds`` (``erasure run``'s
        end: after its work, never before); returns how many were delivered."""
        if seconds <= 0:
            return 0
        return self.callback_sender(strict=False).send_for(seconds)

    def deliver_package(self, request_id: str, sink: BinaryIO) -> dict[str, Any]:
        """Give out the package of ``request_id`` into ``sink`` and record it delivered
        (see :func:`erasure.packages.deliver`); its ledger row."""
        from .packages import deliver

        self.get_request(request_id)
        return deliver(self.ledger, self.config.host.exports(), request_id, sink)

    def commands(self) -> TaskCommands:
        """A person's commands on tasks (confirm, retry), written as the runner writes."""
        from .engine.commands import TaskCommands
        from .engine.writer import TaskWriter

        writer = TaskWriter(self.ledger, self.ciphers, self.plugins, list(self.systems))
        return TaskCommands(self.ledger, writer, lease_seconds=self.config.host.lease_seconds,
                            clock=self.clock)

    def confirm(self, request_id: str, system: str, reference: str) -> None:
        """Record a processor's confirmation (Art. 19) of a task awaiting it; the next run
        (started here for this request) finishes the request when nothing else waits."""
        reference = reference.strip()
        check_reference(reference, self.config.host.ticket_pattern, "--reference")
        self.get_request(request_id)
        self.commands().confirm(request_id, system, reference)
        self.run(only=[request_id])

    def retry(self, request_id: str, system: str | None = None) -> list[str]:
        """Resume the blocked tasks and re-open the failed ones of an open request (or
        only ``system``'s); returns the systems resumed."""
        self.get_request(request_id)
        return self.commands().retry(request_id, system)

    def close_request(self, request_id: str, reason: str) -> str:
        """End an open request now, as an operator decided: every task not done fails,
        receipts are written and its identifiers purged; returns its outcome. The reason
        is kept only as a keyed hash on the receipts (a note may name the person)."""
        reason = reason.strip()
        if not reason or len(reason) > 500 or any(ord(c) < 32 for c in reason):
            raise UsageError("closing a request needs a reason of 1-500 printable characters")
        self.get_request(request_id)
        note = f"closed by an operator (reason {self.keys.digest('close', reason)[:16]})"
        self.commands().close(request_id, note)
        self.run(only=[request_id])
        return self.get_request(request_id).outcome or "failed"

    def cancel(self, request_id: str, *, wait_seconds: float = 10.0) -> str:
        """Withdraw an open request nothing was done for yet (its tasks fail as
        "cancelled"; receipts are written and its identifiers purged); returns its outcome.
        UsageError once a system acted on it. A run holding the request now (another
        process's: ``erasure serve``'s runner, a cron run) is waited for up to
        ``wait_seconds``; then :class:`~.engine.commands.RequestBusy`."""
        from .engine.commands import RequestBusy

        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                # a request awaiting approval too: its tasks fail behind the gate
                self.commands().cancel(request_id,
                                       "cancelled by the requester before any action")
                break
            except RequestBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)  # another process's batch: it ends soon
        if self.get_request(request_id).status == "awaiting_approval":
            # Only now, every task done (failed): the gate is opened for the run that
            # writes the receipts, and nothing can act. Opened before, a cancel refused
            # meanwhile (a run holding the request) left an unapproved plan approved.
            self.ledger.update_request(request_id, status="open", approved_at=utcnow())
        self.run(only=[request_id])
        return self.get_request(request_id).outcome or "failed"

    def unsearched(self, request_id: str) -> list[tuple[str, str]]:
        """(system, reason) of each system an open request could not be searched in yet."""
        from .engine.tasks import Stage, TaskSummary

        out = []
        for t in self.ledger.tasks_for([request_id]):
            if t.stage == Stage.PENDING.value:
                summary = TaskSummary.from_text(t.summary)
                out.append((t.system, summary.blocked or summary.last_error
                            or "not searched yet"))
        return out

    # dry run -------------------------------------------------------------------------

    def plan(self, spec: RequestSpec) -> list[PlanLine]:
        """Find across all systems and say what would happen. Writes nothing anywhere."""
        from .engine.plan import plan as dry_run

        idents = self.validate(spec, dry_run=True)
        return dry_run(self.context, spec.type, idents, ticket=spec.ticket,
                       verified=spec.verified, intent=_intent(spec))

    # inspection ----------------------------------------------------------------------

    def check_systems(self) -> dict[str, str | None]:
        """Each system's problem (one line), or None when it is usable."""
        return {name: check_system(s) for name, s in self.systems.items()}

