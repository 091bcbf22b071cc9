"""The contract suite's population, hooks and helpers: what every group of tests shares."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from ...connector import CallContext, Connector, in_call
from ...errors import CapabilityNotSupported
from ...models import (
    Capability,
    Correction,
    CorrectionType,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    ObjectionScope,
    Subject,
)

E, P, C, U, N, IP = (
    IdentifierType.EMAIL,
    IdentifierType.PHONE,
    IdentifierType.CUSTOMER_ID,
    IdentifierType.USER_ID,
    IdentifierType.NAME,
    IdentifierType.IP,
)

# The lookalike's address contains the subject's as a substring: a search that matches
# substrings (IMAP SEARCH, SQL LIKE) finds both, and erasing it would erase someone else.
SUBJECT_EMAIL = "bob@example.org"
NEIGHBOUR_EMAIL = "jimbob@example.org"

#: Findings per delete call in :meth:`ConnectorContract.test_delete_in_batches`: a batch of
#: one, the first sizes where off-by-one and pairwise code paths differ, and a large one.
#: A call carries whole subjects, as the host's do (a subject with more items goes alone).
BATCH_SIZES = (1, 2, 3, 50)

# Every person's values. Jimbob's contain Bob's; Alice's phone and Xavier's crossed value
# are set in _people(). Customer ids are integers (they are primary keys in SQL systems)
# and long enough not to turn up by chance in a log line.
_VALUES: dict[str, dict[IdentifierType, str]] = {
    "bob": {E: SUBJECT_EMAIL, P: "+4930123456", C: "800123", U: "u-bob", N: "Bob Baker",
            IP: "192.0.2.10"},
    "carol": {E: "carol@example.org", P: "+4930555111", C: "800456", U: "u-carol",
              N: "Carol Cook", IP: "192.0.2.20"},
    "dave": {E: "dave@example.org", P: "+4930555222", C: "800789", U: "u-dave",
             N: "Dave Dyer", IP: "192.0.2.30"},
    "jimbob": {E: NEIGHBOUR_EMAIL, P: "+49301234567", C: "8001234", U: "u-bobby",
               N: "Jimbob Baker", IP: "192.0.2.100"},
    "alice": {E: "alice@example.org", C: "800321", U: "u-alice", N: "Alice Abbott",
              IP: "192.0.2.40"},  # and Bob's phone
    "xavier": {E: "xavier@example.org", P: "+4930555333", C: "800654", U: "u-xavier",
               N: "Xavier Xu", IP: "192.0.2.50"},
}
# Types whose values are free strings, so that one person's value of one type can be another
# person's value of another.
_PLAIN = (C, U, N)
_CROWD_MAX = 200  # crowd values are numbered; IPs run out at 254
# With a crowd, at least this many: two more one-item subjects besides Dave, so that calls
# of exactly 1, 2 and 3 findings can be made of whole subjects whatever their sizes.
_CROWD_MIN = 4


#: The correct values the rectify tests set, per subject key (all unused by anyone seeded).
_CORRECTED = {
    "req-bob": {E: "bob.corrected@example.org", P: "+4930999111", N: "Robert Baker"},
    "req-carol": {E: "carol.corrected@example.org", P: "+4930999222", N: "Caroline Cook"},
    "req-dave": {E: "dave.corrected@example.org", P: "+4930999333", N: "David Dyer"},
}


def _crowd_values(n: int) -> dict[IdentifierType, str]:
    return {E: f"crowd{n}@example.org", P: f"+4940555{n:04d}", C: str(900000 + n),
            U: f"u-crowd{n}", N: f"Crowd Person {n}", IP: f"198.51.100.{n + 1}"}


@dataclass(frozen=True)
class Seeded:
    """What :meth:`ConnectorContract.seed` created for one subject.

    - ``items``: how many items of the system now hold the subject's data. ``find`` must
      return exactly that many findings for the subject (counting those matched through an
      identifier no other seeded person has).
    - ``markers``: values ``export`` must return for the subject's items, each as a whole
      field value (compared as ``str``, at any depth of the record): every record of the
      subject holds at least one of them, together its records hold all of them, and no
      record of anyone else holds one. Identifier values and free texts unique to the subject
      make good markers. Values two people share (a shared phone) are ignored, so listing
      every identifier value is fine; a connector that exports needs at least one marker
      per subject that nobody else has.
    """

    items: int
    markers: AbstractSet[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not isinstance(self.items, int) or self.items < 1:
            raise ValueError("Seeded.items must be the number (>= 1) of items seeded")
        markers = frozenset(self.markers)
        if not all(isinstance(m, str) and m for m in markers):
            raise ValueError("Seeded.markers must be non-empty strings")
        object.__setattr__(self, "markers", markers)


@dataclass
class _World:
    """The seeded population of one test."""

    people: dict[str, Subject]  # by role, in seeding order
    seeded: dict[str, Seeded]  # by subject key
    shared: frozenset[Identifier]  # identifiers more than one person has
    markers: dict[str, frozenset[str]]  # by subject key: markers nobody else has
    targets: list[Subject]  # the subjects acted on in batch tests (Bob, Carol, Dave, crowd)

    def __getitem__(self, role: str) -> Subject:
        return self.people[role]

    def others(self, *subjects: Subject) -> list[Subject]:
        keys = {s.key for s in subjects}
        return [s for s in self.people.values() if s.key not in keys]

    def own(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings matched through an identifier that only their subject has."""
        return [f for f in findings if any(m not in self.shared for m in f.matched)]


def _leaves(value: Any) -> Iterator[str]:
    """Every scalar in an exported record, as str (keys are names, not data)."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _leaves(v)
    elif value is not None:
        yield str(value)


def _refs(findings: Iterable[Finding]) -> set[str]:
    return {f.ref for f in findings}


def _pairs(items: Iterable[Finding]) -> Counter[tuple[str, str]]:
    return Counter((f.subject, f.ref) for f in items)


class ContractBase:
    """The hooks a connector's tests provide and the helpers every group of tests uses.

    Subclass it, provide the ``connector`` fixture and :meth:`seed` (and :meth:`restricted`
    when the connector restricts), and set :attr:`seed_types`. See the module docstring.
    """

    #: Identifier types :meth:`seed` can store. The suite seeds every type in this set that
    #: the connector declares in ``identifier_types``.
    seed_types: ClassVar[frozenset[IdentifierType]] = frozenset({IdentifierType.EMAIL})

    @pytest.fixture
    def connector(self) -> Connector:
        raise NotImplementedError("provide a `connector` fixture returning a Connector")

    def seed(self, connector: Connector, subject: Subject, *, single: bool = False) -> Seeded:
        """Create data of ``subject`` in the system behind ``connector``; say what was made.

        Store every identifier of ``subject`` (one value of each type the suite seeds) on at
        least one item; the same values may appear on several items. With ``single``, create
        exactly one item (holding all of them) and return ``Seeded(items=1, ...)``. If the
        system cannot keep a subject in one item, raise ``NotImplementedError`` for
        ``single``: the checks that need a one-item subject are then skipped.
        """
        raise NotImplementedError("implement seed(connector, subject, *, single=False)")

    def restricted(self, connector: Connector, findings: Sequence[Finding]) -> set[str]:
        """The refs among ``findings`` whose items are marked restricted in the system.

        Required when the connector declares ``RESTRICT``: read the flag the way an operator
        would (a column, a tag, a field of the exported record), not through ``restrict``.
        """
        raise NotImplementedError(
            "implement restricted(connector, findings) so the suite can see what restrict did")

    def objected(self, connector: Connector, findings: Sequence[Finding],
                 scope: ObjectionScope) -> set[str]:
        """The refs among ``findings`` whose items are opted out of ``scope``'s processing.

        Required when the connector declares ``OBJECT``: read the flag the way an operator
        would (the opt-out column or field), not through ``object_to``.
        """
        raise NotImplementedError(
            "implement objected(connector, findings, scope) so the suite can see what "
            "object_to did")

    #: Items one subject holds in the large scenario (``test_a_large_population_...``):
    #: more than twice the page size the connector reads with, so that a find, export or
    #: delete that stops after its first pages leaves items behind. The default (2,500)
    #: is more than two pages of 1,000. A fixture that sets a small page size on the
    #: system may lower it (pages of 10, ``population = 25``) to keep the suite fast;
    #: ``ERASURE_CONTRACT_POPULATION`` overrides it (long runs).
    population: ClassVar[int] = 2_500

    def seed_many(self, connector: Connector, subject: Subject, count: int) -> Seeded:
        """Create ``count`` items of ``subject``, each holding all its identifiers, for the
        large scenario. The default calls ``seed(..., single=True)`` ``count`` times;
        override it with one bulk insert when that is slow."""
        markers: set[str] = set()
        for _ in range(count):
            markers |= self._seed(connector, subject, True).markers
        return Seeded(items=count, markers=markers)

    def refuse_item(self, connector: Connector, finding: Finding) -> AbstractSet[str] | None:
        """Make the system refuse to act on the item of ``finding`` (a lock, a rule),
        so that the deferred-job test can check a job that fails for one item: its outcome
        must be FAILED and the other items still done. Required when the connector answers
        PENDING; raise ``NotImplementedError`` if the system has no such refusal.

        Return the refs of the subject's other items the connector keeps, by design, while
        the refused one stays (a person kept so that a retry can still find their ticket):
        they must fail too, each saying why. ``None`` (the default): none."""
        raise NotImplementedError(
            "implement refuse_item(connector, finding): make the system refuse one item")

    def hostile(self) -> Subject:
        """A subject whose identifiers carry query metacharacters; must match nothing."""
        return Subject(
            "req-hostile",
            (
                Identifier(IdentifierType.EMAIL, "x'or'1'='1\"--@example.org"),
                Identifier(IdentifierType.CUSTOMER_ID, "1' OR '1'='1; DROP TABLE t;--*)(\\%_"),
                Identifier(IdentifierType.USER_ID, "*"),
                Identifier(IdentifierType.NAME, "%"),
            ),
        )

    # population --------------------------------------------------------------------------

    def _types(self, connector: Connector) -> list[IdentifierType]:
        declared = connector.identifier_types
        types = [t for t in IdentifierType
                 if t in self.seed_types and (declared is None or t in declared)]
        if not types:
            raise NotImplementedError(
                "no identifier type to seed: set seed_types to types the connector declares")
        return types

    def _people(self, connector: Connector) -> dict[str, Subject]:
        """Everyone the suite may seed, by role, with normalised identifiers."""
        types = self._types(connector)
        values = {role: dict(v) for role, v in _VALUES.items()}
        roles = ["bob", "carol", "dave", "jimbob"]
        if P in types:
            values["alice"][P] = values["bob"][P]
            roles.append("alice")
        plain = [t for t in _PLAIN if t in types]
        if len(plain) >= 2:
            values["xavier"][plain[1]] = values["bob"][plain[0]]
            roles.append("xavier")
        return {role: self._subject(f"req-{role}", values[role], types) for role in roles}

    @staticmethod
    def _subject(key: str, values: Mapping[IdentifierType, str],
                 types: Sequence[IdentifierType]) -> Subject:
        return Subject(key, tuple(Identifier.parse(t, values[t]) for t in types))

    def _seed(self, connector: Connector, subject: Subject, single: bool) -> Seeded:
        seeded = self.seed(connector, subject, single=single)
        if not isinstance(seeded, Seeded):
            raise TypeError(
                "seed() must return a Seeded(items=..., markers=...) telling what it created")
        if single and seeded.items != 1:
            raise AssertionError("seed(..., single=True) must create exactly one item")
        return seeded

    def _populate(
        self, connector: Connector, *, without: Iterable[str] = (), crowd_items: int = 0
    ) -> _World:
        """Seed everyone (but the roles in ``without``), then crowd subjects (every other one
        with a single item) until the subjects acted on in batches (Bob, Carol, Dave, crowd)
        hold ``crowd_items`` items."""
        skip = set(without)
        people: dict[str, Subject] = {}
        seeded: dict[str, Seeded] = {}
        for role, subject in self._people(connector).items():
            if role in skip:
                continue
            try:
                seeded[subject.key] = self._seed(connector, subject, single=role == "dave")
            except NotImplementedError:
                if role != "dave":
                    raise
                continue  # the system cannot hold a one-item subject: Dave is left out
            people[role] = subject
        targets = [people[r] for r in ("bob", "carol", "dave") if r in people]
        types = self._types(connector)
        singles = "dave" in people  # else the system cannot hold a one-item subject
        n = 0
        while crowd_items and (n < _CROWD_MIN
                               or sum(seeded[s.key].items for s in targets) < crowd_items):
            if n >= _CROWD_MAX:
                raise AssertionError("the crowd ran out of values")
            subject = self._subject(f"req-crowd-{n:02d}", _crowd_values(n), types)
            seeded[subject.key] = self._seed(connector, subject, single=singles and n % 2 == 1)
            people[f"crowd-{n}"] = subject
            targets.append(subject)
            n += 1
        counts = Counter(i for s in people.values() for i in s.identifiers)
        shared = frozenset(i for i, c in counts.items() if c > 1)
        marker_counts = Counter(m for s in seeded.values() for m in s.markers)
        markers = {key: frozenset(m for m in s.markers if marker_counts[m] == 1)
                   for key, s in seeded.items()}
        if connector.supports(Capability.EXPORT):
            lacking = [k for k, m in markers.items() if not m]
            assert not lacking, (
                f"seed gave no marker only this subject has for {lacking}: export cannot "
                "be checked (add an identifier value or a text unique to the subject)")
        return _World(people, seeded, shared, markers, targets)

    # helpers ------------------------------------------------------------------------------

    def _find(self, connector: Connector, *subjects: Subject) -> list[Finding]:
        return list(connector.find(list(subjects)))

    def _found(self, connector: Connector, world: _World, *subjects: Subject) -> list[Finding]:
        """The subjects' own findings, in the order the host acts on them: subject by subject
        (as given), refs sorted."""
        found = world.own(self._find(connector, *subjects))
        order = {s.key: n for n, s in enumerate(subjects)}
        return sorted(found, key=lambda f: (order[f.subject], f.ref))

    def _state(self, connector: Connector, world: _World,
               subjects: Iterable[Subject]) -> dict[str, dict[str, Any]]:
        """What an operator can see of each subject: own findings, exported records,
        restricted refs. Equal states before and after an action: it touched none of them."""
        state: dict[str, dict[str, Any]] = {}
        for s in subjects:
            own = world.own(self._find(connector, s))
            entry: dict[str, Any] = {"found": sorted(
                (f.ref, f.kind, sorted((m.type.value, m.value) for m in f.matched))
                for f in own)}
            if connector.supports(Capability.EXPORT):
                records = list(connector.export(own))
                self._no_neighbours_data(world, records)
                entry["records"] = sorted(
                    json.dumps([r.finding.ref, dict(r.data)], sort_keys=True, default=str)
                    for r in records)
            if connector.supports(Capability.RESTRICT):
                entry["restricted"] = sorted(self.restricted(connector, own))
            state[s.key] = entry
        return state

    @staticmethod
    def _no_neighbours_data(world: _World, records: Iterable[Any]) -> None:
        """Fail, naming it, on an exported record that holds another person's data: a bug
        of export, whatever test was looking (never reported as a bug of delete)."""
        for r in records:
            leaves = set(_leaves(r.data))
            key = r.finding.subject
            for other, markers in world.markers.items():
                assert other == key or not leaves & markers, (
                    f"export of {key}'s {r.finding.kind} returned data of a neighbour, "
                    f"{other} (a lookup by anything but the item's ref?)")

    def _unchanged(self, connector: Connector, world: _World, subjects: Iterable[Subject],
                   before: Mapping[str, Mapping[str, Any]], what: str) -> None:
        """Fail naming whose data ``what`` changed and how, unless ``subjects``' state
        (:meth:`_state`) is still ``before``."""
        after = self._state(connector, world, subjects)
        changes = []
        for key, was in before.items():
            now = after.get(key, {})
            for aspect, old in was.items():
                new = now.get(aspect)
                if new != old:
                    changes.append(f"{key}: {aspect} {len(old)} -> {len(new or [])}"
                                   if len(old) != len(new or []) else f"{key}: {aspect} changed")
        assert not changes, f"{what} ({'; '.join(changes)})"

    @staticmethod
    def _calls(groups: Sequence[list[Finding]], size: int) -> list[list[Finding]]:
        """Calls of whole subjects (``groups``: each subject's findings) of at most ``size``
        findings, each filled up with later, smaller subjects so that calls of exactly
        ``size`` occur; a subject with more than ``size`` items goes alone (as the host
        sends it)."""
        pool = list(groups)
        calls = []
        while pool:
            call: list[Finding] = []
            for group in list(pool):
                if len(call) + len(group) <= size:
                    call.extend(group)
                    pool.remove(group)
                if len(call) == size:
                    break
            calls.append(call or pool.pop(0))
        return calls

    #: polls of PENDING items before the suite calls them stuck
    MAX_POLLS = 20

    _keys = itertools.count()

    def _context(self, connector: Connector, action: str, subjects: Iterable[str],
                 key: str | None = None) -> CallContext:
        """A host's call context: each call its own idempotency keys (a new request), unless
        ``key`` names the call being repeated (the same request after a crash)."""
        key = key or f"contract-{next(self._keys)}"
        return CallContext(connector.system, action, time.monotonic() + 60,
                           {s: f"{key}:{s}:{connector.system}:{action}" for s in subjects})

    def _call(self, connector: Connector, action: str, findings: Sequence[Finding],
              *args: Any, key: str | None = None) -> list[ItemOutcome]:
        """One call of ``action`` (delete, restrict...), in a call context, as the host makes
        it; PENDING outcomes are returned as they are."""
        ctx = self._context(connector, action, {f.subject for f in findings}, key)
        with in_call(ctx):
            return list(getattr(connector, action)(findings, *args))

    def _poll(self, connector: Connector, outcomes: Sequence[ItemOutcome],
              action: str = "action") -> list[ItemOutcome]:
        """Poll the PENDING outcomes until they end, as the host does; fails naming the
        items still PENDING after :attr:`MAX_POLLS` polls."""
        outcomes = list(outcomes)
        for _ in range(self.MAX_POLLS):
            pending = [o for o in outcomes if o.status is ItemStatus.PENDING]
            if not pending:
                return outcomes
            assert all(o.handle for o in pending), (
                f"{action}: a PENDING outcome must carry the job's handle to poll it by")
            ctx = self._context(connector, "poll", {o.finding.subject for o in pending})
            with in_call(ctx):
                polled = {(o.finding.subject, o.finding.ref): o
                          for o in connector.poll(pending)}
            outcomes = [polled.get((o.finding.subject, o.finding.ref), o)
                        if o.status is ItemStatus.PENDING else o for o in outcomes]
        stuck = sum(o.status is ItemStatus.PENDING for o in outcomes)
        assert not stuck, (
            f"{action}: {stuck} item(s) still PENDING after {self.MAX_POLLS} polls: a job "
            "that never ends (does poll read the job's status?)")
        return outcomes

    def _act(self, connector: Connector, action: str, findings: Sequence[Finding],
             *args: Any) -> list[ItemOutcome]:
        """``action`` as the host runs it: PENDING items (a bulk job) polled until final."""
        return self._poll(connector, self._call(connector, action, findings, *args), action)

    def _delete(self, connector: Connector, findings: Sequence[Finding]) -> list[ItemOutcome]:
        """``delete`` as the host runs it (see :meth:`_act`)."""
        return self._act(connector, "delete", findings)

    @staticmethod
    def _check_outcomes(
        outcomes: Sequence[ItemOutcome], findings: Sequence[Finding],
        allowed: AbstractSet[ItemStatus], action: str,
    ) -> None:
        assert _pairs(o.finding for o in outcomes) == _pairs(findings), (
            f"{action} must yield exactly one outcome per finding given")
        bad = [o for o in outcomes if o.status not in allowed]
        assert not bad, f"{action}: expected {sorted(allowed)}, got {bad}"

    def _check_records(self, world: _World, given: Sequence[Finding],
                       records: Sequence[Any]) -> None:
        self._no_neighbours_data(world, records)  # named first: the likeliest cause
        assert _pairs(r.finding for r in records) == _pairs(given), (
            "export must return exactly one record per finding given, and no other")
        held: dict[str, set[str]] = {}
        for r in records:
            assert isinstance(r.data, Mapping) and r.data, "a record holds the item's data"
            leaves = set(_leaves(r.data))
            key = r.finding.subject
            assert leaves & world.markers[key], (
                f"a record of {key} ({r.finding.kind}) holds none of the subject's seeded data")
            for other, markers in world.markers.items():
                assert other == key or not leaves & markers, (
                    f"export of {key}'s {r.finding.kind} returned data of a neighbour, "
                    f"{other}")
            held.setdefault(key, set()).update(leaves)
        for key in {f.subject for f in given}:
            missing = len(world.markers[key] - held.get(key, set()))
            assert not missing, f"export of {key} lacks {missing} seeded value(s)"

    def _refuses(self, connector: Connector, capability: Capability,
                 findings: Sequence[Finding]) -> bool:
        """True (after checking the refusal) when the connector does not declare it."""
        if connector.supports(capability):
            return False
        with pytest.raises(CapabilityNotSupported):
            self._call(connector, capability.value, findings)
        return True

    def _corrected_type(self, connector: Connector) -> IdentifierType:
        types = self._types(connector)
        for t in (E, P, N):
            if t in types:
                return t
        pytest.skip("rectify tests need email, phone or name in seed_types")
        raise AssertionError  # unreachable: skip raises

    def _correction(self, connector: Connector, subject: Subject) -> Correction:
        itype = self._corrected_type(connector)
        return Correction.parse(CorrectionType(itype.value), _CORRECTED[subject.key][itype],
                                subject=subject.key, old=subject.of_type(itype))

    def _check_refused(self, connector: Connector, capability: Capability) -> None:
        """For a capability the connector does not declare: it refuses the action on real
        findings with ``CapabilityNotSupported`` and changes nothing (what a test of the
        action checks then). Only Bob is seeded: a refusal needs no neighbours."""
        bob = self._people(connector)["bob"]
        self._seed(connector, bob, False)
        found = self._find(connector, bob)
        assert found, "find found nothing of a seeded subject"
        args: tuple[Any, ...] = ()
        if capability is Capability.RECTIFY:
            args = ([self._correction(connector, bob)],)
        elif capability is Capability.OBJECT:
            args = (ObjectionScope.MARKETING,)
        action = "object_to" if capability is Capability.OBJECT else capability.value
        before = sorted(f.ref for f in found)
        with pytest.raises(CapabilityNotSupported):
            self._call(connector, action, found, *args)
        assert sorted(f.ref for f in self._find(connector, bob)) == before, (
            f"a refused {action} changed what is found")

    @staticmethod
    def _check_implemented(connector: Connector, capability: Capability) -> None:
        """For a declared capability: the connector overrides the action's method."""
        action = "object_to" if capability is Capability.OBJECT else capability.value
        assert getattr(type(connector), action) is not getattr(Connector, action), (
            f"the connector declares {capability.value} but does not implement {action}")

    def _one_of(self, world: _World, who: str) -> Subject:
        role = {"one_item": "dave", "several_items": "bob"}[who]
        if role not in world.people:
            pytest.skip("seed cannot create a one-item subject (single=True)")
        return world[role]

