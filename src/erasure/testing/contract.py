"""The connector contract suite: subclass :class:`ConnectorContract` in your connector's tests.

::

    from erasure.testing import ConnectorContract

    class TestMyConnector(ConnectorContract):
        @pytest.fixture
        def connector(self, ...):            # a ready Connector for a fresh, empty system
            return MyConnector("crm", MyConnector.Settings(...))

        def seed(self, connector, subject):  # create data of `subject` in the system
            ...

Every test runs against the real system your ``connector`` fixture points to. Tests of
actions the connector does not declare in ``capabilities`` check that it refuses them.
Override :meth:`subject` / :meth:`neighbour` if your system cannot store emails.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest

from ..connector import Connector
from ..errors import CapabilityNotSupported
from ..models import Capability, Finding, Identifier, IdentifierType, ItemStatus, Subject

__all__ = ["ConnectorContract"]

# The neighbour's address contains the subject's as a substring: a search that matches
# substrings (IMAP SEARCH, SQL LIKE) finds both, and erasing it would erase someone else.
SUBJECT_EMAIL = "bob@example.org"
NEIGHBOUR_EMAIL = "jimbob@example.org"


class ConnectorContract:
    """Behaviour every connector must have. Subclass and provide ``connector`` and ``seed``."""

    @pytest.fixture
    def connector(self) -> Connector:
        raise NotImplementedError("provide a `connector` fixture returning a Connector")

    def seed(self, connector: Connector, subject: Subject) -> None:
        """Create data belonging to ``subject`` in the system behind ``connector``."""
        raise NotImplementedError("implement seed(connector, subject)")

    def subject(self) -> Subject:
        """The subject the tests erase."""
        return Subject("req-subject", (Identifier(IdentifierType.EMAIL, SUBJECT_EMAIL),))

    def neighbour(self) -> Subject:
        """Someone else whose identifiers resemble the subject's; must never be touched."""
        return Subject("req-neighbour", (Identifier(IdentifierType.EMAIL, NEIGHBOUR_EMAIL),))

    def hostile(self) -> Subject:
        """A subject whose identifiers carry query metacharacters; must match nothing."""
        return Subject(
            "req-hostile",
            (
                Identifier(IdentifierType.EMAIL, "x'or'1'='1\"--@example.org"),
                Identifier(IdentifierType.CUSTOMER_ID, "1' OR '1'='1; DROP TABLE t;--*)(\\%_"),
            ),
        )

    # helpers -------------------------------------------------------------------------

    def _find(self, connector: Connector, *subjects: Subject) -> list[Finding]:
        return list(connector.find(list(subjects)))

    def _seed_both(self, connector: Connector) -> tuple[Subject, Subject]:
        subject, neighbour = self.subject(), self.neighbour()
        self.seed(connector, subject)
        self.seed(connector, neighbour)
        return subject, neighbour

    @staticmethod
    def _values(subjects: Iterable[Subject]) -> list[str]:
        return [i.value for s in subjects for i in s.identifiers]

    # find ----------------------------------------------------------------------------

    def test_find_returns_seeded_items(self, connector: Connector) -> None:
        subject, _ = self._seed_both(connector)
        found = self._find(connector, subject)
        assert found, "find returned nothing for a seeded subject"
        for f in found:
            assert f.system == connector.system, "findings must name their system"
            assert f.subject == subject.key, "findings must name the subject they belong to"
            assert f.matched and set(f.matched) <= set(subject.identifiers)
            assert f.ref and f.kind

    def test_find_absent_subject_returns_nothing(self, connector: Connector) -> None:
        self.seed(connector, self.neighbour())
        assert self._find(connector, self.subject()) == []

    def test_find_never_matches_a_lookalike(self, connector: Connector) -> None:
        subject, neighbour = self._seed_both(connector)
        mine = {f.ref for f in self._find(connector, subject)}
        theirs = {f.ref for f in self._find(connector, neighbour)}
        assert mine and theirs
        assert not mine & theirs, "one item matched both the subject and a lookalike"

    def test_find_batch_attributes_each_subject(self, connector: Connector) -> None:
        subject, neighbour = self._seed_both(connector)
        alone = {(f.subject, f.ref) for f in self._find(connector, subject)}
        alone |= {(f.subject, f.ref) for f in self._find(connector, neighbour)}
        batch = {(f.subject, f.ref) for f in self._find(connector, subject, neighbour)}
        assert batch == alone, "a batch must find exactly what single calls find"

    def test_find_hostile_identifiers_match_nothing(self, connector: Connector) -> None:
        self._seed_both(connector)
        assert self._find(connector, self.hostile()) == []
        assert self._find(connector, self.subject()), "hostile input damaged the system"

    def test_find_empty_batch(self, connector: Connector) -> None:
        self._seed_both(connector)
        assert list(connector.find([])) == []

    # export --------------------------------------------------------------------------

    def test_export_returns_a_record_per_finding(self, connector: Connector) -> None:
        subject, _ = self._seed_both(connector)
        found = self._find(connector, subject)
        if not connector.supports(Capability.EXPORT):
            with pytest.raises(CapabilityNotSupported):
                list(connector.export(found))
            return
        records = list(connector.export(found))
        assert {r.finding.ref for r in records} == {f.ref for f in found}
        for r in records:
            assert isinstance(dict(r.data), dict) and r.data

    # delete --------------------------------------------------------------------------

    def test_delete_erases_and_find_again_returns_nothing(self, connector: Connector) -> None:
        subject, neighbour = self._seed_both(connector)
        found = self._find(connector, subject)
        before_neighbour = {f.ref for f in self._find(connector, neighbour)}
        if not connector.supports(Capability.DELETE):
            with pytest.raises(CapabilityNotSupported):
                list(connector.delete(found))
            return
        outcomes = list(connector.delete(found))
        assert {o.finding.ref for o in outcomes} == {f.ref for f in found}
        assert all(o.status is ItemStatus.DONE for o in outcomes), outcomes
        assert self._find(connector, subject) == [], "data left behind after delete"
        after_neighbour = {f.ref for f in self._find(connector, neighbour)}
        assert after_neighbour == before_neighbour, "delete touched someone else's data"

    def test_second_delete_is_harmless(self, connector: Connector) -> None:
        if not connector.supports(Capability.DELETE):
            pytest.skip("connector does not declare DELETE (refusal tested elsewhere)")
        subject, neighbour = self._seed_both(connector)
        found = self._find(connector, subject)
        list(connector.delete(found))
        again = list(connector.delete(found))
        assert {o.finding.ref for o in again} == {f.ref for f in found}
        assert all(o.status is ItemStatus.ALREADY_DONE for o in again), again
        assert self._find(connector, neighbour)

    # restrict ------------------------------------------------------------------------

    def test_restrict_is_idempotent(self, connector: Connector) -> None:
        subject, neighbour = self._seed_both(connector)
        found = self._find(connector, subject)
        if not connector.supports(Capability.RESTRICT):
            with pytest.raises(CapabilityNotSupported):
                list(connector.restrict(found))
            return
        first = list(connector.restrict(found))
        assert first and all(o.status is ItemStatus.DONE for o in first), first
        second = list(connector.restrict(found))
        assert all(o.status is ItemStatus.ALREADY_DONE for o in second), second
        assert self._find(connector, neighbour)

    # hygiene -------------------------------------------------------------------------

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
        subject, neighbour = self._seed_both(connector)
        caplog.clear()
        found = self._find(connector, subject, neighbour, self.hostile())
        if connector.supports(Capability.EXPORT):
            list(connector.export(found))
        if connector.supports(Capability.DELETE):
            list(connector.delete([f for f in found if f.subject == subject.key]))
        text = caplog.text + " ".join(repr(f) for f in found)
        for value in self._values([subject, neighbour]):
            assert value not in text, "an identifier appeared in a log line or repr"
