"""Contract tests of rectify and object_to (optional capabilities)."""

from __future__ import annotations

import pytest

from ...connector import Connector
from ...errors import CapabilityNotSupported
from ...models import (
    Capability,
    Correction,
    Identifier,
    ItemStatus,
    ObjectionScope,
    Subject,
)
from .base import (
    ContractBase,
    _leaves,
    _refs,
    _World,
)


class RightsTests(ContractBase):
    """Contract tests of rectify and object_to (optional capabilities)."""

    # rectify ------------------------------------------------------------------------------

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
            return self._check_implemented(connector, Capability.RECTIFY)
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        with pytest.raises(CapabilityNotSupported):
            self._act(connector, "rectify", found, [self._correction(connector, world["bob"])])

    @pytest.mark.parametrize("who", ["one_item", "several_items"])
    def test_rectify_corrects_only_the_subject(self, connector: Connector, who: str) -> None:
        if not connector.supports(Capability.RECTIFY):
            return self._check_refused(connector, Capability.RECTIFY)
        world = self._populate(connector)
        subject = self._one_of(world, who)
        correction = self._correction(connector, subject)
        itype = self._corrected_type(connector)
        held_old = self._holding(connector, world, subject, correction)
        assert held_old, f"no item of {subject.key} holds its {itype.value}"
        found = self._found(connector, world, subject)
        before = self._state(connector, world, world.others(subject))
        outcomes = self._act(connector, "rectify", found, [correction])
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                             "rectify")
        # Every item it changed is DONE; an item with no field of its own (a task on the
        # contact, an order) may say DONE or ALREADY_DONE.
        assert held_old <= {o.finding.ref for o in outcomes if o.status is ItemStatus.DONE}, (
            "rectify must answer DONE for every item it changed")
        self._check_rectified(connector, world, subject, correction, held_old)
        self._unchanged(connector, world, world.others(subject), before,
                        "rectify touched someone else's data")

    def test_rectify_batch_gives_each_subject_its_own(self, connector: Connector) -> None:
        if not connector.supports(Capability.RECTIFY):
            return self._check_refused(connector, Capability.RECTIFY)
        world = self._populate(connector)
        bob, carol = world["bob"], world["carol"]
        fixes = {s.key: self._correction(connector, s) for s in (bob, carol)}
        held = {s.key: self._holding(connector, world, s, fixes[s.key]) for s in (bob, carol)}
        found = self._found(connector, world, bob, carol)
        before = self._state(connector, world, world.others(bob, carol))
        outcomes = self._act(connector, "rectify", found, list(fixes.values()))
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                             "rectify")
        for s in (bob, carol):
            self._check_rectified(connector, world, s, fixes[s.key], held[s.key])
        self._unchanged(connector, world, world.others(bob, carol), before,
                        "rectify touched someone else's data")

    def test_second_rectify_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.RECTIFY):
            return self._check_refused(connector, Capability.RECTIFY)
        world = self._populate(connector)
        bob = world["bob"]
        correction = self._correction(connector, bob)
        found = self._found(connector, world, bob)
        self._act(connector, "rectify", found, [correction])
        before = self._state(connector, world, world.people.values())
        again = self._act(connector, "rectify", found, [correction])
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second rectify")
        self._unchanged(connector, world, world.people.values(), before,
                        "a second rectify changed something")

    # object_to ----------------------------------------------------------------------------

    def test_object_to_refused_unless_declared(self, connector: Connector) -> None:
        if connector.supports(Capability.OBJECT):
            return self._check_implemented(connector, Capability.OBJECT)
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        with pytest.raises(CapabilityNotSupported):
            self._act(connector, "object_to", found, ObjectionScope.MARKETING)

    @pytest.mark.parametrize("who", ["one_item", "several_items"])
    def test_object_to_marketing_opts_out_only_the_subject(self, connector: Connector,
                                                           who: str) -> None:
        if not connector.supports(Capability.OBJECT):
            return self._check_refused(connector, Capability.OBJECT)
        world = self._populate(connector)
        subject = self._one_of(world, who)
        found = self._found(connector, world, subject)
        others = world.others(subject)
        before = self._state(connector, world, others)
        theirs = world.own(self._find(connector, *others))
        scope = ObjectionScope.MARKETING
        assert self.objected(connector, found, scope) == set(), "opted out before object_to"
        outcomes = self._act(connector, "object_to", found, scope)
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
        self._unchanged(connector, world, others, before,
                        "object_to touched someone else's data")

    def test_second_object_to_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.OBJECT):
            return self._check_refused(connector, Capability.OBJECT)
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        self._act(connector, "object_to", found, ObjectionScope.MARKETING)
        before = self._state(connector, world, world.people.values())
        again = self._act(connector, "object_to", found, ObjectionScope.MARKETING)
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second object_to")
        self._unchanged(connector, world, world.people.values(), before,
                        "a second object_to changed something")

    def test_object_to_a_scope_it_cannot_honour_says_so(self, connector: Connector) -> None:
        if not connector.supports(Capability.OBJECT):
            return self._check_refused(connector, Capability.OBJECT)
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        for scope in ObjectionScope:
            before = self._state(connector, world, world.people.values())
            try:
                outcomes = self._act(connector, "object_to", found, scope)
            except CapabilityNotSupported as exc:
                assert scope.value in str(exc), "the refusal must name the scope"
                self._unchanged(connector, world, world.people.values(), before,
                                f"a refused objection to {scope.value} changed something")
                continue
            self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                                 f"object_to {scope.value}")
            done = {o.finding.ref for o in outcomes if o.status is ItemStatus.DONE}
            assert done and self.objected(connector, found, scope) == done

