"""Contract tests of delete, anonymise and restrict."""

from __future__ import annotations

import pytest

from ...connector import Connector
from ...models import (
    Capability,
    ItemStatus,
)
from .base import (
    BATCH_SIZES,
    ContractBase,
    _refs,
)


class ActionTests(ContractBase):
    """Contract tests of delete, anonymise and restrict."""

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
        self._unchanged(connector, world, world.others(bob), before,
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
        self._unchanged(connector, world, neighbours, before,
                        f"delete in batches of {batch} touched someone else's data")

    def test_second_delete_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.DELETE):
            return self._check_refused(connector, Capability.DELETE)
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        self._delete(connector, found)
        before = self._state(connector, world, world.people.values())
        again = self._delete(connector, found)
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second delete")
        self._unchanged(connector, world, world.people.values(), before,
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
        outcomes = self._act(connector, "anonymise", found)
        # An item without identifying values (an order below a customer) has nothing to
        # anonymise: ALREADY_DONE. Kept on purpose: RETAINED.
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.ALREADY_DONE,
                                               ItemStatus.RETAINED}, "anonymise")
        assert any(o.status is ItemStatus.DONE for o in outcomes), "anonymise changed nothing"
        self._unchanged(connector, world, world.others(subject), before,
                        "anonymise touched someone else's data")

    def test_second_anonymise_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.ANONYMISE):
            return self._check_refused(connector, Capability.ANONYMISE)
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        first = {o.finding.ref: o.status for o in self._act(connector, "anonymise", found)}
        before = self._state(connector, world, world.people.values())
        again = self._act(connector, "anonymise", found)
        self._check_outcomes(again, found, set(ItemStatus), "a second anonymise")
        for o in again:
            # A retained item is reported retained every time; everything else is done.
            kept = first[o.finding.ref] is ItemStatus.RETAINED
            want = ItemStatus.RETAINED if kept else ItemStatus.ALREADY_DONE
            assert o.status is want, f"a second anonymise: {o}"
        self._unchanged(connector, world, world.people.values(), before,
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
        outcomes = self._act(connector, "restrict", found)
        self._check_outcomes(outcomes, found, {ItemStatus.DONE}, "restrict")
        assert self.restricted(connector, found) == _refs(found), (
            "restrict did not mark every item of the subject")
        self._unchanged(connector, world, world.others(subject), before,
                        "restrict touched someone else's data")

    def test_second_restrict_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.RESTRICT):
            return self._check_refused(connector, Capability.RESTRICT)
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        self._act(connector, "restrict", found)
        before = self._state(connector, world, world.people.values())
        again = self._act(connector, "restrict", found)
        self._check_outcomes(again, found, {ItemStatus.ALREADY_DONE}, "a second restrict")
        self._unchanged(connector, world, world.people.values(), before,
                        "a second restrict changed something")

