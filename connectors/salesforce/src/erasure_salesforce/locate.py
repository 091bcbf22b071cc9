"""find: SOSL for people records (a batch shares its searches), SOQL for the records that
hang off them, every hit checked again for an exact match.

SOSL matches words, not values (``a+b@x.org`` also finds ``a.b@x.org``), and stops at
its result cap without saying so: a search that returns the cap is done again by SOQL,
and every record is matched against the subjects' values exactly before it is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from erasure import Finding, Identifier, IdentifierType, Subject, UsageError

from .client import Api
from .settings import SalesforceSettings, SObjectMap
from .soql import chunked, is_record_id, like_literal, literal, sosl_term

__all__ = ["Locator", "parse_ref", "ref_of"]

E, P, N, U = (IdentifierType.EMAIL, IdentifierType.PHONE, IdentifierType.NAME,
              IdentifierType.USER_ID)


def ref_of(sobject: str, record_id: str) -> str:
    """A finding's ref: ``"Contact/003..."``."""
    return f"{sobject}/{record_id}"


def parse_ref(ref: str) -> tuple[str, str]:
    """``(object, record id)`` of a ref made by :func:`ref_of`."""
    sobject, _, record_id = ref.partition("/")
    return sobject, record_id


def normalise_name(value: str) -> str:
    return " ".join(value.split()).casefold()


@dataclass
class _Hit:
    """One record and, per subject key, the identifiers and fields that matched it."""

    sobject: str
    record: dict[str, Any]
    matched: dict[str, set[Identifier]] = field(default_factory=lambda: defaultdict(set))
    fields: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


class _Wanted:
    """The batch's identifier values, by type, each with the subjects that hold it."""

    def __init__(self, subjects: Sequence[Subject], region: str | None) -> None:
        self.by: dict[IdentifierType, dict[str, list[tuple[str, Identifier]]]] = {
            E: defaultdict(list), P: defaultdict(list), N: defaultdict(list),
            U: defaultdict(list)}
        self.region = region
        for s in subjects:
            for ident in s.identifiers:
                if ident.type is N:
                    self.by[N][normalise_name(ident.value)].append((s.key, ident))
                elif ident.type is U:
                    if is_record_id(ident.value):  # anything else names no record
                        self.by[U][ident.value[:15]].append((s.key, ident))
                elif ident.type in (E, P):
                    self.by[ident.type][ident.value].append((s.key, ident))

    def emails(self) -> list[str]:
        return sorted(self.by[E])

    def phones(self) -> list[str]:
        return sorted(self.by[P])

    def names(self) -> list[str]:
        return sorted({i.value for v in self.by[N].values() for _, i in v})

    def phone_forms(self, numbers: Iterable[str] | None = None) -> list[str]:
        """How the batch's phones (or ``numbers``, E.164) may be stored: SOQL compares
        text exactly."""
        import phonenumbers

        out: set[str] = set()
        for e164 in self.by[P] if numbers is None else numbers:
            out |= {e164, e164.lstrip("+")}
            try:
                parsed = phonenumbers.parse(e164, None)
            except phonenumbers.NumberParseException:
                continue
            for fmt in (phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                        phonenumbers.PhoneNumberFormat.NATIONAL):
                out.add(phonenumbers.format_number(parsed, fmt))
        return sorted(out)

    def phone_of(self, stored: str) -> str | None:
        """A stored phone in E.164, or None when it cannot be read as one."""
        import phonenumbers

        try:
            parsed = phonenumbers.parse(stored, None if stored.strip().startswith("+")
                                        else self.region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_possible_number(parsed):
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def match(self, m: SObjectMap, record: Mapping[str, Any]
              ) -> Iterator[tuple[str, Identifier, str]]:
        """(subject key, identifier, field) of every exact match on ``record``."""
        for f in m.email:
            value = record.get(f)
            if isinstance(value, str):
                for key, ident in self.by[E].get(value.strip().lower(), ()):
                    yield key, ident, f
        for f in m.address_lists:
            value = record.get(f)
            if isinstance(value, str):
                for address in value.replace(",", ";").split(";"):
                    for key, ident in self.by[E].get(address.strip().lower(), ()):
                        yield key, ident, f
        for f in m.phone:
            value = record.get(f)
            if isinstance(value, str) and (e164 := self.phone_of(value)):
                for key, ident in self.by[P].get(e164, ()):
                    yield key, ident, f
        for f in m.name:
            value = record.get(f)
            if isinstance(value, str):
                for key, ident in self.by[N].get(normalise_name(value), ()):
                    yield key, ident, f
        for key, ident in self.by[U].get(str(record.get("Id", ""))[:15], ()):
            yield key, ident, "Id"


class Locator:
    """Finds a batch of subjects' records in one org."""

    def __init__(self, api: Api, settings: SalesforceSettings) -> None:
        self.api = api
        self.settings = settings

    def find(self, system: str, subjects: Sequence[Subject]) -> list[Finding]:
        wanted = _Wanted(subjects, self.settings.phone_region)
        hits: dict[str, _Hit] = {}  # by record id: ids are unique across objects
        objects = self.settings.objects
        people = {name: m for name, m in objects.items() if m.search}
        self._people(people, wanted, hits)
        for name, m in objects.items():
            if not m.search and m.searchable:
                self._related(name, m, wanted, hits)
        if self.settings.individuals:
            self._individuals(people, hits)
        return list(self._findings(system, hits))

    # people: SOSL --------------------------------------------------------------------------

    def _people(self, people: Mapping[str, SObjectMap], wanted: _Wanted,
                hits: dict[str, _Hit]) -> None:
        if not people:
            return
        scopes = (("EMAIL", wanted.emails(), "email"), ("PHONE", wanted.phones(), "phone"),
                  ("NAME", wanted.names(), "name"))
        for scope, values, attr in scopes:
            fielded = {n: m for n, m in people.items() if getattr(m, attr)}
            if not values or not fielded:
                continue
            returning = ", ".join(f"{n}({', '.join(self._columns(m))})"
                                  for n, m in fielded.items())
            cap = self.settings.search_cap
            # SOSL refuses a term shorter than two characters: SOQL compares those.
            short = [v for v in values if len(v.strip()) < 2]
            for n, m in fielded.items():
                if short:
                    self._soql(n, m, self._conditions(m, attr, short, wanted), wanted, hits)
            values = [v for v in values if len(v.strip()) >= 2]
            for terms in self._term_chunks(values):
                sosl = (f"FIND {{{' OR '.join(terms)}}} IN {scope} FIELDS RETURNING "
                        f"{returning} LIMIT {cap}")
                records = self.api.search(sosl, "search")
                if len(records) >= cap:
                    # The search may have been cut short: ask SOQL, which has no cap.
                    raw = [_unterm(t) for t in terms]
                    for n, m in fielded.items():
                        self._soql(n, m, self._conditions(m, attr, raw, wanted), wanted, hits)
                    continue
                for record in records:
                    sobject = record.get("attributes", {}).get("type", "")
                    if sobject in fielded:
                        self._check(sobject, fielded[sobject], record, wanted, hits)
        ids = sorted({i.value for v in wanted.by[U].values() for _, i in v})
        if ids:
            for n, m in people.items():
                self._soql(n, m, [lambda part: f"Id IN ({_in(part)})", ids], wanted, hits,
                           include_deleted=True)
        # The search index leaves out what is in the Recycle Bin, yet it holds the data
        # for 15 days: people deleted before are found by queryAll.
        for n, m in people.items():
            self._related(n, m, wanted, hits, binned=True)

    def _term_chunks(self, values: Sequence[str]) -> Iterator[list[str]]:
        part: list[str] = []
        size = 0
        for value in values:
            term = sosl_term(value)
            if part and size + len(term) + 4 > self.settings.search_chars:
                yield part
                part, size = [], 0
            part.append(term)
            size += len(term) + 4
        if part:
            yield part

    @staticmethod
    def _conditions(m: SObjectMap, attr: str, values: Sequence[str], wanted: _Wanted
                    ) -> list[Any]:
        fields = getattr(m, attr)
        if attr == "phone":
            values = wanted.phone_forms(values)
        return [lambda part: " OR ".join(f"{f} IN ({_in(part)})" for f in fields), values]

    # related records: SOQL -----------------------------------------------------------------

    def _related(self, name: str, m: SObjectMap, wanted: _Wanted,
                 hits: dict[str, _Hit], *, binned: bool = False) -> None:
        """One queryAll (more when the values do not fit a URL) for every way a record
        of ``name`` may belong to the batch, live or in the Recycle Bin; ``binned``: only
        the records in the bin, by their own values (people the search cannot see)."""
        emails, phones = wanted.emails(), wanted.phone_forms()
        ids = [] if binned else sorted(hits)
        # (value kind, values, condition for a part of them); parts are cut per kind
        kinds: list[tuple[list[str], Any]] = []
        if m.email and emails:
            kinds.append((emails, lambda part, fs=m.email: [f"{f} IN ({_in(part)})"
                                                            for f in fs]))
        if m.phone and phones:
            kinds.append((phones, lambda part, fs=m.phone: [f"{f} IN ({_in(part)})"
                                                            for f in fs]))
        if binned and m.name and wanted.names():
            kinds.append((wanted.names(), lambda part, fs=m.name: [
                f"{f} IN ({_in(part)})" for f in fs]))
        if m.address_lists and emails:
            kinds.append((emails, lambda part, fs=m.address_lists: [
                f"{f} LIKE {like_literal(e)}" for f in fs for e in part]))
        if m.links and ids:
            kinds.append((ids, lambda part, fs=m.links: [f"{f} IN ({_in(part)})"
                                                         for f in fs]))
        if not kinds:
            return
        tagged = [(n, v) for n, (values, _) in enumerate(kinds) for v in values]

        def where(part: Sequence[tuple[int, str]]) -> str:
            conditions = []
            for n, (_, render) in enumerate(kinds):
                mine = [v for k, v in part if k == n]
                if mine:
                    conditions += render(mine)
            return " OR ".join(conditions)

        self._soql(name, m, [where, tagged], wanted, hits, include_deleted=True,
                   only_deleted=binned)

    def _soql(self, name: str, m: SObjectMap, group: list[Any], wanted: _Wanted,
              hits: dict[str, _Hit], *, include_deleted: bool = False,
              only_deleted: bool = False) -> None:
        where, values = group
        columns = ", ".join(self._columns(m))

        def render(part: Sequence[Any]) -> str:
            condition = where(part) if part else "Id = null"
            if only_deleted:
                condition = f"IsDeleted = true AND ({condition})"
            return f"SELECT {columns} FROM {name} WHERE {condition}"  # noqa: S608 - values go through literal()

        for soql in chunked(values, render):
            for record in self.api.query(soql, f"query {name}",
                                         include_deleted=include_deleted):
                self._check(name, m, record, wanted, hits)

    @staticmethod
    def _columns(m: SObjectMap) -> list[str]:
        cols = ["Id", *m.matching, *m.links]
        if m.individual:
            cols.append(m.individual)
        return list(dict.fromkeys(cols))

    def _check(self, sobject: str, m: SObjectMap, record: dict[str, Any], wanted: _Wanted,
               hits: dict[str, _Hit]) -> None:
        found: list[tuple[str, set[Identifier], str]] = [
            (key, {ident}, f) for key, ident, f in wanted.match(m, record)]
        for link in m.links:
            target = record.get(link)
            if not isinstance(target, str):
                continue
            parent = hits.get(target)
            if parent is not None:
                found.extend((key, set(idents), link) for key, idents in parent.matched.items())
        if not found:
            return
        hit = hits.setdefault(record["Id"], _Hit(sobject, record))
        for key, idents, f in found:
            hit.matched[key] |= idents
            hit.fields[key].add(f)

    # Individuals ---------------------------------------------------------------------------

    def _individuals(self, people: Mapping[str, SObjectMap], hits: dict[str, _Hit]) -> None:
        owners: dict[str, list[_Hit]] = defaultdict(list)
        for hit in list(hits.values()):
            m = people.get(hit.sobject)
            if m is not None and m.individual and isinstance(
                    individual := hit.record.get(m.individual), str):
                owners[individual].append(hit)
        if not owners:
            return
        for soql in chunked(sorted(owners), lambda part: "SELECT Id, FirstName, LastName "  # noqa: S608 - values go through literal()
                            f"FROM Individual WHERE Id IN ({_in(part)})"):
            for record in self.api.query(soql, "query Individual", include_deleted=True):
                hit = hits.setdefault(record["Id"], _Hit("Individual", record))
                for owner in owners.get(record["Id"], ()):
                    for key, idents in owner.matched.items():
                        hit.matched[key] |= idents
                        hit.fields[key].add("Id")

    # findings ------------------------------------------------------------------------------

    def _findings(self, system: str, hits: Mapping[str, _Hit]) -> Iterator[Finding]:
        for record_id, hit in sorted(hits.items()):
            ref = ref_of(hit.sobject, record_id)
            related = tuple(self._related_identifiers(hit))
            for key in sorted(hit.matched):
                matched = tuple(sorted(hit.matched[key], key=lambda i: (i.type, i.value)))
                yield Finding(system=system, subject=key, ref=ref, kind=hit.sobject,
                              matched=matched, fields=tuple(sorted(hit.fields[key])),
                              related=related)

    def _related_identifiers(self, hit: _Hit) -> Iterable[Identifier]:
        """Identifiers seen on a person record, for the other systems (and this one: a
        record id stays in the id space of the systems that share it)."""
        m = self.settings.objects.get(hit.sobject)
        if m is None or not m.search:
            return
        seen: set[Identifier] = set()
        for itype, fields in ((E, m.email), (P, m.phone)):
            for f in fields:
                value = hit.record.get(f)
                if isinstance(value, str) and value.strip():
                    try:
                        seen.add(Identifier.parse(itype, value))
                    except UsageError:
                        continue  # a malformed stored value identifies nobody
        seen.add(Identifier(U, hit.record["Id"]))
        yield from sorted(seen, key=lambda i: (i.type, i.value))


def _in(values: Iterable[str]) -> str:
    return ", ".join(literal(v) for v in values)


def _unterm(term: str) -> str:
    """The value of a term made by :func:`sosl_term`."""
    inner = term[1:-1]
    out, i = [], 0
    while i < len(inner):
        if inner[i] == "\\" and i + 1 < len(inner):
            out.append(inner[i + 1])
            i += 2
            continue
        out.append(inner[i])
        i += 1
    return "".join(out)
