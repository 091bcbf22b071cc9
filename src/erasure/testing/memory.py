"""The in-memory connector: a reference implementation of the contract, for tests and demos.

Items live in a named store shared by every instance in the process, or, with ``path``, in a
JSON file (locked, rewritten atomically) so that separate processes see the same data; the
demo and the kill -9 tests use that. Item fields named after identifier types (``email``,
``phone``, ``customer_id``, ``name``...) are searchable; a rectification corrects those and
``address``. An objection sets the item's opt-out for its scope (``opt_out``), for the
scopes the system's ``objection_scopes`` lists. With ``path``, every delete is appended to
``<path>.journal`` so tests can prove nothing was erased twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import SecretStr

from ..connector import Connector, ConnectorSettings, current_call
from ..errors import (
    AuthError,
    BlockedError,
    CapabilityNotSupported,
    TransientError,
)
from ..hookspecs import hookimpl
from ..models import (
    Capability,
    Correction,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    ObjectionScope,
    Record,
    Subject,
)

__all__ = [
    "MemoryConnector",
    "MemoryProcessorConnector",
    "MemoryStore",
    "erasure_register_connectors",
]

_TYPES = {t.value: t for t in IdentifierType}
_LOCKED = "the system refused the item (locked)"


@functools.lru_cache(maxsize=4096)
def _normalised(itype: str, value: str) -> str:
    # seeding thousands of items of one person parses the same few values
    return Identifier.parse(itype, value).value


class MemoryStore:
    """Items by reference, with an index from (identifier type, value) to references."""

    _named: ClassVar[dict[str, MemoryStore]] = {}
    _named_lock = threading.Lock()

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.index: dict[tuple[str, str], set[str]] = {}
        self.lock = threading.RLock()
        #: jobs by idempotency key (``pending_polls`` mode) and the keys in submit order
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submissions: list[str] = []

    @classmethod
    def named(cls, name: str) -> MemoryStore:
        """The process-wide store called ``name`` (created empty on first use)."""
        with cls._named_lock:
            return cls._named.setdefault(name, cls())

    @classmethod
    def reset(cls, name: str | None = None) -> None:
        """Forget one named store, or all of them."""
        with cls._named_lock:
            if name is None:
                cls._named.clear()
            else:
                cls._named.pop(name, None)

    def add(self, ref: str, kind: str, fields: Mapping[str, Any]) -> None:
        """Add or replace an item. Identifier-typed fields are normalised the way the host does."""
        with self.lock:
            self.remove(ref)
            clean = dict(fields)
            for key, value in fields.items():
                if key in _TYPES and isinstance(value, str):
                    clean[key] = _normalised(key, value)
            self.items[ref] = {"kind": kind, "fields": clean, "restricted": False}
            self._index(ref, clean)

    def _index(self, ref: str, fields: Mapping[str, Any]) -> None:
        for key, value in fields.items():
            if key in _TYPES and isinstance(value, str):
                self.index.setdefault((key, value), set()).add(ref)

    def remove(self, ref: str) -> bool:
        with self.lock:
            item = self.items.pop(ref, None)
            if item is None:
                return False
            for key, value in item["fields"].items():
                refs = self.index.get((key, value))
                if refs is not None:
                    refs.discard(ref)
                    if not refs:
                        del self.index[(key, value)]
            return True

    def dump(self) -> dict[str, Any]:
        return {"items": self.items, "jobs": self.jobs, "submissions": self.submissions}

    def load(self, data: Mapping[str, Any]) -> None:
        self.items = {}
        self.index = {}
        self.jobs = dict(data.get("jobs", {}))
        self.submissions = list(data.get("submissions", []))
        for ref, item in data.get("items", {}).items():
            self.items[ref] = item
            self._index(ref, item["fields"])


class MemorySettings(ConnectorSettings):
    """Settings of a memory system."""

    store: str | None = None
    path: str | None = None
    latency_ms: float = 0.0
    #: a file each call appends "start end pid" to (epoch seconds, around its latency):
    #: what the "system" saw, for tests of limits shared by several processes
    call_log: str | None = None
    fail_first_calls: int = 0
    fail_retry_after: float | None = None
    password: SecretStr | None = None
    #: > 0: delete, anonymise and restrict are jobs the "system" finishes after this many
    #: polls (as Salesforce Bulk API or Zendesk job statuses); the items answer PENDING
    pending_polls: int = 0
    #: > 0: find reads each identifier's matches in pages of this many, as a paged API is
    #: read (the contract suite's large scenario must make it turn pages)
    page_size: int = 0
    #: the objections (Art. 21) the system can honour: an item's ``opt_out`` lists them
    objection_scopes: tuple[ObjectionScope, ...] = (ObjectionScope.MARKETING,
                                                    ObjectionScope.PROFILING)


class MemoryConnector(Connector):
    """Keeps items in memory or in a JSON file. Supports every action, with exact matching."""

    name = "memory"
    version = "1.0"
    Settings = MemorySettings
    capabilities = frozenset(
        {Capability.FIND, Capability.EXPORT, Capability.DELETE, Capability.ANONYMISE,
         Capability.RESTRICT, Capability.LOOKUP, Capability.RECTIFY, Capability.OBJECT}
    )
    poll_interval = 0.0  # a local "system": its jobs may be polled at once

    settings: MemorySettings

    def __init__(self, system: str, settings: MemorySettings) -> None:
        super().__init__(system, settings)
        self._calls = 0
        self._calls_lock = threading.Lock()
        self._store = MemoryStore.named(settings.store or f"system:{system}")

    def _submit(self, store: MemoryStore, action: str, findings: Sequence[Finding]
                ) -> list[ItemOutcome]:
        """Queue ``action`` on ``findings`` as one job per subject; a job submitted before
        under the same idempotency key is answered again, never submitted twice."""
        ctx = current_call()
        out: list[ItemOutcome] = []
        by_subject: dict[str, list[Finding]] = {}
        for f in findings:
            by_subject.setdefault(f.subject, []).append(f)
        for subject, fs in by_subject.items():
            key = ctx.idempotency_key(subject)
            job = store.jobs.get(key)
            if job is None:
                job = {"action": action, "refs": [f.ref for f in fs],
                       "polls_left": self.settings.pending_polls, "done": False}
                store.jobs[key] = job
                store.submissions.append(key)
            out.extend(ItemOutcome(f, ItemStatus.PENDING, handle=key) for f in fs)
        return out

    def poll(self, pending: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        self._simulate()
        with self._open(write=True) as store:
            out = []
            polled: set[str] = set()
            for o in pending:
                job = store.jobs.get(o.handle or "")
                if job is None:
                    out.append(ItemOutcome(o.finding, ItemStatus.FAILED, error="unknown job"))
                    continue
                if not job["done"] and o.handle not in polled:
                    polled.add(o.handle or "")
                    job["polls_left"] -= 1
                    if job["polls_left"] <= 0:
                        job["results"] = {
                            ref: self._apply(store, job["action"], ref)
                            for ref in job["refs"]}
                        job["done"] = True
                if job["done"]:
                    status = ItemStatus(job["results"][o.finding.ref])
                    error = _LOCKED if status is ItemStatus.FAILED else None
                    out.append(ItemOutcome(o.finding, status, error=error))
                else:
                    out.append(ItemOutcome(o.finding, ItemStatus.PENDING, handle=o.handle))
        yield from out

    def _apply(self, store: MemoryStore, action: str, ref: str) -> str:
        """What a finished job did to one item (an ItemStatus value)."""
        if store.items.get(ref, {}).get("locked"):
            return ItemStatus.FAILED.value
        if action == "delete":
            return (ItemStatus.DONE if store.remove(ref) else ItemStatus.ALREADY_DONE).value
        item = store.items.get(ref)
        if item is None:
            return ItemStatus.FAILED.value
        if action == "restrict":
            if item["restricted"]:
                return ItemStatus.ALREADY_DONE.value
            item["restricted"] = True
            return ItemStatus.DONE.value
        if not any(k in _TYPES for k in item["fields"]):
            return ItemStatus.ALREADY_DONE.value
        store.add(ref, item["kind"], {k: v for k, v in item["fields"].items() if k not in _TYPES})
        return ItemStatus.DONE.value

    def lookup(self, findings: Sequence[Finding]) -> Iterator[Finding]:
        self._simulate()
        with self._open(write=False) as store:
            present = [f for f in findings if f.ref in store.items]
        yield from present

    def submissions(self) -> list[str]:
        """Idempotency keys of the jobs submitted, in order (for tests: never twice)."""
        with self._open(write=False) as store:
            return list(store.submissions)

    def _simulate(self) -> None:
        """Latency and injected transient failures, for retry and fan-out tests."""
        with self._calls_lock:
            self._calls += 1
            n = self._calls
        start = time.time()
        if self.settings.latency_ms:
            time.sleep(self.settings.latency_ms / 1000)
        if self.settings.call_log:
            with open(self.settings.call_log, "a", encoding="utf-8") as f:
                f.write(f"{start:.6f} {time.time():.6f} {os.getpid()}\n")
        if n <= self.settings.fail_first_calls:
            raise TransientError("simulated outage", retry_after=self.settings.fail_retry_after)

    @contextlib.contextmanager
    def _open(self, write: bool) -> Iterator[MemoryStore]:
        if self.settings.path is not None and not Path(self.settings.path).parent.is_dir():
            # a configuration mistake: an operator fixes it, then `erasure retry`
            raise BlockedError("store folder does not exist", system_wide=True)
        try:
            with self._open_store(write) as store:
                yield store
        except OSError as exc:
            # The store's file cannot be read or written now (a full disk, a permission
            # being fixed): the host waits and tries again later.
            raise TransientError(f"store file unavailable ({type(exc).__name__})") from None

    @contextlib.contextmanager
    def _open_store(self, write: bool) -> Iterator[MemoryStore]:
        if self.settings.path is None:
            with self._store.lock:
                yield self._store
            return
        path = Path(self.settings.path)
        lock_path = path.with_name(path.name + ".lock")
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            store = MemoryStore()
            if path.exists():
                store.load(json.loads(path.read_text(encoding="utf-8")))
            yield store
            if write:
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(json.dumps(store.dump()), encoding="utf-8")
                os.replace(tmp, path)

    def _journal(self, entries: list[str]) -> None:
        if self.settings.path and entries:
            with open(self.settings.path + ".journal", "a", encoding="utf-8") as f:
                f.write("".join(e + "\n" for e in entries))
                f.flush()
                os.fsync(f.fileno())

    def check(self) -> None:
        if self.settings.path is not None:
            parent = Path(self.settings.path).parent
            if not parent.is_dir():
                raise AuthError(f"store folder {parent} does not exist")

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        self._simulate()
        with self._open(write=False) as store:
            out = []
            for subject in subjects:
                hits: dict[str, list[Identifier]] = {}
                for ident in subject.identifiers:
                    for form in ident.forms():  # an email's domain in Unicode or punycode
                        for ref in self._search(store, ident.type.value, form):
                            hits.setdefault(ref, []).append(ident)
                for ref, matched in sorted(hits.items()):
                    item = store.items[ref]
                    related = tuple(
                        Identifier(_TYPES[k], v)
                        for k, v in sorted(item["fields"].items())
                        if k in _TYPES and isinstance(v, str)
                    )
                    out.append(
                        Finding(
                            system=self.system,
                            subject=subject.key,
                            ref=ref,
                            kind=item["kind"],
                            matched=tuple(matched),
                            fields=tuple(sorted({m.type.value for m in matched})),
                            related=related,
                        )
                    )
        yield from out

    def _search(self, store: MemoryStore, itype: str, value: str) -> Iterator[str]:
        """The refs of the items holding ``value`` as ``itype``, read page by page (with
        ``page_size``) until a page comes back short, as a paged API is read."""
        refs = sorted(store.index.get((itype, value), ()))
        size = self.settings.page_size or max(len(refs), 1)
        offset = 0
        while True:
            page = refs[offset:offset + size]
            yield from page
            if len(page) < size:
                return
            offset += size

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        self._simulate()
        with self._open(write=False) as store:
            records = [
                Record(f, dict(store.items[f.ref]["fields"]))
                for f in findings
                if f.ref in store.items
            ]
        yield from records

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        self._simulate()
        if self.settings.pending_polls:
            with self._open(write=True) as store:
                submitted = self._submit(store, "delete", findings)
            yield from submitted
            return
        with self._open(write=True) as store:
            outcomes = []
            journal = []
            for f in findings:
                if store.items.get(f.ref, {}).get("locked"):
                    outcomes.append(ItemOutcome(f, ItemStatus.FAILED, error=_LOCKED))
                    continue
                removed = store.remove(f.ref)
                status = ItemStatus.DONE if removed else ItemStatus.ALREADY_DONE
                journal.append(f"delete {f.ref} {status.value}")
                outcomes.append(ItemOutcome(f, status))
        self._journal(journal)
        yield from outcomes

    def anonymise(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        self._simulate()
        if self.settings.pending_polls:
            with self._open(write=True) as store:
                submitted = self._submit(store, "anonymise", findings)
            yield from submitted
            return
        with self._open(write=True) as store:
            outcomes = []
            for f in findings:
                item = store.items.get(f.ref)
                if item is not None and item.get("locked"):
                    outcomes.append(ItemOutcome(f, ItemStatus.FAILED, error=_LOCKED))
                    continue
                if item is None or not any(k in _TYPES for k in item["fields"]):
                    outcomes.append(ItemOutcome(f, ItemStatus.ALREADY_DONE))
                    continue
                kept = {k: v for k, v in item["fields"].items() if k not in _TYPES}
                store.add(f.ref, item["kind"], kept)
                outcomes.append(ItemOutcome(f, ItemStatus.DONE))
        yield from outcomes

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        self._simulate()
        if self.settings.pending_polls:
            with self._open(write=True) as store:
                submitted = self._submit(store, "restrict", findings)
            yield from submitted
            return
        with self._open(write=True) as store:
            outcomes = []
            for f in findings:
                item = store.items.get(f.ref)
                if item is None:
                    outcomes.append(ItemOutcome(f, ItemStatus.FAILED, error="item not found"))
                elif item.get("locked"):
                    outcomes.append(ItemOutcome(f, ItemStatus.FAILED, error=_LOCKED))
                elif item["restricted"]:
                    outcomes.append(ItemOutcome(f, ItemStatus.ALREADY_DONE))
                else:
                    item["restricted"] = True
                    outcomes.append(ItemOutcome(f, ItemStatus.DONE))
        yield from outcomes

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> Iterator[ItemOutcome]:
        """Fields named like a correction's type that hold an old value get the new one."""
        self._simulate()
        by_subject: dict[str, list[Correction]] = {}
        for c in corrections:
            by_subject.setdefault(c.subject, []).append(c)
        with self._open(write=True) as store:
            outcomes = []
            for f in findings:
                item = store.items.get(f.ref)
                if item is None:
                    outcomes.append(ItemOutcome(f, ItemStatus.FAILED, error="item not found"))
                    continue
                fields = dict(item["fields"])
                for c in by_subject.get(f.subject, ()):
                    if c.matches(fields.get(c.type.value)) is False:
                        fields[c.type.value] = c.new
                if fields == item["fields"]:
                    outcomes.append(ItemOutcome(f, ItemStatus.ALREADY_DONE))
                    continue
                kept = {k: v for k, v in item.items() if k not in ("kind", "fields")}
                store.add(f.ref, item["kind"], fields)  # re-indexed under the new values
                store.items[f.ref].update(kept)
                outcomes.append(ItemOutcome(f, ItemStatus.DONE))
        yield from outcomes

    def object_to(self, findings: Sequence[Finding], scope: ObjectionScope
                  ) -> Iterator[ItemOutcome]:
        """Add ``scope`` to each item's opt-outs (the system stops that processing)."""
        self._simulate()
        if scope not in self.settings.objection_scopes:
            raise CapabilityNotSupported(f"{self.system} has no opt-out for {scope.value}")
        with self._open(write=True) as store:
            outcomes = []
            for f in findings:
                item = store.items.get(f.ref)
                if item is None:
                    outcomes.append(ItemOutcome(f, ItemStatus.FAILED, error="item not found"))
                    continue
                opted = item.setdefault("opt_out", [])
                if scope.value in opted:
                    outcomes.append(ItemOutcome(f, ItemStatus.ALREADY_DONE))
                else:
                    opted.append(scope.value)
                    outcomes.append(ItemOutcome(f, ItemStatus.DONE))
        yield from outcomes

    def opted_out(self, ref: str) -> set[str]:
        """The scopes an item is opted out of (for tests and the demo)."""
        with self._open(write=False) as store:
            return set(store.items.get(ref, {}).get("opt_out", []))

    def lock(self, ref: str) -> None:
        """Lock an item: the system refuses to delete, anonymise or restrict it (a record
        another process holds open, a validation rule); the action's outcome is FAILED."""
        with self._open(write=True) as store:
            store.items[ref]["locked"] = True

    def is_restricted(self, ref: str) -> bool:
        """Whether an item is marked restricted (for tests)."""
        with self._open(write=False) as store:
            return bool(store.items.get(ref, {}).get("restricted"))

    def seed(self, items: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
        """Add items: ``{ref: (kind, fields)}``."""
        with self._open(write=True) as store:
            for ref, (kind, fields) in items.items():
                store.add(ref, kind, fields)

    def count(self) -> int:
        """How many items the system holds."""
        with self._open(write=False) as store:
            return len(store.items)


class ProcessorSettings(ConnectorSettings):
    """Settings of a memory processor: the named inbox its notices go to."""

    inbox: str


class MemoryProcessorConnector(Connector):
    """A processor with no API (a telecom carrier): it cannot be searched, only told.

    ``delete`` and ``restrict`` put one notice per subject into a named in-memory inbox (as
    an email would) and answer AWAITING_CONFIRMATION with the notice's id; a person records
    the processor's answer with ``erasure confirm``. A notice is sent once per idempotency
    key, however often the host asks; so is each reminder (``remind``), counted on the
    notice.
    """

    name = "memory-processor"
    version = "1.0"
    Settings = ProcessorSettings
    capabilities = frozenset({Capability.DELETE, Capability.RESTRICT, Capability.NOTIFY})
    settings: ProcessorSettings

    inboxes: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        raise CapabilityNotSupported("a processor without an API cannot be searched")

    def _tell(self, action: str, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        ctx = current_call()
        inbox = self.inboxes.setdefault(self.settings.inbox, {})
        out = []
        for f in findings:
            key = ctx.idempotency_key(f.subject)
            inbox.setdefault(key, {"action": action,
                                   "identifiers": sorted(i.value for i in f.matched)})
            out.append(ItemOutcome(f, ItemStatus.AWAITING_CONFIRMATION, handle=key))
        yield from out

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return self._tell("erase", findings)

    def remind(self, waiting: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        ctx = current_call()
        inbox = self.inboxes.setdefault(self.settings.inbox, {})
        out = []
        for o in waiting:
            notice = inbox.get(o.handle or "")
            if notice is not None:
                sent = notice.setdefault("reminders", [])
                key = ctx.idempotency_key(o.finding.subject)
                if key not in sent:
                    sent.append(key)
            out.append(ItemOutcome(o.finding, ItemStatus.AWAITING_CONFIRMATION,
                                   handle=o.handle))
        yield from out

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return self._tell("restrict", findings)


@hookimpl
def erasure_register_connectors(registry: Any) -> None:
    """Register the in-memory connector and the memory processor."""
    registry.add(MemoryConnector)
    registry.add(MemoryProcessorConnector)
