"""Contract tests at scale: one subject with more items than two pages of the system's API."""

from __future__ import annotations

import os

from ...connector import Connector
from ...models import Capability, ItemStatus
from ...models import IdentifierType as T
from .base import ContractBase, _refs

#: overrides :attr:`ContractBase.population` (``make test-long`` runs larger ones)
POPULATION_ENV = "ERASURE_CONTRACT_POPULATION"

# the person with many items; no value is another's or contains one
_MANY = {T.EMAIL: "max.many@example.org", T.PHONE: "+4930555444", T.CUSTOMER_ID: "800999",
         T.USER_ID: "u-many", T.NAME: "Max Many", T.IP: "192.0.2.60"}


class ScaleTests(ContractBase):
    """A find, export or action that reads only its first page(s) must leave a trace."""

    def _population(self) -> int:
        return int(os.environ.get(POPULATION_ENV) or self.population)

    def test_a_large_population_is_found_exported_and_erased_whole(
        self, connector: Connector
    ) -> None:
        world = self._populate(connector)
        count = self._population()
        many = self._subject("req-many", _MANY, self._types(connector))
        seeded = self.seed_many(connector, many, count)
        assert seeded.items == count, "seed_many must create exactly `count` items"
        # Everyone else is compared before and after: nobody's data moves with the crowd.
        before = self._state(connector, world, world.people.values())
        found = self._find(connector, many)
        refs = _refs(found)
        assert len(refs) == len(found), "a large find returned an item twice (pages overlap?)"
        assert len(found) == count, (
            f"find returned {len(found)} of the subject's {count} items: does it read every "
            "page of the system's answer?")
        batch = [f for f in self._find(connector, world["bob"], many, world["carol"])
                 if f.subject == many.key]
        assert _refs(batch) == refs, (
            f"a batch with other subjects found {len(batch)} of {count} items of one of them")
        if connector.supports(Capability.EXPORT):
            records = list(connector.export(found))
            assert len(records) == count and {r.finding.ref for r in records} == refs, (
                f"export returned {len(records)} records for {count} findings: does it read "
                "every page?")
            self._no_neighbours_data(world, records)
        if connector.supports(Capability.RESTRICT):
            # One subject's findings go in one call, however many (the host never splits
            # a subject): a connector chunks them itself.
            outcomes = self._act(connector, "restrict", found)
            self._check_outcomes(outcomes, found, {ItemStatus.DONE}, "restrict")
            marked = self.restricted(connector, found)
            assert marked == refs, (
                f"restrict marked {len(marked)} of {count} items it answered DONE for")
        if self._refuses(connector, Capability.DELETE, found):
            return
        outcomes = self._delete(connector, found)
        self._check_outcomes(outcomes, found, {ItemStatus.DONE}, "delete")
        left = self._find(connector, many)
        assert not left, (
            f"delete of {count} items in one call left {len(left)} behind while answering "
            "DONE: does it send every chunk?")
        self._unchanged(connector, world, world.people.values(), before,
                        "a large delete touched someone else's data")
