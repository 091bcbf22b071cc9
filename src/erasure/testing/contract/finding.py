"""Contract tests of find and export."""

from __future__ import annotations

from collections import Counter

import pytest

from ...connector import Connector
from ...models import (
    Capability,
    Finding,
    Identifier,
    Subject,
)
from .base import (
    _PLAIN,
    ContractBase,
    _refs,
)


class FindTests(ContractBase):
    """Contract tests of find and export."""

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
        self._unchanged(connector, world, world.people.values(), before,
                        "hostile input changed the system")

    def test_empty_batch(self, connector: Connector) -> None:
        world = self._populate(connector)
        before = self._state(connector, world, world.people.values())
        assert list(connector.find([])) == []
        for cap in (Capability.EXPORT, Capability.DELETE, Capability.ANONYMISE,
                    Capability.RESTRICT):
            if connector.supports(cap):
                assert self._call(connector, cap.value, []) == [], cap.value
        self._unchanged(connector, world, world.people.values(), before,
                        "an empty batch changed something")

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

