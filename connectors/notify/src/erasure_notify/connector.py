"""The ``notify`` connector: a processor with no API, told by email or signed webhook of
erasures, restrictions and rectifications (GDPR Art. 19), which confirms later."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from erasure import (
    Capability,
    CapabilityNotSupported,
    ConnectorError,
    Finding,
    ItemOutcome,
    ItemStatus,
    PermanentError,
    Subject,
    current_call,
)
from erasure.connector import Connector
from erasure.models import Correction

from .message import ACTIONS, Message, Notice, compile_templates, message_id, render
from .sentlog import SentLog
from .settings import NotifySettings
from .signing import Confirmation, InvalidSignature, verify_confirmation
from .transports import DeliveryUncertain, deliver, probe

if TYPE_CHECKING:
    from erasure.connector import CallContext

__all__ = ["NotifyConnector"]


class NotifyConnector(Connector):
    """Tells one processor of the requests that concern it, and never twice.

    The host hands it one ``notice`` finding per request whose ``matched`` holds the
    person's identifiers; only those of the types in ``identifiers`` go into the message.
    Every item answers AWAITING_CONFIRMATION with the message id as handle, until
    ``erasure confirm`` or a signed confirmation (:meth:`confirmation`).

    Never twice: each request's idempotency key is written to the sent-log
    (:mod:`.sentlog`) before the point of no return and marked sent after; a key already
    in the log is answered with its message id and not sent again.
    """

    name = "notify"
    version = "0.1.0"
    Settings = NotifySettings
    capabilities = frozenset({Capability.DELETE, Capability.RESTRICT, Capability.RECTIFY,
                              Capability.NOTIFY})
    settings: NotifySettings

    def __init__(self, system: str, settings: NotifySettings) -> None:
        super().__init__(system, settings)
        self._templates: Any = None
        self._log: SentLog | None = None

    # contract -------------------------------------------------------------------------

    def check(self) -> None:
        """Reach the SMTP server (EHLO, STARTTLS, login) or open the webhook's connection."""
        probe(self.settings)

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        raise CapabilityNotSupported("a processor without an API cannot be searched")

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._tell(findings, {}))

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._tell(findings, {}))

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> Iterator[ItemOutcome]:
        per_subject: dict[str, list[Correction]] = defaultdict(list)
        for c in corrections:
            per_subject[c.subject].append(c)
        return iter(self._tell(findings, per_subject))

    def remind(self, waiting: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        return iter(self._remind(waiting))

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # inbound --------------------------------------------------------------------------

    def confirmation(self, headers: Mapping[str, str], body: bytes, *,
                     now: float | None = None) -> Confirmation:
        """Verify a confirmation the processor posted (signed with this system's
        ``secret``) and check that the message it names carried each request it names.
        Raises :class:`~erasure_notify.signing.InvalidSignature` otherwise."""
        if self.settings.secret is None:
            raise InvalidSignature(f"system {self.system} has no secret to verify with")
        conf = verify_confirmation(self.settings.secret.get_secret_value(), headers, body,
                                   now=now)
        carried = {e.request for e in self.sent_log().by_message([conf.message_id])
                   .get(conf.message_id, []) if e.kind == "notice"}
        if not set(conf.requests) <= carried:
            raise InvalidSignature("the confirmation names a request its message did not "
                                   "carry")
        return conf

    # sending --------------------------------------------------------------------------

    def sent_log(self) -> SentLog:
        """This system's sent-log, in its folder of the state folder."""
        if self._log is None:
            if self.state_dir is None:
                raise PermanentError("the notify connector needs the host's state folder "
                                     "(its sent-log keeps a notice from going out twice)")
            self._log = SentLog(self.state_dir)
        return self._log

    def _templates_(self) -> Any:
        if self._templates is None:
            self._templates = compile_templates(self.settings)
        return self._templates

    def _notice(self, f: Finding, ctx: CallContext, corrections: Sequence[Correction]
                ) -> Notice | None:
        """What this processor may be told of one request; None: nothing it receives."""
        types = self.settings.identifiers
        identifiers = {t.value: tuple(sorted({i.value for i in f.matched if i.type is t}))
                       for t in types}
        identifiers = {k: v for k, v in identifiers.items() if v}
        fixed = {c.type.value: c.new for c in corrections
                 if c.type.identifier_type in types}
        if not identifiers or (ctx.action == "rectify" and not fixed):
            return None
        due = ctx.due.get(f.subject)
        return Notice(f.subject, due.date().isoformat() if due else None, identifiers, fixed)

    def _tell(self, findings: Sequence[Finding], corrections: Mapping[str, list[Correction]]
              ) -> list[ItemOutcome]:
        ctx = current_call()
        if ctx.action not in ACTIONS:
            raise CapabilityNotSupported(f"notify cannot tell of {ctx.action}")
        log = self.sent_log()
        keys = {f.subject: ctx.idempotency_key(f.subject) for f in findings}
        known = log.lookup(keys.values())
        out: list[ItemOutcome] = []
        todo: list[tuple[Finding, Notice]] = []
        for f in findings:
            entry = known.get(keys[f.subject])
            if entry is not None:  # sent (or maybe sent) before: never again
                out.append(ItemOutcome(f, ItemStatus.AWAITING_CONFIRMATION,
                                       handle=entry.message_id))
                continue
            notice = self._notice(f, ctx, corrections.get(f.subject, ()))
            if notice is None:
                types = ", ".join(t.value for t in self.settings.identifiers)
                out.append(ItemOutcome(f, ItemStatus.NOT_SUPPORTED, error=(
                    f"nothing to tell: no {types} of this request is known")))
                continue
            todo.append((f, notice))
        for group in self._groups(todo):
            requests = {keys[f.subject]: f.subject for f, _n in group}
            mid = message_id("notice", requests, self.settings.domain())
            msg = render(self.settings, self._templates_(), system=self.system,
                         action=ctx.action, notices=[n for _f, n in group], msg_id=mid)
            self._send(msg, partial(log.intend, mid, "notice", ctx.action, requests))
            out.extend(ItemOutcome(f, ItemStatus.AWAITING_CONFIRMATION, handle=mid)
                       for f, _n in group)
        return out

    def _remind(self, waiting: Sequence[ItemOutcome]) -> list[ItemOutcome]:
        ctx = current_call()
        log = self.sent_log()
        keys = {o.finding.subject: ctx.idempotency_key(o.finding.subject) for o in waiting}
        known = log.lookup(keys.values())
        notices = log.by_message(o.handle or "" for o in waiting)
        # one message per action the notices asked for (a reminder names its action)
        by_action: dict[str, list[tuple[ItemOutcome, Notice]]] = defaultdict(list)
        for o in waiting:
            if keys[o.finding.subject] in known:
                continue  # this reminder went out already
            origin = [e for e in notices.get(o.handle or "", []) if e.kind == "notice"]
            action = origin[0].action if origin else ctx.action
            notice = self._notice(o.finding, ctx, ())
            if notice is not None:
                by_action[action].append((o, notice))
        for action, items in by_action.items():
            for group in self._groups(items):
                requests = {keys[o.finding.subject]: o.finding.subject for o, _n in group}
                refers = {keys[o.finding.subject]: o.handle or "" for o, _n in group}
                mid = message_id("reminder", requests, self.settings.domain())
                number = 1 + max(log.reminders_of(o.handle or "", o.finding.subject)
                                 for o, _n in group)
                msg = render(self.settings, self._templates_(), system=self.system,
                             action=action, notices=[n for _o, n in group], msg_id=mid,
                             reminder=number, refers_to=sorted(set(refers.values())))
                self._send(msg, partial(log.intend, mid, "reminder", action, requests, refers))
        return [ItemOutcome(o.finding, ItemStatus.AWAITING_CONFIRMATION, handle=o.handle)
                for o in waiting]

    def _groups(self, items: list[Any]) -> list[list[Any]]:
        """One message for all (``batch = "run"``) or one per request."""
        if not items:
            return []
        return [items] if self.settings.batch == "run" else [[i] for i in items]

    def _send(self, msg: Message, intend: Callable[[], None]) -> None:
        """Deliver ``msg``; its keys are in the sent-log from the point of no return on,
        removed again only when the server refused the message."""
        log = self.sent_log()
        committed = False

        def commit() -> None:
            nonlocal committed
            intend()
            committed = True

        try:
            deliver(self.settings, msg, commit)
        except DeliveryUncertain:
            raise  # it may have arrived: the log keeps it as sent
        except ConnectorError:
            if committed:
                log.refused(msg.message_id)  # the server said no: nothing arrived
            raise
        log.sent(msg.message_id)
