"""Changes that keep the record: anonymise (fields replaced) and restrict (Individual).

Both read the records first and write only what differs, so a repeat is ALREADY_DONE and
changes nothing; writes go out in composite calls of 200, results matched by position.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from erasure import (
    CapabilityNotSupported,
    Correction,
    CorrectionType,
    Finding,
    ItemOutcome,
    ItemStatus,
    PermanentError,
)

from .client import Api
from .erase import by_object
from .locate import parse_ref
from .settings import SalesforceSettings
from .soql import chunked, literal

__all__ = ["Changer"]

_CHUNK = 200


def _empty(value: Any) -> bool:
    return value is None or value == ""


class Changer:
    """Anonymises and restricts findings' records."""

    def __init__(self, api: Api, settings: SalesforceSettings) -> None:
        self.api = api
        self.settings = settings

    # reading and writing --------------------------------------------------------------------

    def read(self, sobject: str, ids: Sequence[str], fields: Sequence[str], *,
             include_deleted: bool = False) -> dict[str, dict[str, Any]]:
        cols = ", ".join(dict.fromkeys(["Id", *fields]))
        out: dict[str, dict[str, Any]] = {}
        for soql in chunked(sorted(set(ids)), lambda part: (
                f"SELECT {cols} FROM {sobject} WHERE Id IN "  # noqa: S608 - values go through literal()
                f"({', '.join(literal(i) for i in part)})")):
            for r in self.api.query(soql, f"query {sobject}", include_deleted=include_deleted):
                out[r["Id"]] = r
        return out

    def write(self, sobject: str, changes: Mapping[str, Mapping[str, Any]]
              ) -> dict[str, str | None]:
        """PATCH ``id -> {field: value}``; returns ``id -> error code`` (None: saved)."""
        items = sorted(changes.items())
        out: dict[str, str | None] = {}
        for start in range(0, len(items), _CHUNK):
            chunk = items[start:start + _CHUNK]
            records = [{"attributes": {"type": sobject}, "id": rid, **values}
                       for rid, values in chunk]
            results = self.api.json("PATCH", "composite/sobjects", "composite update",
                                    json={"allOrNone": False, "records": records})
            if not isinstance(results, list) or len(results) != len(chunk):
                raise PermanentError("composite update: answer does not match the request")
            for (rid, _), r in zip(chunk, results, strict=True):
                out[rid] = None if r.get("success") else str(
                    (r.get("errors") or [{}])[0].get("statusCode") or "UNKNOWN")
        return out

    def create(self, sobject: str, records: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """POST new records; their ids in order (None where the create failed)."""
        out: list[str | None] = []
        for start in range(0, len(records), _CHUNK):
            chunk = [{"attributes": {"type": sobject}, **r}
                     for r in records[start:start + _CHUNK]]
            results = self.api.json("POST", "composite/sobjects", "composite create",
                                    json={"allOrNone": False, "records": chunk})
            if not isinstance(results, list) or len(results) != len(chunk):
                raise PermanentError("composite create: answer does not match the request")
            out.extend(r.get("id") if r.get("success") else None for r in results)
        return out

    # anonymise ----------------------------------------------------------------------------

    def anonymise(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        """Replace each record's configured fields (``""`` clears one)."""
        out: list[ItemOutcome] = []
        for sobject, group in by_object(findings).items():
            m = self.settings.objects.get(sobject)
            target = dict(m.anonymise) if m else {}
            if sobject == "Individual":
                target = {"FirstName": "", "LastName": "Anonymised"}
            if not target:
                # Nothing of the record identifies anyone itself (a campaign membership):
                # it is anonymous once the records it links to are.
                out.extend(ItemOutcome(f, ItemStatus.ALREADY_DONE) for f in group)
                continue
            current = self.read(sobject, [parse_ref(f.ref)[1] for f in group], list(target))
            changes = {}
            for rid, record in current.items():
                diff = {k: (None if v == "" else v) for k, v in target.items()
                        if not (_empty(v) and _empty(record.get(k))) and record.get(k) != v}
                if diff:
                    changes[rid] = diff
            results = self.write(sobject, changes) if changes else {}
            for f in group:
                rid = parse_ref(f.ref)[1]
                if rid not in current:
                    out.append(ItemOutcome(f, ItemStatus.FAILED, error="record not found"))
                elif rid not in changes:
                    out.append(ItemOutcome(f, ItemStatus.ALREADY_DONE))
                elif results.get(rid) is None:
                    out.append(ItemOutcome(f, ItemStatus.DONE))
                else:
                    out.append(ItemOutcome(f, ItemStatus.FAILED,
                                           error=f"anonymise: {results[rid]}"))
        return out

    # rectify ------------------------------------------------------------------------------

    def rectify(self, findings: Sequence[Finding], corrections: Sequence[Correction]
                ) -> list[ItemOutcome]:
        """Write each correction into the fields mapped to its type that hold one of its
        old values (a name into FirstName and LastName; an address into ``address``).
        A record of the subject without such a field (a Task on the contact) is DONE when
        another record of the subject changed in the call: it reaches the person through
        it."""
        objects = self.settings.objects
        for c in corrections:
            if not any(self._fields(m, c.type) for m in objects.values() if m.rectify):
                raise CapabilityNotSupported(f"no field is mapped for {c.type.value}")
        mine: dict[str, list[Correction]] = defaultdict(list)
        for c in corrections:
            mine[c.subject].append(c)
        status: dict[str, ItemStatus] = {}
        errors: dict[str, str] = {}
        for sobject, group in by_object(findings).items():
            m = objects.get(sobject)
            if m is None or not m.rectify or sobject == "Individual":
                continue
            wanted = {f for c in corrections for f in self._fields(m, c.type)}
            if not wanted:
                continue
            if "Name" in wanted:
                wanted |= {"FirstName", "LastName"}
            records = self.read(sobject, [parse_ref(f.ref)[1] for f in group], sorted(wanted))
            changes: dict[str, dict[str, Any]] = {}
            refs: dict[str, str] = {}
            for f in group:
                record = records.get(parse_ref(f.ref)[1])
                if record is None:
                    status[f.ref], errors[f.ref] = ItemStatus.FAILED, "record not found"
                    continue
                diff: dict[str, Any] = {}
                for c in mine.get(f.subject, ()):
                    diff.update(self._diff(m, c, record))
                if diff:
                    changes[record["Id"]] = diff
                    refs[record["Id"]] = f.ref
                    status[f.ref] = ItemStatus.DONE
            for rid, code in (self.write(sobject, changes) if changes else {}).items():
                if code:
                    status[refs[rid]], errors[refs[rid]] = ItemStatus.FAILED, f"update: {code}"
        changed = {f.subject for f in findings if status.get(f.ref) is ItemStatus.DONE}
        out = []
        for f in findings:
            if f.ref in status:
                out.append(ItemOutcome(f, status[f.ref], error=errors.get(f.ref)))
            else:
                out.append(ItemOutcome(f, ItemStatus.DONE if f.subject in changed
                                       else ItemStatus.ALREADY_DONE))
        return out

    @staticmethod
    def _fields(m: Any, ctype: CorrectionType) -> tuple[str, ...]:
        return {CorrectionType.EMAIL: m.email, CorrectionType.PHONE: m.phone,
                CorrectionType.NAME: m.name, CorrectionType.ADDRESS: m.address}[ctype]

    def _diff(self, m: Any, c: Correction, record: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in self._fields(m, c.type):
            value = record.get(field)
            if c.type is CorrectionType.ADDRESS:
                if value != c.new:
                    out[field] = c.new
            elif c.matches(value) is False:  # holds an old value (normalised)
                if field == "Name":  # computed: Salesforce keeps the parts
                    first, _, last = c.new.rpartition(" ")
                    out.update({"FirstName": first or None, "LastName": last})
                else:
                    out[field] = c.new
        return out

    # restrict -------------------------------------------------------------------------------

    def restrict(self, findings: Sequence[Finding]) -> list[ItemOutcome]:
        """Restriction (Art. 18): the person's Individual gets HasOptedOutProcessing (one
        is created and linked where there is none) and ``restrict_fields`` are set."""
        return self.mark(findings, {"HasOptedOutProcessing": True},
                         self.settings.restrict_fields, create_individual=True)

    def object_to(self, findings: Sequence[Finding], scope: str) -> list[ItemOutcome]:
        """Objection (Art. 21): ``marketing`` sets the people's HasOptedOutOfEmail and
        DoNotCall and, where they have an Individual, its HasOptedOutSolicit;
        ``profiling`` sets the Individual's HasOptedOutProfiling (created and linked where
        there is none)."""
        if scope == "marketing":
            return self.mark(findings, {"HasOptedOutSolicit": True},
                             self.settings.marketing_fields, create_individual=False)
        if scope == "profiling":
            return self.mark(findings, {"HasOptedOutProfiling": True}, (),
                             create_individual=True)
        raise CapabilityNotSupported(f"no opt-out for {scope}")

    def mark(self, findings: Sequence[Finding], flags: Mapping[str, bool],
             person_fields: Sequence[str], *, create_individual: bool
             ) -> list[ItemOutcome]:
        """Set ``flags`` on each subject's Individual (creating and linking one where a
        person has none, if ``create_individual``) and the ``person_fields`` checkboxes on
        their person records (Contact, Lead...). Only what is not set yet is written.
        Other records of the subject are covered by their person: DONE (or ALREADY_DONE)
        with it, FAILED when the subject has no person record in the call."""
        people = {n: m for n, m in self.settings.objects.items() if m.individual}
        status: dict[str, ItemStatus] = {}  # ref -> outcome of a person or Individual
        errors: dict[str, str] = {}
        individuals: dict[str, list[str]] = defaultdict(list)  # Individual id -> refs
        to_create: list[tuple[str, str, dict[str, Any]]] = []  # (object, id, person)
        person_changes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for sobject, group in by_object(findings).items():
            if sobject == "Individual":
                for f in group:
                    individuals[parse_ref(f.ref)[1]].append(f.ref)
                continue
            m = people.get(sobject)
            if m is None or m.individual is None:
                continue
            records = self.read(sobject, [parse_ref(f.ref)[1] for f in group],
                                [m.individual, "FirstName", "LastName", *person_fields])
            for f in group:
                record = records.get(parse_ref(f.ref)[1])
                if record is None:
                    status[f.ref], errors[f.ref] = ItemStatus.FAILED, "record not found"
                    continue
                status[f.ref] = ItemStatus.ALREADY_DONE
                diff = {k: True for k in person_fields if record.get(k) is not True}
                if diff:
                    person_changes[sobject][record["Id"]] = diff
                    status[f.ref] = ItemStatus.DONE
                individual = record.get(m.individual)
                if isinstance(individual, str):
                    individuals[individual].append(f.ref)
                elif create_individual and flags:
                    to_create.append((sobject, record["Id"], record))
                    status[f.ref] = ItemStatus.DONE
        if individuals and flags:
            self._flag_individuals(individuals, flags, status, errors)
        if to_create:
            ids = self.create("Individual", [
                {"FirstName": r.get("FirstName") or None,
                 "LastName": r.get("LastName") or "Unknown", **flags} for _, _, r in to_create])
            for (sobject, rid, _), iid in zip(to_create, ids, strict=True):
                if iid is None:
                    ref = f"{sobject}/{rid}"
                    status[ref], errors[ref] = ItemStatus.FAILED, "Individual not created"
                    person_changes[sobject].pop(rid, None)
                    continue
                field = people[sobject].individual
                assert field is not None
                person_changes[sobject].setdefault(rid, {})[field] = iid
        for sobject, changes in person_changes.items():
            for rid, code in (self.write(sobject, changes) if changes else {}).items():
                if code:
                    ref = f"{sobject}/{rid}"
                    status[ref], errors[ref] = ItemStatus.FAILED, f"update: {code}"
        return self._outcomes(findings, status, errors)

    def _flag_individuals(self, individuals: Mapping[str, list[str]],
                          flags: Mapping[str, bool], status: dict[str, ItemStatus],
                          errors: dict[str, str]) -> None:
        current = self.read("Individual", list(individuals), list(flags))
        changes = {iid: {k: v for k, v in flags.items() if rec.get(k) != v}
                   for iid, rec in current.items()}
        changes = {iid: c for iid, c in changes.items() if c}
        results = self.write("Individual", changes) if changes else {}
        for iid, refs in individuals.items():
            for ref in refs:
                if iid not in current:
                    status[ref], errors[ref] = ItemStatus.FAILED, "Individual not found"
                elif results.get(iid):
                    status[ref], errors[ref] = ItemStatus.FAILED, f"update: {results[iid]}"
                elif iid in changes:
                    status[ref] = ItemStatus.DONE
                else:
                    status.setdefault(ref, ItemStatus.ALREADY_DONE)

    @staticmethod
    def _outcomes(findings: Sequence[Finding], status: Mapping[str, ItemStatus],
                  errors: Mapping[str, str]) -> list[ItemOutcome]:
        per_subject: dict[str, set[ItemStatus]] = defaultdict(set)
        for f in findings:
            if f.ref in status:
                per_subject[f.subject].add(status[f.ref])
        out = []
        for f in findings:
            if f.ref in status:
                out.append(ItemOutcome(f, status[f.ref], error=errors.get(f.ref)))
                continue
            seen = per_subject.get(f.subject, set())
            if not seen or seen == {ItemStatus.FAILED}:
                out.append(ItemOutcome(f, ItemStatus.FAILED, error=(
                    "no person record of the subject to mark (Contact or Lead)")))
            elif ItemStatus.DONE in seen:
                out.append(ItemOutcome(f, ItemStatus.DONE))
            else:
                out.append(ItemOutcome(f, ItemStatus.ALREADY_DONE))
        return out
