"""The connector contract suite: subclass :class:`ConnectorContract` in your connector's tests.

Every test seeds a small population into the real system behind your ``connector`` fixture
and checks what the connector finds, exports and changes against what was seeded. You
provide three things:

- ``connector``: a pytest fixture returning a ready :class:`~erasure.connector.Connector`
  for a fresh, empty system;
- ``seed(connector, subject, *, single=False) -> Seeded``: create the data of ``subject``
  and say what you created (see :class:`Seeded`);
- ``restricted(connector, findings) -> set[str]``: the refs among ``findings`` whose items
  are marked restricted (only if the connector declares ``RESTRICT``);
- ``objected(connector, findings, scope) -> set[str]``: the refs among ``findings`` whose
  items are opted out of ``scope``'s processing (only if the connector declares ``OBJECT``).

and, as a class attribute, ``seed_types``: the identifier types ``seed`` can store (default
``{EMAIL}``). The suite uses the types in both ``seed_types`` and the connector's
``identifier_types`` (``None`` there means every type).

A complete example, for a notes service with contacts (email, phone) and notes on them::

    import pytest
    from erasure import IdentifierType
    from erasure.testing import ConnectorContract, Seeded

    class TestNotes(ConnectorContract):
        seed_types = frozenset({IdentifierType.EMAIL, IdentifierType.PHONE})

        @pytest.fixture
        def connector(self, notes_server):
            # Fixtures and tests of a class share one instance: seed() can use self.server.
            self.server = notes_server
            return NotesConnector("notes", NotesSettings(base_url=notes_server.url, token="t"))

        def seed(self, connector, subject, *, single=False):
            email = subject.of_type(IdentifierType.EMAIL)[0]
            phone = subject.of_type(IdentifierType.PHONE)[0]
            contact = self.server.add_contact(email=email, phone=phone)
            if single:  # exactly one item
                return Seeded(items=1, markers={email, phone})
            texts = [f"note {n} of {subject.key}" for n in (1, 2)]
            for text in texts:
                self.server.add_note(contact=contact, text=text)
            # The contact and its two notes; export returns the email and phone (contact)
            # and the texts (notes) as field values.
            return Seeded(items=3, markers={email, phone, *texts})

        def restricted(self, connector, findings):
            return {f.ref for f in findings if self.server.is_frozen(f.ref)}

The population (``subject.key`` in brackets; each person has one value of every seeded type,
and ``seed`` must store each of them on at least one item):

- Bob (``req-bob``), Carol (``req-carol``) and Crowd people (``req-crowd-NN``, only in the
  batch tests): subjects. Dave (``req-dave``) and every other Crowd person are seeded with
  ``single=True`` (exactly one item: a bug that only shows when a subject has one item must
  show, and one-item subjects fill delete calls up to exactly the batch size).
- Jimbob (``req-jimbob``): a lookalike whose every value contains Bob's
  (``jimbob@example.org`` vs ``bob@example.org``, ``+49301234567`` vs ``+4930123456``...).
- Alice (``req-alice``, with PHONE): has Bob's phone. Finding Bob finds Alice's items too,
  matched through the phone alone; the suite acts only on findings matched through an
  identifier no other person has (as the host acts only on strong matches) and checks that
  Alice's items survive whatever is done to Bob's.
- Xavier (``req-xavier``, with two of CUSTOMER_ID, USER_ID, NAME): his value of the second
  type is Bob's value of the first (his user_id is Bob's customer_id ``800123``). Finding
  Bob's customer_id must not find Xavier.

What is checked, against the real system:

- find: each person's items exactly (``Seeded.items``), each identifier type alone, never a
  lookalike, never the same value held as another type, every holder of a shared phone
  (matched through the phone alone), a batch finds what single calls find, hostile
  identifiers match nothing and change nothing, an empty batch does nothing;
- export: one record per finding given and no other, each with its subject's markers and
  nobody else's, alone and in one batch of everyone;
- delete: a subject's findings in one call, and many subjects' findings in calls of 1, 2,
  3 and 50 findings (items answered PENDING are polled until they finish, as the host
  would) (:data:`BATCH_SIZES`; whole subjects per call, refs sorted, as the host
  sends them), leave nothing to find again and nobody else changed (their findings, records
  and restriction flags); a second delete yields ALREADY_DONE and changes nothing;
- anonymise and restrict, for a one-item and a several-item subject with the neighbours
  present: only the subject's items change; a second run yields ALREADY_DONE and changes
  nothing;
- rectify (optional, ``RECTIFY``): a subject's email (else phone, else name) corrected is
  found by the new value on exactly the items that held the old one, by the old value on
  none, exported with the new value; one call for two subjects gives each its own
  correction; nobody else changes; a repeat yields ALREADY_DONE;
- object_to (optional, ``OBJECT``): the subject's items opted out of marketing (those
  answered DONE; an item with no opt-out of its own answers ALREADY_DONE), nothing
  deleted, nobody else opted out or changed; a repeat yields ALREADY_DONE; a scope the
  system cannot honour is refused with ``CapabilityNotSupported`` and changes nothing;
- no identifier in log lines or reprs, no secret in the settings' or connector's repr.

Tests of actions the connector does not declare in ``capabilities`` check that it refuses
them with :class:`~erasure.errors.CapabilityNotSupported`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from ..connector import Connector
from ..errors import CapabilityNotSupported
from ..models import (
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

__all__ = ["BATCH_SIZES", "NEIGHBOUR_EMAIL", "SUBJECT_EMAIL", "ConnectorContract", "Seeded"]

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


class ConnectorContract:
    """Behaviour every connector must have.

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
                entry["records"] = sorted(
                    json.dumps([r.finding.ref, dict(r.data)], sort_keys=True, default=str)
                    for r in connector.export(own))
            if connector.supports(Capability.RESTRICT):
                entry["restricted"] = sorted(self.restricted(connector, own))
            state[s.key] = entry
        return state

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

    def _delete(self, connector: Connector, findings: Sequence[Finding]) -> list[ItemOutcome]:
        """``delete`` as the host runs it: PENDING items (a bulk job) polled until final."""
        outcomes = list(connector.delete(findings))
        for _ in range(self.MAX_POLLS):
            pending = [o for o in outcomes if o.status is ItemStatus.PENDING]
            if not pending:
                break
            polled = {(o.finding.subject, o.finding.ref): o for o in connector.poll(pending)}
            outcomes = [polled.get((o.finding.subject, o.finding.ref), o)
                        if o.status is ItemStatus.PENDING else o for o in outcomes]
        return outcomes

    @staticmethod
    def _check_outcomes(
        outcomes: Sequence[ItemOutcome], findings: Sequence[Finding],
        allowed: AbstractSet[ItemStatus], action: str,
    ) -> None:
        assert _pairs(o.finding for o in outcomes) == _pairs(findings), (
            f"{action} must yield exactly one outcome per finding given")
        bad = [o for o in outcomes if o.status not in allowed]
        assert not bad, f"{action}: expected {sorted(allowed)}, got {bad}"

    @staticmethod
    def _check_records(world: _World, given: Sequence[Finding], records: Sequence[Any]) -> None:
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
                    f"a record of {key} ({r.finding.kind}) holds data of {other}")
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
            list(getattr(connector, capability.value)(findings))
        return True

    def _one_of(self, world: _World, who: str) -> Subject:
        role = {"one_item": "dave", "several_items": "bob"}[who]
        if role not in world.people:
            pytest.skip("seed cannot create a one-item subject (single=True)")
        return world[role]

    # find ---------------------------------------------------------------------------------

    def test_find_returns_exactly_the_seeded_items(self, connector: Connector) -> None:
        world = self._populate(connector)
        for s in world.people.values():
            found = self._find(connector, s)
            own = world.own(found)
            assert len(own) == len(_refs(own)), f"{s.key}: an item was found twice"
            assert len(own) == world.seeded[s.key].items, (
                f"{s.key}: found {len(own)} items, seeded {world.seeded[s.key].items}")
            for f in found:
                assert f.system == connector.system, "findings must name their system"
                assert f.subject == s.key, "findings must name the subject they belong to"
                assert f.matched and set(f.matched) <= set(s.identifiers), (
                    "matched must be the subject's identifiers that matched the item")
                assert f.ref and f.kind

    def test_find_by_each_identifier_type(self, connector: Connector) -> None:
        world = self._populate(connector)
        bob = world["bob"]
        mine = _refs(world.own(self._find(connector, bob)))
        holders = {i: mine | set().union(*(
            _refs(world.own(self._find(connector, s))) for s in world.others(bob)
            if i in s.identifiers)) for i in bob.identifiers}
        for ident in bob.identifiers:
            found = self._find(connector, Subject(bob.key, (ident,)))
            assert found, f"find by {ident.type.value} alone found nothing (seed must store it)"
            assert _refs(found) <= holders[ident], (
                f"find by {ident.type.value} found an item that does not hold the value")
            assert all(f.matched == (ident,) for f in found), (
                "matched must be the identifiers that matched, here the only one given")

    def test_find_absent_subject_returns_nothing(self, connector: Connector) -> None:
        # Everyone but Bob and Alice (who has Bob's phone): lookalikes and Xavier, whose
        # user_id is Bob's customer_id, must not pass for Bob.
        world = self._populate(connector, without=("bob", "alice"))
        assert "jimbob" in world.people
        assert self._find(connector, self._people(connector)["bob"]) == []

    def test_find_never_matches_a_lookalike(self, connector: Connector) -> None:
        world = self._populate(connector)
        bob, jimbob = world["bob"], world["jimbob"]
        mine = _refs(self._find(connector, bob))
        theirs = _refs(self._find(connector, jimbob))
        assert mine and theirs
        assert not mine & theirs, "one item matched both the subject and a lookalike"

    def test_find_same_value_of_another_type_is_not_a_match(self, connector: Connector) -> None:
        world = self._populate(connector)
        if "xavier" not in world.people:
            pytest.skip("needs two of customer_id, user_id, name in seed_types")
        bob, xavier = world["bob"], world["xavier"]
        plain = [t for t in _PLAIN if bob.of_type(t)]
        value = bob.of_type(plain[0])[0]
        assert xavier.of_type(plain[1]) == (value,)

        def items_of(s: Subject) -> set[str]:
            # Found through the person's other identifiers: a type-blind find would also
            # give Bob's full find Xavier's items, and the other way round.
            rest = tuple(i for i in s.identifiers if i.value != value)
            return _refs(world.own(self._find(connector, Subject(s.key, rest))))

        bobs, xaviers = items_of(bob), items_of(xavier)
        assert bobs and xaviers and not bobs & xaviers
        as_first = _refs(self._find(connector, Subject(bob.key, (Identifier(plain[0], value),))))
        as_second = _refs(self._find(connector,
                                     Subject(xavier.key, (Identifier(plain[1], value),))))
        assert as_first, f"find by {plain[0].value} alone found nothing"
        assert as_second, f"find by {plain[1].value} alone found nothing"
        assert not as_first & xaviers, (
            f"find by {plain[0].value} matched an item holding the value as {plain[1].value}")
        assert not as_second & bobs, (
            f"find by {plain[1].value} matched an item holding the value as {plain[0].value}")

    def test_find_shared_identifier_finds_each_holder(self, connector: Connector) -> None:
        world = self._populate(connector)
        if "alice" not in world.people:
            pytest.skip("needs phone in seed_types")
        bob, alice = world["bob"], world["alice"]
        alices = _refs(world.own(self._find(connector, alice)))
        found = self._find(connector, bob)
        own = world.own(found)
        via_phone = [f for f in found if f not in own]
        # The host needs these for review, even though it will not act on them.
        assert via_phone, "an item holding the subject's phone was not found"
        assert _refs(via_phone) <= alices
        assert all(set(f.matched) <= world.shared for f in via_phone), (
            "an item of someone else was matched through more than the shared phone")
        assert not _refs(own) & alices, "another person's item was attributed to the subject"

    def test_find_batch_attributes_each_subject(self, connector: Connector) -> None:
        world = self._populate(connector)
        people = list(world.people.values())

        def key(f: Finding) -> tuple[str, str, frozenset[Identifier]]:
            return (f.subject, f.ref, frozenset(f.matched))

        alone = Counter(key(f) for s in people for f in self._find(connector, s))
        batch = Counter(key(f) for f in self._find(connector, *people))
        assert batch == alone, "a batch must find exactly what single calls find"

    def test_find_hostile_identifiers_match_nothing(self, connector: Connector) -> None:
        world = self._populate(connector)
        before = self._state(connector, world, world.people.values())
        assert self._find(connector, self.hostile()) == []
        assert self._state(connector, world, world.people.values()) == before, (
            "hostile input changed the system")

    def test_empty_batch(self, connector: Connector) -> None:
        world = self._populate(connector)
        before = self._state(connector, world, world.people.values())
        assert list(connector.find([])) == []
        for cap in (Capability.EXPORT, Capability.DELETE, Capability.ANONYMISE,
                    Capability.RESTRICT):
            if connector.supports(cap):
                assert list(getattr(connector, cap.value)([])) == [], cap.value
        assert self._state(connector, world, world.people.values()) == before

    # export -------------------------------------------------------------------------------

    def test_export_returns_exactly_each_subjects_data(self, connector: Connector) -> None:
        world = self._populate(connector)
        people = list(world.people.values())
        everyone = self._found(connector, world, *people)
        if self._refuses(connector, Capability.EXPORT, everyone):
            return
        for s in people:
            own = self._found(connector, world, s)
            self._check_records(world, own, list(connector.export(own)))
        self._check_records(world, everyone, list(connector.export(everyone)))

    # delete -------------------------------------------------------------------------------

    def test_delete_erases_and_find_again_returns_nothing(self, connector: Connector) -> None:
        world = self._populate(connector)
        bob = world["bob"]
        found = self._found(connector, world, bob)
        before = self._state(connector, world, world.others(bob))
        if self._refuses(connector, Capability.DELETE, found):
            return
        outcomes = self._delete(connector, found)
        self._check_outcomes(outcomes, found, {ItemStatus.DONE}, "delete")
        assert world.own(self._find(connector, bob)) == [], "data left behind after delete"
        assert self._state(connector, world, world.others(bob)) == before, (
            "delete touched someone else's data")

    @pytest.mark.parametrize("batch", BATCH_SIZES)
    def test_delete_in_batches(self, connector: Connector, batch: int) -> None:
        world = self._populate(connector, crowd_items=2 * batch + 1)
        targets = world.targets
        found = self._found(connector, world, *targets)
        assert len(found) == sum(world.seeded[s.key].items for s in targets)
        neighbours = world.others(*targets)
        before = self._state(connector, world, neighbours)
        groups = [g for s in targets if (g := [f for f in found if f.subject == s.key])]
        calls = self._calls(groups, batch)
        if "dave" in world.people:
            assert batch in {len(c) for c in calls}, "no call of exactly the batch size"
        if self._refuses(connector, Capability.DELETE, calls[0]):
            return
        for call in calls:
            self._check_outcomes(self._delete(connector, call), call, {ItemStatus.DONE},
                                 "delete")
        left = self._find(connector, *targets)
        assert not _refs(left) & _refs(found), (
            f"delete in batches of {batch} left items behind")
        assert world.own(left) == [], f"delete in batches of {batch} left items behind"
        assert self._state(connector, world, neighbours) == before, (
            f"delete in batches of {batch} touched someone else's data")

    def test_second_delete_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.DELETE):
            pytest.skip("connector does not declare DELETE (refusal tested elsewhere)")
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        self._delete(connector, found)
        before = self._state(connector, world, world.people.values())
        again = self._delete(connector, found)
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second delete")
        assert self._state(connector, world, world.people.values()) == before, (
            "a second delete changed something")

    # anonymise ----------------------------------------------------------------------------

    @pytest.mark.parametrize("who", ["one_item", "several_items"])
    def test_anonymise_touches_only_the_subject(self, connector: Connector, who: str) -> None:
        world = self._populate(connector)
        subject = self._one_of(world, who)
        found = self._found(connector, world, subject)
        before = self._state(connector, world, world.others(subject))
        if self._refuses(connector, Capability.ANONYMISE, found):
            return
        outcomes = list(connector.anonymise(found))
        # An item without identifying values (an order below a customer) has nothing to
        # anonymise: ALREADY_DONE. Kept on purpose: RETAINED.
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE,
                                               ItemStatus.RETAINED}, "anonymise")
        assert any(o.status is ItemStatus.DONE for o in outcomes), "anonymise changed nothing"
        assert self._state(connector, world, world.others(subject)) == before, (
            "anonymise touched someone else's data")

    def test_second_anonymise_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.ANONYMISE):
            pytest.skip("connector does not declare ANONYMISE (refusal tested elsewhere)")
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        first = {o.finding.ref: o.status for o in connector.anonymise(found)}
        before = self._state(connector, world, world.people.values())
        again = list(connector.anonymise(found))
        self._check_outcomes(again, found, set(ItemStatus), "a second anonymise")
        for o in again:
            # A retained item is reported retained every time; everything else is done.
            kept = first[o.finding.ref] is ItemStatus.RETAINED
            want = ItemStatus.RETAINED if kept else ItemStatus.ALREADY_DONE
            assert o.status is want, f"a second anonymise: {o}"
        assert self._state(connector, world, world.people.values()) == before, (
            "a second anonymise changed something")

    # restrict -----------------------------------------------------------------------------

    @pytest.mark.parametrize("who", ["one_item", "several_items"])
    def test_restrict_touches_only_the_subject(self, connector: Connector, who: str) -> None:
        world = self._populate(connector)
        subject = self._one_of(world, who)
        found = self._found(connector, world, subject)
        if self._refuses(connector, Capability.RESTRICT, found):
            return
        before = self._state(connector, world, world.others(subject))
        assert self.restricted(connector, found) == set(), "items restricted before restrict"
        outcomes = list(connector.restrict(found))
        self._check_outcomes(outcomes, found, {ItemStatus.DONE}, "restrict")
        assert self.restricted(connector, found) == _refs(found), (
            "restrict did not mark every item of the subject")
        assert self._state(connector, world, world.others(subject)) == before, (
            "restrict touched someone else's data")

    def test_second_restrict_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.RESTRICT):
            pytest.skip("connector does not declare RESTRICT (refusal tested elsewhere)")
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        list(connector.restrict(found))
        before = self._state(connector, world, world.people.values())
        again = list(connector.restrict(found))
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second restrict")
        assert self._state(connector, world, world.people.values()) == before, (
            "a second restrict changed something")

    # rectify ------------------------------------------------------------------------------

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

    def _holding(self, connector: Connector, world: _World, subject: Subject,
                 correction: Correction) -> set[str]:
        """Refs of the subject's own items that hold an old value of the correction: read
        back with ``export`` where the connector exports (an item found through a link
        holds no value of its own), else matched through it."""
        own = world.own(self._find(connector, subject))
        if connector.supports(Capability.EXPORT):
            return {r.finding.ref for r in connector.export(own)
                    if any(correction.matches(v) is False for v in _leaves(r.data))}
        itype = self._corrected_type(connector)
        return {f.ref for f in own
                if any(Identifier(itype, v) in f.matched for v in correction.old)}

    def _check_rectified(self, connector: Connector, world: _World, subject: Subject,
                         correction: Correction, held_old: set[str]) -> None:
        itype = self._corrected_type(connector)
        (old,) = correction.old
        by_old = self._find(connector, Subject(subject.key, (Identifier(itype, old),)))
        assert not _refs(by_old) & held_old, (
            f"rectify left the old {itype.value} on an item of {subject.key}")
        by_new = self._find(connector, Subject(subject.key,
                                               (Identifier(itype, correction.new),)))
        assert held_old <= _refs(by_new), (
            f"an item that held the old {itype.value} is not found by the new one")
        if connector.supports(Capability.EXPORT):
            mine = [f for f in by_new if f.ref in held_old]
            for r in connector.export(mine):
                leaves = list(_leaves(r.data))
                assert any(correction.matches(v) is True for v in leaves), (
                    "export of a rectified item does not hold the new value")
                assert not any(correction.matches(v) is False for v in leaves), (
                    "export of a rectified item still holds the old value")

    def test_rectify_refused_unless_declared(self, connector: Connector) -> None:
        if connector.supports(Capability.RECTIFY):
            pytest.skip("connector declares RECTIFY (tested below)")
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        with pytest.raises(CapabilityNotSupported):
            list(connector.rectify(found, [self._correction(connector, world["bob"])]))

    @pytest.mark.parametrize("who", ["one_item", "several_items"])
    def test_rectify_corrects_only_the_subject(self, connector: Connector, who: str) -> None:
        if not connector.supports(Capability.RECTIFY):
            pytest.skip("connector does not declare RECTIFY (refusal tested elsewhere)")
        world = self._populate(connector)
        subject = self._one_of(world, who)
        correction = self._correction(connector, subject)
        itype = self._corrected_type(connector)
        held_old = self._holding(connector, world, subject, correction)
        assert held_old, f"no item of {subject.key} holds its {itype.value}"
        found = self._found(connector, world, subject)
        before = self._state(connector, world, world.others(subject))
        outcomes = list(connector.rectify(found, [correction]))
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                             "rectify")
        # Every item it changed is DONE; an item with no field of its own (a task on the
        # contact, an order) may say DONE or ALREADY_DONE.
        assert held_old <= {o.finding.ref for o in outcomes if o.status is ItemStatus.DONE}, (
            "rectify must answer DONE for every item it changed")
        self._check_rectified(connector, world, subject, correction, held_old)
        assert self._state(connector, world, world.others(subject)) == before, (
            "rectify touched someone else's data")

    def test_rectify_batch_gives_each_subject_its_own(self, connector: Connector) -> None:
        if not connector.supports(Capability.RECTIFY):
            pytest.skip("connector does not declare RECTIFY (refusal tested elsewhere)")
        world = self._populate(connector)
        bob, carol = world["bob"], world["carol"]
        fixes = {s.key: self._correction(connector, s) for s in (bob, carol)}
        held = {s.key: self._holding(connector, world, s, fixes[s.key]) for s in (bob, carol)}
        found = self._found(connector, world, bob, carol)
        before = self._state(connector, world, world.others(bob, carol))
        outcomes = list(connector.rectify(found, list(fixes.values())))
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                             "rectify")
        for s in (bob, carol):
            self._check_rectified(connector, world, s, fixes[s.key], held[s.key])
        assert self._state(connector, world, world.others(bob, carol)) == before, (
            "rectify touched someone else's data")

    def test_second_rectify_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.RECTIFY):
            pytest.skip("connector does not declare RECTIFY (refusal tested elsewhere)")
        world = self._populate(connector)
        bob = world["bob"]
        correction = self._correction(connector, bob)
        found = self._found(connector, world, bob)
        list(connector.rectify(found, [correction]))
        before = self._state(connector, world, world.people.values())
        again = list(connector.rectify(found, [correction]))
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second rectify")
        assert self._state(connector, world, world.people.values()) == before, (
            "a second rectify changed something")

    # object_to ----------------------------------------------------------------------------

    def test_object_to_refused_unless_declared(self, connector: Connector) -> None:
        if connector.supports(Capability.OBJECT):
            pytest.skip("connector declares OBJECT (tested below)")
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        with pytest.raises(CapabilityNotSupported):
            list(connector.object_to(found, ObjectionScope.MARKETING))

    @pytest.mark.parametrize("who", ["one_item", "several_items"])
    def test_object_to_marketing_opts_out_only_the_subject(self, connector: Connector,
                                                           who: str) -> None:
        if not connector.supports(Capability.OBJECT):
            pytest.skip("connector does not declare OBJECT (refusal tested elsewhere)")
        world = self._populate(connector)
        subject = self._one_of(world, who)
        found = self._found(connector, world, subject)
        others = world.others(subject)
        before = self._state(connector, world, others)
        theirs = world.own(self._find(connector, *others))
        scope = ObjectionScope.MARKETING
        assert self.objected(connector, found, scope) == set(), "opted out before object_to"
        outcomes = list(connector.object_to(found, scope))
        # An item with nothing of its own to set (an order, when the opt-out is on the
        # customer) is ALREADY_DONE; at least one item is opted out.
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                             "object_to")
        done = {o.finding.ref for o in outcomes if o.status is ItemStatus.DONE}
        assert done, "object_to opted out nothing"
        assert self.objected(connector, found, scope) == done, (
            "object_to must opt out exactly the items it answers DONE")
        assert _refs(world.own(self._find(connector, subject))) == _refs(found), (
            "an objection deleted or unlinked an item")
        assert self.objected(connector, theirs, scope) == set(), (
            "object_to opted out someone else")
        assert self._state(connector, world, others) == before, (
            "object_to touched someone else's data")

    def test_second_object_to_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.OBJECT):
            pytest.skip("connector does not declare OBJECT (refusal tested elsewhere)")
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        list(connector.object_to(found, ObjectionScope.MARKETING))
        before = self._state(connector, world, world.people.values())
        again = list(connector.object_to(found, ObjectionScope.MARKETING))
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second object_to")
        assert self._state(connector, world, world.people.values()) == before, (
            "a second object_to changed something")

    def test_object_to_a_scope_it_cannot_honour_says_so(self, connector: Connector) -> None:
        if not connector.supports(Capability.OBJECT):
            pytest.skip("connector does not declare OBJECT (refusal tested elsewhere)")
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        for scope in ObjectionScope:
            before = self._state(connector, world, world.people.values())
            try:
                outcomes = list(connector.object_to(found, scope))
            except CapabilityNotSupported as exc:
                assert scope.value in str(exc), "the refusal must name the scope"
                assert self._state(connector, world, world.people.values()) == before, (
                    f"a refused objection to {scope.value} changed something")
                continue
            self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                                 f"object_to {scope.value}")
            done = {o.finding.ref for o in outcomes if o.status is ItemStatus.DONE}
            assert done and self.objected(connector, found, scope) == done

    # hygiene ------------------------------------------------------------------------------

    def test_repr_hides_secrets(self, connector: Connector) -> None:
        settings = connector.settings
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            secret = getattr(value, "get_secret_value", None)
            if secret is not None and secret():
                assert secret() not in repr(connector)
                assert secret() not in repr(settings)
                assert secret() not in str(settings)

    def test_no_identifiers_in_logs(
        self, connector: Connector, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        world = self._populate(connector)
        caplog.clear()
        people = list(world.people.values())
        found = self._find(connector, *people, self.hostile())
        shown: list[object] = list(found)
        if connector.supports(Capability.EXPORT):
            shown += list(connector.export(found))
        acts = [(Capability.DELETE, "bob"), (Capability.RESTRICT, "carol"),
                (Capability.ANONYMISE, "jimbob")]
        for cap, role in acts:
            if connector.supports(cap):
                mine = self._found(connector, world, world[role])
                shown += (self._delete(connector, mine) if cap is Capability.DELETE
                          else list(getattr(connector, cap.value)(mine)))
        news: set[str] = set()
        if (connector.supports(Capability.RECTIFY) and "dave" in world.people
                and {E, P, N} & set(self._types(connector))):
            fix = self._correction(connector, world["dave"])
            news.add(fix.new)
            shown += [fix, *connector.rectify(self._found(connector, world, world["dave"]),
                                              [fix])]
        if connector.supports(Capability.OBJECT):
            shown += list(connector.object_to(self._found(connector, world, world["carol"]),
                                              ObjectionScope.MARKETING))
        text = caplog.text + " ".join(repr(x) for x in shown)
        for value in {i.value for s in people for i in s.identifiers} | news:
            assert value not in text, "an identifier appeared in a log line or repr"
