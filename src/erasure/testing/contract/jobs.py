"""Contract tests of deferred jobs: actions a connector answers PENDING and the host polls.

They apply to a connector whose first declared action of delete, restrict and anonymise
answers PENDING (a bulk job); a connector that answers at once skips them, saying so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from ...connector import Connector
from ...models import Capability, Finding, ItemOutcome, ItemStatus
from .base import ContractBase, _refs, _World

_DEFERRABLE = (Capability.DELETE, Capability.RESTRICT, Capability.ANONYMISE)
_JOB_TESTS = ("test_a_deferred_job", "test_a_repeated_poll", "test_a_job_failing")
#: test classes whose connector answered at once (learnt by their first deferred-job test:
#: the others skip without seeding; a subclass, another connector, learns for itself)
_AT_ONCE: set[type] = set()


class DeferredJobTests(ContractBase):
    """A job is polled until it ends; one item failing fails only it; polls repeat safely."""

    def _submitted(self, connector: Connector, world: _World, findings: Sequence[Finding]
                   ) -> tuple[str, list[ItemOutcome]]:
        """The first declared deferrable action, called on ``findings``, and its outcomes;
        skips when it answers at once (no job to poll)."""
        action = next((c.value for c in _DEFERRABLE if connector.supports(c)), None)
        if action is None:
            pytest.skip("connector declares none of delete, restrict, anonymise: no job")
        outcomes = self._call(connector, action, findings)
        self._check_outcomes(outcomes, findings, set(ItemStatus), action)
        if not any(o.status is ItemStatus.PENDING for o in outcomes):
            _AT_ONCE.add(type(self))
            pytest.skip(f"{action} answers at once (no PENDING): no job to poll")
        return action, outcomes

    @pytest.fixture(autouse=True)
    def _known_to_answer_at_once(self, request: pytest.FixtureRequest) -> None:
        if request.node.name.startswith(_JOB_TESTS) and type(self) in _AT_ONCE:
            pytest.skip("the connector answers at once (no PENDING): no job to poll")

    def _took_effect(self, connector: Connector, world: _World, action: str,
                     refs: set[str]) -> set[str]:
        """Of ``refs`` (the subject's), those whose items show the action's effect."""
        subject = world["bob"]
        if action == "delete":
            return refs - _refs(world.own(self._find(connector, subject)))
        if action == "restrict":
            return self.restricted(connector, [f for f in self._find(connector, subject)
                                               if f.ref in refs])
        # anonymise: the item no longer matches the subject's identifiers
        return refs - _refs(world.own(self._find(connector, subject)))

    def test_a_deferred_job_ends_when_polled(self, connector: Connector) -> None:
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        before = self._state(connector, world, world.others(world["bob"]))
        action, first = self._submitted(connector, world, found)
        pending = {o.finding.ref for o in first if o.status is ItemStatus.PENDING}
        outcomes = self._poll(connector, first, action)
        self._check_outcomes(outcomes, found, {ItemStatus.DONE}, f"{action} (polled)")
        done = self._took_effect(connector, world, action, _refs(found))
        assert done == _refs(found), (
            f"{action}: {len(pending - done)} item(s) polled DONE show no effect in the system")
        self._unchanged(connector, world, world.others(world["bob"]), before,
                        f"a deferred {action} touched someone else's data")

    def test_a_repeated_poll_is_harmless(self, connector: Connector) -> None:
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        action, first = self._submitted(connector, world, found)
        self._poll(connector, first, action)
        everyone = list(world.people.values())
        before = self._state(connector, world, everyone)
        # The ledger keeps the PENDING outcomes until it writes the result: a crash in
        # between polls the same handles again.
        again = self._poll(connector, [o for o in first if o.status is ItemStatus.PENDING],
                           action)
        polled = [o.finding for o in first if o.status is ItemStatus.PENDING]
        self._check_outcomes(again, polled, {ItemStatus.DONE, ItemStatus.ALREADY_DONE},
                             f"a repeated poll of {action}")
        self._unchanged(connector, world, everyone, before, "a repeated poll changed something")

    def test_a_job_failing_for_one_item_fails_only_that_item(self, connector: Connector) -> None:
        world = self._populate(connector)
        found = self._found(connector, world, world["bob"])
        assert len(found) >= 2, "needs a subject with several items (seed without single)"
        # One of a kind the subject has several of, where there is one: those likely share
        # a job (a job per object or table), so failing the whole job shows.
        kinds = Counter(f.kind for f in found)
        held = next((f for f in found if kinds[f.kind] > 1), found[0])
        try:
            kept = set(self.refuse_item(connector, held) or ())
        except NotImplementedError:
            pytest.skip("implement refuse_item(connector, finding) to test a job failing per item")
        assert kept <= _refs(found) - {held.ref}, (
            "refuse_item returns refs of the subject's other items (those kept with it)")
        action, first = self._submitted(connector, world, found)
        outcomes = self._poll(connector, first, action)
        self._check_outcomes(outcomes, found, {ItemStatus.DONE, ItemStatus.FAILED}, action)
        failed = {o.finding.ref for o in outcomes if o.status is ItemStatus.FAILED}
        assert failed == {held.ref} | kept, (
            f"{action}: a job refused for one item must fail exactly that item"
            f"{f' and the {len(kept)} kept with it' if kept else ''}, failed {len(failed)}")
        unexplained = [o for o in outcomes if o.status is ItemStatus.FAILED and not o.error]
        assert not unexplained, "a FAILED outcome says why (without personal data)"
        others = _refs(found) - {held.ref} - kept
        assert self._took_effect(connector, world, action, _refs(found)) == others, (
            f"{action}: the items the job did not refuse must be done, the refused one not")
