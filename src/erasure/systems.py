"""Configured systems at run time: connector instances, retries and the parallel fan-out."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .config import Config, SystemConfig
from .connector import _CURRENT, CallContext, Connector
from .errors import (
    BlockedError,
    CapabilityNotSupported,
    ConfigError,
    ConnectorError,
    PermanentError,
    TransientError,
)
from .models import Finding, IdentifierType, ItemOutcome, ItemStatus
from .plugins import PluginHost
from .retry import Attempts, RetryBudget, RetryPolicy

__all__ = ["CallResult", "System", "build_systems", "fan_out"]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class CallResult:
    """What one action in one system produced: values, attempts and a classified error."""

    values: list[Any] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None
    #: the failure class (errors.py): transient | blocked | permanent | unsupported
    error_kind: str | None = None
    #: seconds the system asked to wait (Retry-After) with its last transient error
    retry_after: float | None = None
    #: the connector said the error concerns the whole system, not these subjects
    system_wide: bool = False

    def failed_with(self, exc: BaseException) -> None:
        """Record ``exc``, classified, as this call's error."""
        self.error, self.error_kind = classify(exc)
        self.retry_after = getattr(exc, "retry_after", None)
        self.system_wide = bool(getattr(exc, "system_wide", False))


class Limiter(Protocol):
    """What a system's limits offer (``limits.LedgerLimiter``)."""

    def hold(self, deadline: float) -> AbstractContextManager[None]:
        """The block is one call of the system, made within its limits."""
        ...


@dataclass
class System:
    """One configured system, ready to call (or the reason it is not covered)."""

    config: SystemConfig
    cls: type[Connector] | None
    uncovered: str | None
    retry: RetryPolicy
    #: how long this system may keep failing within the run (``system_budget_seconds``)
    budget: RetryBudget = field(default_factory=lambda: RetryBudget(60.0))
    #: the connector's own folder in the state folder (``Connector.state_dir``)
    state_dir: Path | None = None
    #: ``[erasure] default_phone_region``: given to connectors with a ``phone_region``
    #: setting that their system leaves unset
    phone_region: str | None = None
    #: the system's limits shared by every process (``limits.LedgerLimiter``): each
    #: call attempt runs inside ``limiter.hold(deadline)``; None: no limits
    limiter: Limiter | None = None
    _connector: Connector | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> str:
        return getattr(self.cls, "version", "?") if self.cls else "?"

    @property
    def identifier_types(self) -> frozenset[IdentifierType] | None:
        """The identifier types this system can search (None: any): the connector
        instance's, which may narrow its class's per system (the mail connector without
        ``search_body`` searches no phones)."""
        if self.cls is None:
            return None
        try:
            return self.connector().identifier_types
        except Exception:  # the call fails and says why; the class's claim meanwhile
            return self.cls.identifier_types

    def connector(self) -> Connector:
        """The connector instance, built on first use (settings validated again)."""
        with self._lock:
            if self._connector is None:
                assert self.cls is not None
                if self.config.unset:
                    # a secret is needed now and is not there: say which, once
                    raise ConfigError(self.config.unset[0])
                raw = dict(self.config.settings)
                if (self.phone_region and "phone_region" in self.cls.Settings.model_fields
                        and raw.get("phone_region") is None):
                    raw["phone_region"] = self.phone_region
                settings = self.cls.Settings.model_validate(raw)
                self._connector = self.cls(self.name, settings)
                self._connector.state_dir = self.state_dir
            return self._connector

    def receipt_facts(self) -> dict[str, Any]:
        """The connector's :meth:`Connector.receipt_facts`, if it was built (else none);
        a connector that fails to say is left out, never failing a receipt."""
        if self._connector is None:
            return {}
        try:
            return dict(self._connector.receipt_facts())
        except Exception as exc:
            log.warning("receipt facts of %s failed: %s", self.name, type(exc).__name__)
            return {}

    def close(self) -> None:
        if self._connector is not None:
            try:
                self._connector.close()
            except Exception as exc:  # closing must not hide the run's result
                log.warning("closing %s failed: %s", self.name, type(exc).__name__)
            self._connector = None

    def context(self, action: str, subjects: Iterable[str], *,
                due: Mapping[str, datetime] | None = None, key_action: str | None = None
                ) -> CallContext:
        """The context a call of ``action`` for ``subjects`` runs in: its deadline and each
        subject's idempotency key (stable per request, system and ``key_action``, which is
        ``action`` unless given: a reminder's number goes there), and the requests' due
        dates."""
        deadline = time.monotonic() + self.retry.deadline_seconds
        if self.budget.until is not None:  # failing already: retries end with the budget
            deadline = min(deadline, self.budget.until)
        return CallContext(
            system=self.name, action=action, deadline=deadline,
            idempotency_keys={s: idempotency_key(s, self.name, key_action or action)
                              for s in subjects},
            due=due or {})

    def call(self, fn: Callable[[Connector], Iterable[T]],
             context: CallContext | None = None) -> CallResult:
        """Run a whole-batch call with retries; classify whatever error is left."""
        attempts = Attempts()
        result = CallResult()
        if self._given_up(result):
            return result
        token = _CURRENT.set(context)
        try:
            result.values = self.retry.call(
                lambda: self._limited(lambda: list(fn(self.connector())), context),
                attempts, self.budget)
        except Exception as exc:
            result.failed_with(exc)
        finally:
            _CURRENT.reset(token)
        result.attempts = attempts.count
        return result

    def call_items(
        self, fn: Callable[[Connector, Sequence[Finding]], Iterable[ItemOutcome]],
        findings: Sequence[Finding], context: CallContext | None = None,
    ) -> CallResult:
        """Run a per-item action; items that failed transiently are retried on their own."""
        token = _CURRENT.set(context)
        try:
            return self._call_items(fn, findings, context)
        finally:
            _CURRENT.reset(token)

    def _limited(self, make: Callable[[], T], context: CallContext | None) -> T:
        """One call attempt, within the system's limits (when it has any)."""
        if self.limiter is None:
            return make()
        deadline = (context.deadline if context is not None
                    else time.monotonic() + self.retry.deadline_seconds)
        with self.limiter.hold(deadline):
            return make()

    def _call_items(
        self, fn: Callable[[Connector, Sequence[Finding]], Iterable[ItemOutcome]],
        findings: Sequence[Finding], context: CallContext | None,
    ) -> CallResult:
        attempts = Attempts()
        outcomes: dict[tuple[str, str], ItemOutcome] = {}
        pending = list(findings)

        def attempt() -> None:
            nonlocal pending
            got = {(o.finding.subject, o.finding.ref): o for o in self._limited(
                lambda: list(fn(self.connector(), pending)), context)}
            for f in pending:
                o = got.get((f.subject, f.ref))
                if o is None:  # a connector that skips an item must not count as success
                    o = ItemOutcome(f, ItemStatus.FAILED, error="connector gave no outcome")
                outcomes[(f.subject, f.ref)] = o
            retry = [
                o.finding for o in got.values() if o.status is ItemStatus.FAILED and o.transient
            ]
            if retry:
                pending = retry
                raise TransientError(f"{len(retry)} items failed transiently")

        result = CallResult()
        if self._given_up(result):
            return result
        try:
            self.retry.call(attempt, attempts, self.budget)
        except Exception as exc:
            result.failed_with(exc)
        result.values = list(outcomes.values())
        result.attempts = attempts.count
        return result


    def _given_up(self, result: CallResult) -> bool:
        """The system kept failing for its whole budget in this run: the call is not made,
        its work deferred (a command against a dead system returns)."""
        if not self.budget.spent:
            return False
        result.failed_with(TransientError(
            f"the system kept failing for {self.budget.seconds:g} s in this run"))
        return True


def classify(exc: BaseException) -> tuple[str, str]:
    """A one-line message (type and text, no values) and the failure class (errors.py):
    ``transient``, ``blocked``, ``permanent`` or ``unsupported``."""
    text = (str(exc).splitlines() or [""])[0][:200]
    msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if isinstance(exc, CapabilityNotSupported):
        return msg, "unsupported"
    if isinstance(exc, PermanentError):
        return msg, "permanent"
    if isinstance(exc, TransientError):
        return msg + " (retries exhausted)", "transient"
    if isinstance(exc, BlockedError | ConfigError):
        return msg, "blocked"
    if isinstance(exc, ConnectorError):  # a connector that did not say: an operator looks
        return msg + " (unclassified)", "blocked"
    # An unclassified crash is a connector bug: the message may hold anything, keep the
    # type. It never ends a request: the task waits for an operator.
    log.error("connector raised unclassified %s", type(exc).__name__)
    return f"{type(exc).__name__} (unclassified connector error)", "blocked"


def idempotency_key(request_id: str, system: str, action: str) -> str:
    """The same for every attempt of one request's action in one system, in any process."""
    import hashlib

    return hashlib.sha256(f"{request_id}\x1f{system}\x1f{action}".encode()).hexdigest()[:32]


def build_systems(
    config: Config, plugins: PluginHost, *, sleep: Callable[[float], None] = time.sleep,
) -> dict[str, System]:
    """Systems of the config; a missing connector makes its system not covered, not an error."""
    out: dict[str, System] = {}
    for name, sc in config.systems.items():
        if not sc.enabled:
            continue
        cls = plugins.registry.get(sc.connector)
        uncovered = None if cls is not None else plugins.failure_for(sc.connector)
        retry = RetryPolicy.from_settings(
            config.host.retry, max_attempts=sc.max_attempts, sleep=sleep
        )
        out[name] = System(config=sc, cls=cls, uncovered=uncovered, retry=retry,
                           state_dir=config.host.state_dir / "systems" / name,
                           phone_region=config.host.default_phone_region,
                           budget=RetryBudget(config.host.retry.system_budget_seconds))
    return out


def fan_out(
    work: Mapping[str, Callable[[], R]], max_workers: int
) -> dict[str, R]:
    """Run one callable per system in parallel (client libraries are synchronous)."""
    if not work:
        return {}
    if len(work) == 1:
        ((name, fn),) = work.items()
        return {name: fn()}
    with ThreadPoolExecutor(max_workers=min(max_workers, len(work))) as pool:
        futures = {name: pool.submit(fn) for name, fn in work.items()}
        return {name: f.result() for name, f in futures.items()}


def check_system(system: System) -> str | None:
    """None when the system is reachable and usable, else a one-line problem."""
    if system.uncovered:
        return system.uncovered
    try:
        system.connector().check()
    except ConfigError as exc:
        return str(exc)
    except Exception as exc:
        return classify(exc)[0]
    return None
