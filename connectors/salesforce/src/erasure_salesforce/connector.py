"""The ``salesforce`` connector: contacts, leads and what hangs off them in a Salesforce org."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from erasure import (
    AuthError,
    Capability,
    Connector,
    Correction,
    Finding,
    IdentifierType,
    ItemOutcome,
    ObjectionScope,
    PermanentError,
    Record,
    Subject,
)

from .change import Changer
from .client import Api
from .discover import describe_fields, discover
from .erase import Eraser, by_object
from .journal import Journal
from .locate import Locator, parse_ref
from .settings import SalesforceSettings

__all__ = ["SalesforceConnector"]

#: field types export leaves out: binary content and compound values SOQL repeats
_NOT_EXPORTED = frozenset({"base64", "address", "location"})


class SalesforceConnector(Connector):
    """Finds people by SOSL and their cases, tasks, email messages, campaign memberships
    and Individual by SOQL; erases with Bulk API 2.0 hardDelete jobs (past the Recycle
    Bin); restricts through the Individual's HasOptedOutProcessing.

    See the package README for the settings and what each action does.
    """

    name = "salesforce"
    version = "0.1.0"
    Settings = SalesforceSettings
    capabilities = frozenset({Capability.FIND, Capability.EXPORT, Capability.DELETE,
                              Capability.ANONYMISE, Capability.RESTRICT, Capability.LOOKUP,
                              Capability.RECTIFY, Capability.OBJECT})
    identifier_types = frozenset({IdentifierType.EMAIL, IdentifierType.PHONE,
                                  IdentifierType.NAME, IdentifierType.USER_ID})
    settings: SalesforceSettings

    def __init__(self, system: str, settings: SalesforceSettings) -> None:
        super().__init__(system, settings)
        self.poll_interval = settings.poll_seconds
        self.api = Api(settings)
        self._locator = Locator(self.api, settings)
        self._eraser = Eraser(self.api, settings, self._journal)
        self._changer = Changer(self.api, settings)
        self._fields: dict[str, list[str]] = {}

    def _journal(self) -> Journal | None:
        # The host sets state_dir before the first call; outside a host there is none.
        return Journal(self.state_dir) if self.state_dir is not None else None

    @property
    def api_usage(self) -> dict[str, int]:
        """The org's API usage as of the last answer (``Sforce-Limit-Info``)."""
        return dict(self.api.usage)

    def check(self) -> None:
        """Signs in, reads every mapped object, and says whether the user may hard delete
        (without it an erasure leaves records in the Recycle Bin: partial)."""
        listing = self.api.json("GET", "sobjects", "describe global") or {}
        names = {o["name"] for o in listing.get("sobjects", [])}
        missing = sorted(set(self.settings.objects) - names)
        if missing:
            raise PermanentError(f"objects not in the org or not readable: {', '.join(missing)}")
        if not self._eraser.hard_delete_allowed(fresh=True):
            raise AuthError("the user lacks the Bulk API Hard Delete permission: erasures "
                            "leave records in the Recycle Bin for 15 days (outcome partial)")

    def find(self, subjects: Sequence[Subject]) -> Iterator[Finding]:
        if not subjects:
            return iter(())
        return iter(self._locator.find(self.system, subjects))

    def export(self, findings: Sequence[Finding]) -> Iterator[Record]:
        out: list[Record] = []
        for sobject, group in by_object(findings).items():
            # the Recycle Bin's records too: they still hold the person's data
            records = self._changer.read(sobject, [parse_ref(f.ref)[1] for f in group],
                                         self._export_fields(sobject), include_deleted=True)
            for f in group:
                record = records.get(parse_ref(f.ref)[1])
                if record is not None:
                    out.append(Record(f, {k: v for k, v in record.items()
                                          if k != "attributes"}))
        return iter(out)

    def _export_fields(self, sobject: str) -> list[str]:
        m = self.settings.objects.get(sobject)
        if m is not None and m.export:
            return list(m.export)
        if sobject not in self._fields:
            self._fields[sobject] = [f["name"] for f in describe_fields(self.api, sobject)
                                     if f.get("type") not in _NOT_EXPORTED]
        return self._fields[sobject]

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        kept = {n for n, m in self.settings.objects.items() if m.policy == "keep"}
        to_keep = [f for f in findings if parse_ref(f.ref)[0] in kept]
        to_delete = [f for f in findings if parse_ref(f.ref)[0] not in kept]
        out = self._changer.anonymise(to_keep) if to_keep else []
        if to_delete:
            out += self._eraser.delete(to_delete)
        return iter(out)

    def poll(self, pending: Sequence[ItemOutcome]) -> Iterator[ItemOutcome]:
        return iter(self._eraser.poll(pending))

    def lookup(self, findings: Sequence[Finding]) -> Iterator[Finding]:
        return iter(self._eraser.lookup(findings))

    def anonymise(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._changer.anonymise(findings))

    def restrict(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        return iter(self._changer.restrict(findings))

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> Iterator[ItemOutcome]:
        return iter(self._changer.rectify(findings, corrections))

    def object_to(self, findings: Sequence[Finding], scope: ObjectionScope
                  ) -> Iterator[ItemOutcome]:
        return iter(self._changer.object_to(findings, scope.value))

    def discover(self) -> str:
        return discover(self.api, self.system)

    def close(self) -> None:
        self.api.close()

    def receipt_facts(self) -> dict[str, Any]:
        """The org's API usage (Sforce-Limit-Info) as of the last answer."""
        usage = self.api_usage
        return {"api_usage": usage} if usage else {}
