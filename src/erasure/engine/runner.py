"""The in-process runner: claims due requests in batches, runs the steps on them, and
writes what changed to the ledger, fenced by its leases.

A batch's leases are renewed by a heartbeat while it is worked; every write first checks
which leases this runner still holds, and work whose lease was lost is dropped, unwritten.
Hook events are written in the same transaction as the change they tell of (an outbox) and
delivered after commit, at least once, with an event id to deduplicate on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import callbacks
from ..chain import ReceiptChain, head_file_for
from ..leases import Heartbeat
from ..ledger import Ledger, RequestRow, utcnow
from ..packages import drop_for_subject, expire
from ..plugins import PluginHost
from ..shredding import RequestKeys
from ..state import KnownIdentifiers, TaskData
from . import finish, review, steps
from .rules import OK_OUTCOMES, for_request
from .steps import StepContext, Work
from .tasks import Stage, TaskSummary
from .writer import TASK_CHANGED, TaskWriter, deliver

__all__ = ["RunInterrupted", "RunSummary", "Runner"]

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What ``run`` did."""

    #: every request this run worked on, with its type (none: the run had nothing due)
    claimed: dict[str, str] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    #: the outcome of each request that ended in this run
    outcome_of: dict[str, str] = field(default_factory=dict)
    #: per request still open after this run, the states of its tasks left waiting
    left: dict[str, list[str]] = field(default_factory=dict)
    awaiting_approval: list[str] = field(default_factory=list)
    #: requests that need a verified identity and have none (recorded by an earlier
    #: version): nothing is done until `erasure request verify`
    awaiting_verification: list[str] = field(default_factory=list)
    #: approved requests whose systems now hold a different set: approve them again
    replanned: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    #: tasks left waiting for a later run: deferred, waiting on a system, or to confirm
    waiting: Counter[str] = field(default_factory=Counter)
    #: (request, system, error) of tasks that failed in this run (their requests may
    #: have ended since: `erasure receipts show REQUEST`)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    #: (request, system, error) of tasks that wait for an operator (`erasure retry`)
    blocked: list[tuple[str, str, str]] = field(default_factory=list)
    #: (request, system, reasons) of tasks whose items a hold keeps: checked again later
    held: list[tuple[str, str, str]] = field(default_factory=list)
    #: requests dropped because another runner took their lease
    lost: list[str] = field(default_factory=list)
    #: package passwords (``package_password``): shown once, stored nowhere
    package_passwords: dict[str, str] = field(default_factory=dict)
    #: the packages written for requests that ended in this run: request -> file path
    packages: dict[str, str] = field(default_factory=dict)
    #: the receipt chain's end after the run, (count, last hash): publish it (heads.py)
    head: tuple[int, str] | None = None
    #: the run signed a chain head (over its receipts, or over an end that had none)
    head_signed: bool = False

    @property
    def failed_tasks(self) -> int:
        """How many tasks failed in this run."""
        return len(self.failed)

    @property
    def ok(self) -> bool:
        return (all(o in OK_OUTCOMES for o in self.outcomes) and not self.failed_tasks
                and not self.blocked and not self.awaiting_verification)


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl-C, SIGINT) while it worked on ``requests``: what each
    step saved stays, their leases were released, and the next run resumes them."""

    def __init__(self, requests: Sequence[str], summary: RunSummary) -> None:
        super().__init__(f"interrupted while working on {len(requests)} request(s)")
        self.requests = list(requests)
        self.summary = summary


class Runner:
    """Runs due requests of one configuration against one ledger."""

    def __init__(self, ctx: StepContext, ledger: Ledger, plugins: PluginHost,
                 ciphers: RequestKeys, *,
                 progress: Callable[[str, int, int], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ctx, self.ledger, self.plugins = ctx, ledger, plugins
        self.ciphers = ciphers
        self.progress = progress
        self.clock = clock
        self.writer = TaskWriter(ledger, ciphers, plugins, list(ctx.systems))
        self.chain = ReceiptChain(ledger, ctx.keys,
                                  head_file_for(ctx.host.state_dir, ledger))
        #: the end (count, last hash) of the last head this runner signed in its run
        self._signed: tuple[int, str] | None = None
        #: the batch being worked is the run's last: its finish rotates the key epoch
        self._last_batch = False
        #: the run's last finish rotated the key epoch (its end need not)
        self._rotated = False
        #: this run does the upkeep (see :meth:`run`)
        self._upkeep = True

    # the loop --------------------------------------------------------------------------

    def run(self, *, only: Sequence[str] | None = None, limit: int | None = None,
            upkeep: bool = True) -> RunSummary:
        """Process every due request (or ``only`` these) in batches until none is left.

        Work that becomes due during the run (a task deferred by a few seconds) is left for
        the next run, so one run always ends.

        ``upkeep=False``: leave the run's upkeep (:meth:`upkeep`: the key epoch's rotation,
        expired packages, events a crashed run never delivered) to a later :meth:`upkeep`.
        For a long-lived runner woken for each request (``erasure serve``'s), whose runs
        are one request each: it does the upkeep once the requests stop coming, or at the
        latest a minute later, instead of after every one (a rotation rewraps every open
        request's key).
        """
        summary = RunSummary()
        self._signed, self._rotated, self._upkeep = None, False, upkeep
        host = self.ctx.host
        started = self.clock()
        # counted only for the progress display (a statement every run otherwise)
        total = (len(only) if only is not None else
                 self.ledger.count_requests("open") if self.progress else 0)
        done = 0
        seen: set[str] = set()
        self.begin()
        try:
            while limit is None or done < limit:
                size = host.batch_size if limit is None else min(host.batch_size,
                                                                 limit - done)
                rows = self.ledger.claim(size, host.lease_seconds, self.clock(), only=only,
                                         due_by=started)
                if not rows or all(r.id in seen for r in rows):
                    if rows:
                        self.ledger.release([r.id for r in rows])
                    break
                seen.update(r.id for r in rows)
                # the claim took every request due when it ran: this batch is the last
                self.run_batch(rows, summary, last=len(rows) < size)
                done += len(rows)
                if self.progress:
                    self.progress("requests", done, max(total, done))
                if len(rows) < size:
                    # the claim took every request due when it ran: asking again would
                    # find none (one due later is the next run's, as above)
                    break
        except KeyboardInterrupt as exc:
            if isinstance(exc, RunInterrupted):
                raise
            # between batches: what the earlier batches did is in the summary
            raise RunInterrupted([], summary) from None
        self.end(summary)
        return summary

    def begin(self) -> None:
        """What a run does before its first batch: refuse a cut-back ledger (before any
        system is touched), deliver the events a crashed run committed and never
        delivered, let expired packages go (these two unless the upkeep is left)."""
        self.chain.check()
        if self._upkeep:
            self.deliver()
            self._expire()

    def upkeep(self) -> None:
        """The upkeep of runs made with ``upkeep=False``: deliver the events a crashed run
        never delivered, let expired packages go, and rotate the key epoch if requests
        ended since it began (destroying the older epoch keys)."""
        self.deliver()
        self._expire()
        self.ciphers.rotate()

    def _expire(self) -> None:
        expire(self.ledger, self.ctx.host.exports(),
               datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None))

    def end(self, summary: RunSummary) -> None:
        """What a run does after its last batch: rotate the key epoch if requests ended
        (once per run, not per batch: rewrapping every open request's key is the cost),
        unless the last batch's finish did in its own transaction, and sign the end of a
        chain that has no head yet (receipts from before heads)."""
        if self._upkeep and not self._rotated:
            self.ciphers.rotate()
        # a run that appended signed a head over the end it appended to (read again, it is
        # the same unless another run appended and signed since)
        if self._signed is not None:
            summary.head, summary.head_signed = self._signed, True
        else:
            summary.head, summary.head_signed = self.chain.sign_end()

    def run_batch(self, rows: Sequence[RequestRow], summary: RunSummary, *,
                  last: bool = False) -> None:
        """Work one claimed batch (``rows``, leased by this runner's ledger) through every
        step under a heartbeat, release its leases and deliver its events. ``last``: the
        run's last batch, whose finish rotates the key epoch in its own transaction (one
        transaction fewer than a rotation of its own at the run's end).

        The one unit of work: the in-process loop above and a distributed worker
        (``erasure.distributed``) both call this for each batch they claimed.
        """
        self._last_batch = last
        ids = [r.id for r in rows]
        summary.claimed.update((r.id, r.type) for r in rows)
        try:
            with Heartbeat(self._renew, ids, self.ctx.host.lease_seconds / 3):
                self._process(rows, summary)
        except KeyboardInterrupt as exc:
            if isinstance(exc, RunInterrupted):
                raise
            raise RunInterrupted(ids, summary) from None
        finally:
            # a finished request's lease was cleared in the transaction that ended it
            ended = set(summary.finished)
            self.ledger.release([i for i in ids if i not in ended])
            self.ciphers.drop(ids)
        if self._tells():  # else this batch wrote no events (others deliver theirs)
            self.deliver()

    def _renew(self, ids: Sequence[str]) -> None:
        self.ledger.renew(ids, self.ctx.host.lease_seconds, self.clock())

    def _process(self, rows: Sequence[RequestRow], summary: RunSummary) -> None:
        works = self._hold_unverified(self.load(rows), summary)
        now = self.clock()
        self._find_again_if_approved(works)
        steps.find(self.ctx, works, now)
        # An operator's review decisions, before the gate: the plan approved is the plan
        # acted on (included items act like strong ones).
        review.apply_decisions(self.ctx, works)
        gated = self._gate(works, summary)
        going = [w for w in works if w.row.id not in gated]
        steps.start_acting(self.ctx, going, now)
        # Saved before any action is called: a run killed during the calls is known to
        # have been acting, and repeats only idempotent actions.
        works = self.save(works, summary, identifiers=True)
        going = [w for w in works if w.row.id not in gated]
        steps.act(self.ctx, going, now)
        # Work whose every task goes straight on to verification is not written here (a
        # third of a run's writes): killed before it ends, the next run repeats its
        # idempotent actions from the acting state saved above. Work that waits (a job
        # handle, a confirmation, a deferral) is written now, so that no handle is lost.
        waits = {w.row.id for w in going if any(
            t.stage not in (Stage.VERIFYING, Stage.DONE) for t in w.tasks.values())}
        kept = {w.row.id for w in self.save([w for w in going if w.row.id in waits], summary)}
        going = [w for w in going if w.row.id not in waits or w.row.id in kept]
        if steps.poll(self.ctx, going, now):
            going = self.save(going, summary)
        steps.verify(self.ctx, going, now)
        ending = [w for w in going if all(t.stage is Stage.DONE for t in w.tasks.values())]
        self.finish(ending, summary)  # writes their tasks with their receipts
        ended = {w.row.id for w in ending}
        for w in self.save([w for w in going if w.row.id not in ended], summary):
            for t in w.tasks.values():
                if t.blocked is not None:
                    summary.blocked.append((w.row.id, t.system, t.blocked))
                elif t.stage is not Stage.DONE:
                    summary.waiting[t.stage.value] += 1
                    summary.left.setdefault(w.row.id, []).append(t.stage.value)
                    if t.summary.held and t.stage is Stage.ACTING:
                        summary.held.append((w.row.id, t.system, "; ".join(t.summary.held)))

    # loading and saving ----------------------------------------------------------------

    def load(self, rows: Sequence[RequestRow]) -> list[Work]:
        """The works of ``rows``: their identifiers and tasks, decrypted."""
        return self.writer.load(rows)

    def save(self, works: Sequence[Work], summary: RunSummary, *,
             identifiers: bool = False) -> list[Work]:
        """Write the works' tasks, transitions and (with ``identifiers``) identifiers, in
        one transaction fenced by the leases; returns the works this runner still holds."""
        saved = self.writer.save(works, identifiers=identifiers)
        summary.failed.extend(saved.failed)
        summary.lost.extend(saved.lost)
        return saved.kept

    def _watched(self, hook: str) -> bool:
        return self.writer.watched(hook)

    def _tells(self) -> bool:
        """Whether a plugin listens to an event a batch writes to the outbox."""
        return any(self._watched(h) for h in (TASK_CHANGED, "erasure_receipt_written",
                                                "erasure_request_finished"))

    # identity and approval -------------------------------------------------------------

    def _hold_unverified(self, works: list[Work], summary: RunSummary) -> list[Work]:
        """Set aside requests whose type needs a verified identity (the rules table) but
        have neither a verified identity nor an override with a reason (recorded before
        the rule applied to their type): nothing is disclosed or changed for them until
        `erasure request verify`. The works that go on."""
        held = [w.row.id for w in works if for_request(w.type, "verified_identity")
                and not w.row.verified and not w.row.override]
        if not held:
            return works
        with self.ledger.fenced(held) as (conn, owned):
            self.ledger.set_requests(conn, [{"id": rid, "status": "awaiting_verification"}
                                            for rid in held if rid in owned])
        summary.awaiting_verification.extend(held)
        return [w for w in works if w.row.id not in held]


    def _gate(self, works: list[Work], summary: RunSummary) -> set[str]:
        """Stop requests that need a person's approval of their plan; their ids."""
        if not self.ctx.host.require_approval:
            return set()
        gated: list[dict[str, Any]] = []
        for w in works:
            if not (self._gated(w) and w.found_everywhere()):
                continue
            if any(t.stage not in (Stage.FOUND, Stage.DONE) for t in w.tasks.values()):
                continue  # acting already: the approval was honoured
            plan = self.plan_hash(w)
            if w.row.approved_at is None or plan != w.row.plan_hash:
                if w.row.approved_at is not None:
                    summary.replanned.append(w.row.id)
                gated.append({"id": w.row.id, "status": "awaiting_approval",
                              "plan_hash": plan, "approved_at": None})
                summary.awaiting_approval.append(w.row.id)
        if gated:
            with self.ledger.fenced([g["id"] for g in gated]) as (conn, owned):
                self.ledger.set_requests(conn, [g for g in gated if g["id"] in owned])
        return {g["id"] for g in gated}

    def _gated(self, w: Work) -> bool:
        return any(w.rule(self.ctx, name).approval for name in w.tasks
                   if name in self.ctx.systems)

    def _find_again_if_approved(self, works: Sequence[Work]) -> None:
        """An approved request that has not acted yet is found again, so it acts only if
        the systems still hold what was approved (compared by :meth:`plan_hash`)."""
        strong_types = self.ctx.host.strong_identifiers
        for w in works:
            if not (self.ctx.host.require_approval and self._gated(w)
                    and w.row.approved_at is not None):
                continue
            if any(t.stage not in (Stage.FOUND, Stage.DONE) for t in w.tasks.values()):
                continue
            w.known = KnownIdentifiers.from_request(w.known.given, strong_types)
            for t in w.tasks.values():
                if t.stage is Stage.FOUND:
                    t.move(Stage.PENDING, "approved: found again before acting")
                    t.data = TaskData()
                    t.summary = TaskSummary(started_at=t.summary.started_at,
                                            attempts=t.summary.attempts)

    def plan_hash(self, w: Work) -> str:
        """A keyed hash of what the request would act on (:func:`.review.plan_hash`)."""
        return review.plan_hash(self.ctx, w)

    # the end of a request --------------------------------------------------------------

    def finish(self, works: Sequence[Work], summary: RunSummary) -> None:
        """Packages, then receipts for every system of every request in one transaction,
        with the requests' end, the purge of their identifiers and the hook events."""
        if not works:
            return
        now = utcnow()
        made: list[dict[str, Any]] = []
        for w in works:
            written = finish.package(self.ctx, w)
            if written is not None:
                path, digest, password = written
                made.append(finish.package_row(self.ctx, w, path, digest, now))
                if password:
                    summary.package_passwords[w.row.id] = password
        # An event no plugin listens to would only be written and marked delivered.
        tell_receipts = self._watched("erasure_receipt_written")
        tell_finished = self._watched("erasure_request_finished")
        targets: dict[str, Any] = {}  # callback targets, read by the fence
        with self.ledger.fenced([w.row.id for w in works], targets=targets) as (conn, owned):
            ending = [w for w in works if w.row.id in owned]
            entries: list[tuple[str, dict[str, Any]]] = []  # (request id, receipt body)
            outbox: list[tuple[str, str, dict[str, Any]]] = []  # (event id, hook, payload)
            ends: list[dict[str, Any]] = []
            for w in ending:
                outcome = finish.request_outcome(w)
                entries.extend((w.row.id, body)
                               for body in finish.receipt_bodies(self.ctx, w, now))
                if tell_finished:
                    outbox.append((str(uuid.uuid4()), "erasure_request_finished", {
                        "request_id": w.row.id, "ticket": w.row.ticket, "outcome": outcome}))
                ends.append({"id": w.row.id, "status": "done", "outcome": outcome,
                             "finished_at": now, "identifiers": None, "lease_owner": None,
                             "lease_until": None, "not_before": None})
                summary.finished.append(w.row.id)
                summary.outcomes[outcome] += 1
                summary.outcome_of[w.row.id] = outcome
            # sealed, stored and signed (the batch's head) in the batch's transaction
            receipts, head = self.chain.append(conn, entries)
            if tell_receipts:
                outbox.extend((str(uuid.uuid4()), "erasure_receipt_written", r.to_json())
                              for r in receipts)
            told: list[dict[str, Any]] = []  # the tasks' last moves, told first
            summary.failed.extend(self.writer.write(conn, ending, purge=True,
                                                    tell_into=told))
            callbacks.queue(self.ledger, conn, [*told, *(
                {"request_id": w.row.id, "event": "request_finished",
                 "subject_request_type": w.type.value, "outcome": finish.request_outcome(w),
                 "ok": finish.request_outcome(w) in OK_OUTCOMES,
                 "systems": [{"system": name, "outcome": w.tasks[name].outcome}
                             for name in sorted(w.tasks)]} for w in ending)],
                targets=targets)
            self.ledger.set_requests(conn, ends)
            ended = {w.row.id for w in ending}
            self.ledger.add_packages(conn, [p for p in made if p["request_id"] in ended])
            rotated = self.ciphers.forget(conn, ended,
                                          rotate=self._last_batch and self._upkeep)
            erased = {h for w in ending if for_request(w.type, "drops_packages")
                      and finish.request_outcome(w) in OK_OUTCOMES
                      for h in finish.subject_hashes(self.ctx, w)}
            self.ledger.add_events(conn, outbox)
        if rotated is not None:  # after commit: the older epoch keys go
            self.ciphers.shred_before(rotated)
            self._rotated = True
        self.chain.keep(head)  # after commit: the head kept outside the ledger too
        if head is not None:
            self._signed = (int(head["body"]["count"]), str(head["body"]["last"]))
        summary.packages.update((p["request_id"], str(self.ctx.host.exports() / p["file"]))
                                for p in made if p["request_id"] in ended)
        # After commit: a delivered package of a person just erased goes now, not in 30
        # days; one nobody has received yet goes once delivered (or when it expires).
        drop_for_subject(self.ledger, self.ctx.host.exports(), erased)
        lost = [w.row.id for w in works if w.row.id not in owned]
        if lost:
            log.warning("%d request(s) dropped: their lease was taken over", len(lost))
            summary.lost.extend(lost)

    # the outbox ------------------------------------------------------------------------

    def deliver(self) -> int:
        """Call the hooks of events not delivered yet (see :func:`.writer.deliver`)."""
        return deliver(self.ledger, self.plugins)
