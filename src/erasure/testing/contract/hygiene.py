"""Contract tests of what a connector must never show: secrets, identifiers."""

from __future__ import annotations

import logging

import pytest

from ...connector import Connector
from ...models import (
    Capability,
    ObjectionScope,
)
from .base import (
    ContractBase,
    E,
    N,
    P,
)


class HygieneTests(ContractBase):
    """Contract tests of what a connector must never show: secrets, identifiers."""

    # hygiene ------------------------------------------------------------------------------

    @staticmethod
    def _secrets(connector: Connector) -> set[str]:
        """The values of the settings' secret fields (``SecretStr``)."""
        out = set()
        for name in type(connector.settings).model_fields:
            reveal = getattr(getattr(connector.settings, name), "get_secret_value", None)
            if reveal is not None and reveal():
                out.add(reveal())
        return out

    def test_repr_hides_secrets(self, connector: Connector) -> None:
        settings = connector.settings
        for secret in self._secrets(connector):
            assert secret not in repr(connector), "a secret appeared in the connector's repr"
            assert secret not in repr(settings), "a secret appeared in the settings' repr"
            assert secret not in str(settings), "a secret appeared in str(settings)"

    def test_no_identifiers_or_secrets_in_logs(
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
                shown += self._act(connector, cap.value,
                                   self._found(connector, world, world[role]))
        news: set[str] = set()
        if (connector.supports(Capability.RECTIFY) and "dave" in world.people
                and {E, P, N} & set(self._types(connector))):
            fix = self._correction(connector, world["dave"])
            news.add(fix.new)
            shown += [fix, *self._act(connector, "rectify",
                                      self._found(connector, world, world["dave"]), [fix])]
        if connector.supports(Capability.OBJECT):
            shown += self._act(connector, "object_to",
                               self._found(connector, world, world["carol"]),
                               ObjectionScope.MARKETING)
        text = caplog.text + " ".join(repr(x) for x in shown)
        for value in {i.value for s in people for i in s.identifiers} | news:
            assert value not in text, "an identifier appeared in a log line or repr"
        for secret in self._secrets(connector):
            assert secret not in caplog.text, "a secret of the settings appeared in a log line"
