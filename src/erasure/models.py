"""Frozen domain values passed between the host and connectors.

Connectors receive and return only these values, never the orchestrator's or the ledger's
objects. The hot-path values (Identifier, Subject, Finding, Record, ItemOutcome) are frozen
slotted dataclasses: a run over ten thousand subjects creates hundreds of thousands of them.
Their ``__init__`` is the dataclass's own: a hand-built faster one saved 1.4 us an object,
and a run of 10,000 erasures builds 160,000 of them (0.2 s of 13, under 2%).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

__all__ = [
    "Action",
    "Capability",
    "Correction",
    "CorrectionType",
    "Finding",
    "Identifier",
    "IdentifierType",
    "ItemOutcome",
    "ItemStatus",
    "ObjectionScope",
    "Outcome",
    "Policy",
    "Record",
    "RequestType",
    "Subject",
    "email_forms",
]


class IdentifierType(enum.StrEnum):
    """Kinds of identifier a subject can be known by."""

    EMAIL = "email"
    PHONE = "phone"
    CUSTOMER_ID = "customer_id"
    USER_ID = "user_id"
    NAME = "name"
    IP = "ip"


class Capability(enum.StrEnum):
    """What a connector can do."""

    FIND = "find"
    EXPORT = "export"
    DELETE = "delete"
    ANONYMISE = "anonymise"
    RESTRICT = "restrict"
    NOTIFY = "notify"
    LOOKUP = "lookup"  # read items by id (verification that does not wait for an index)
    #: find and delete items older than the system's retention (``erasure sweep``)
    RETENTION = "retention"
    #: correct a subject's email, phone, name or postal address (Art. 16; ``rectify``)
    RECTIFY = "rectify"
    #: stop processing the subject's data for a purpose (Art. 21; ``object_to``)
    OBJECT = "object"


class RequestType(enum.StrEnum):
    """GDPR request types (Arts. 15-18, 20, 21) plus a find-only dry look."""

    FIND = "find"
    ACCESS = "access"
    PORTABILITY = "portability"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    RECTIFICATION = "rectification"
    OBJECTION = "objection"


class Policy(enum.StrEnum):
    """What an erasure request does in one system."""

    ERASE = "erase"
    ANONYMISE = "anonymise"
    RESTRICT = "restrict"
    RETAIN = "retain"


class Action(enum.StrEnum):
    """A step the host asks a connector to perform."""

    FIND = "find"
    EXPORT = "export"
    DELETE = "delete"
    ANONYMISE = "anonymise"
    RESTRICT = "restrict"
    RECTIFY = "rectify"
    OBJECT = "object"
    VERIFY = "verify"


class ObjectionScope(enum.StrEnum):
    """The processing an objection (Art. 21) stops.

    ``marketing``: direct marketing, which must stop whenever the person objects (Art.
    21(2)-(3)); ``profiling``: profiling and automated decisions based on it.
    """

    MARKETING = "marketing"
    PROFILING = "profiling"


class CorrectionType(enum.StrEnum):
    """What a rectification (Art. 16) may correct. The first three are identifier types
    (the same values as :class:`IdentifierType`); a postal address is not an identifier:
    it is never searched by, only corrected."""

    EMAIL = "email"
    PHONE = "phone"
    NAME = "name"
    ADDRESS = "address"

    @property
    def identifier_type(self) -> IdentifierType | None:
        """The identifier type of the same name; None for ``address``."""
        return None if self is CorrectionType.ADDRESS else IdentifierType(self.value)


class Outcome(enum.StrEnum):
    """The outcome of one request in one system, as the receipt states it."""

    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    NOT_COVERED = "not_covered"
    RETAINED = "retained"
    AWAITING_CONFIRMATION = "awaiting_confirmation"


class ItemStatus(enum.StrEnum):
    """What happened to one item."""

    DONE = "done"
    ALREADY_DONE = "already_done"  # idempotent repeat: nothing changed
    FAILED = "failed"
    NOT_SUPPORTED = "not_supported"
    RETAINED = "retained"  # kept on purpose by the connector's mapping (a legal duty)
    #: the system accepted the work and finishes it later (a bulk job); ``handle`` says
    #: which job, and the host asks ``Connector.poll`` when it is due
    PENDING = "pending"
    #: someone was told (a processor with no API) and must confirm; ``handle`` is the
    #: message's reference. The task waits for ``erasure confirm``.
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    #: the reference no longer names the item it named at find (the store was renumbered:
    #: an IMAP folder's UIDVALIDITY changed); nothing was done to it. The host searches the
    #: system again and acts on what it finds then, never on the old reference.
    STALE = "stale"


_OK_STATUSES = frozenset({ItemStatus.DONE, ItemStatus.ALREADY_DONE, ItemStatus.RETAINED})


# The common shape of an address, checked without email-validator (about 70 us a call,
# most of an import of 10,000 rows): a dot-atom local part and LDH labels under a
# letters-only top-level domain. Anything else (quotes, non-ASCII, IDNA, "--", special-use
# domains, lengths near the limits) goes through email-validator; what this accepts,
# email-validator accepts with the same result (tests/test_models.py checks it).
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_COMMON_EMAIL = re.compile(
    rf"{_ATEXT}(?:\.{_ATEXT})*@(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+[a-z]{{2,63}}")
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def _common_email(value: str) -> str | None:
    """``value`` normalised if it has the common shape; None: ask email-validator."""
    low = value.lower()
    if (len(low) > 254 or "--" in low or not _COMMON_EMAIL.fullmatch(low)
            or low.rsplit(".", 1)[1] in _SPECIAL_USE):
        return None
    local, domain = low.split("@")
    return low if len(local) <= 64 and len(domain) <= 253 else None


def _normalise_email(value: str) -> str:
    value = value.strip()
    common = _common_email(value)
    if common is not None:
        return common
    from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

    # Only the syntax is checked: the address is one a system holds, not one to send to.
    # email-validator refuses special-use domains (user@shop.test, x@host.local,
    # erased@invalid) whatever its options; its list is global, so instead of emptying
    # it, such a domain is validated with a neutral reserved label appended, removed after.
    domain = value.rpartition("@")[2].lower()
    # (a domain without a dot stays invalid, as "a@b" is)
    special = any(domain.endswith("." + d) for d in SPECIAL_USE_DOMAIN_NAMES)
    try:
        info = validate_email(value + _NEUTRAL if special else value,
                              check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        raise UsageError("invalid email address") from None
    normalized = info.normalized[:-len(_NEUTRAL)] if special else info.normalized
    # Domains are case-insensitive; local parts are in practice too, and a case-sensitive
    # match would leave "Bob@x.org" behind when erasing "bob@x.org".
    return normalized.lower()


#: a label reserved for examples (RFC 2606), never special to email-validator
_NEUTRAL = ".example"


def _normalise_phone(value: str) -> str:
    import phonenumbers

    problem = "invalid phone number (use international format, e.g. +4930123456)"
    if any(c.isalpha() for c in value):
        # phonenumbers reads letters as keypad digits or drops them: "O" for "0" would
        # become another person's number.
        raise UsageError("invalid phone number: letters are not accepted (digits, spaces, "
                         "+ ( ) - . only)")
    try:
        # No default region: "0301234567" means different people in different countries.
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise UsageError(problem) from None
    if not phonenumbers.is_possible_number(parsed):
        raise UsageError(problem)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _normalise_ip(value: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise UsageError("invalid IP address") from None


def _normalise_plain(value: str) -> str:
    value = value.strip()
    if not value:
        raise UsageError("empty identifier")
    if any(ord(c) < 32 for c in value):
        raise UsageError("identifier contains control characters")
    return value


def _normalise_name(value: str) -> str:
    return " ".join(_normalise_plain(value).split())


def _normalise_address(value: str) -> str:
    # One line per address part is common in forms: keep the parts, drop the layout.
    parts = [" ".join(p.split()) for p in value.replace("\r", "").split("\n")]
    text = ", ".join(p for p in parts if p)
    if not text:
        raise UsageError("empty address")
    if len(text) > 500:
        raise UsageError("address is longer than 500 characters")
    return _normalise_plain(text)


_NORMALISERS = {
    IdentifierType.EMAIL: _normalise_email,
    IdentifierType.PHONE: _normalise_phone,
    IdentifierType.IP: _normalise_ip,
    IdentifierType.NAME: _normalise_name,
    IdentifierType.CUSTOMER_ID: _normalise_plain,
    IdentifierType.USER_ID: _normalise_plain,
}


@dataclass(frozen=True, slots=True)
class Identifier:
    """One identifier of a subject, normalised (emails lower-cased, phones in E.164).

    Build with :meth:`parse` to validate user input; the constructor trusts its caller.
    """

    type: IdentifierType
    value: str

    @classmethod
    def parse(cls, type: IdentifierType | str, value: str) -> Identifier:
        """Validate and normalise ``value``; raise :class:`UsageError` naming the problem."""
        try:
            itype = IdentifierType(type)
        except ValueError:
            raise UsageError(f"unknown identifier type {type!r}") from None
        if not isinstance(value, str):
            raise UsageError(f"{itype.value}: identifier must be a string")
        try:
            return cls(itype, _NORMALISERS[itype](value))
        except UsageError as exc:
            raise UsageError(f"{itype.value}: {exc}") from None

    def forms(self) -> tuple[str, ...]:
        """Every equivalent form of this identifier a store may hold, the normal form first.

        An email's domain may be stored in Unicode or in punycode (``user@bücher.example``,
        ``user@xn--bcher-kva.example``): both forms, lower-cased. Other types: the value.
        Connectors search every form and compare stored values lower-cased against them.
        """
        if self.type is not IdentifierType.EMAIL:
            return (self.value,)
        return email_forms(self.value)

    def __repr__(self) -> str:
        # Identifiers are personal data: keep them out of tracebacks and logs.
        return f"Identifier({self.type.value}, <redacted>)"


def email_forms(value: str) -> tuple[str, ...]:
    """A lower-cased email in every form of its domain a store may hold (Unicode and
    punycode), ``value``'s own form first; see :meth:`Identifier.forms`."""
    value = value.lower()
    local, at, domain = value.rpartition("@")
    if not at or (domain.isascii() and "xn--" not in domain):
        return (value,)  # the common case: nothing to convert
    import idna

    try:
        other = (idna.encode(domain, uts46=True).decode("ascii") if not domain.isascii()
                 else idna.decode(domain))
    except (idna.IDNAError, UnicodeError, ValueError):
        return (value,)  # not a valid IDN: only the form given can be stored
    other = other.lower()
    return (value,) if other == domain else (value, f"{local}@{other}")


@dataclass(frozen=True, slots=True)
class Subject:
    """A person a request is about, as the host hands it to a connector.

    ``key`` is opaque (the request id); findings refer back to it.
    """

    key: str
    identifiers: tuple[Identifier, ...]

    def of_type(self, itype: IdentifierType) -> tuple[str, ...]:
        """The values of all identifiers of one type."""
        return tuple(i.value for i in self.identifiers if i.type is itype)

    def __repr__(self) -> str:
        types = ",".join(sorted({i.type.value for i in self.identifiers}))
        return f"Subject({self.key!r}, [{types}])"


@dataclass(frozen=True, slots=True)
class Finding:
    """A reference to one item in one system that holds a subject's data. Never a copy of it.

    - ``ref``: the connector's stable item reference (a Contact id, ``table:pk``, an S3 key
      and version); given back to the connector for export, delete and restrict.
    - ``kind``: the record type ("contact", "customers"), used for export files and counts;
      receipts count findings per kind, so a kind never holds personal data (a connector
      may flag an item by its kind: "object-outside-residency").
    - ``matched``: the subject's identifiers that matched this item; the host decides from
      them whether the item may be erased automatically or only reported for review.
    - ``fields``: names of the fields that matched.
    - ``related``: identifiers seen on the item (a phone on a contact) that the host may use
      to search the other systems (expansion).
    """

    system: str
    subject: str
    ref: str
    kind: str
    matched: tuple[Identifier, ...]
    fields: tuple[str, ...] = ()
    related: tuple[Identifier, ...] = ()

    def __repr__(self) -> str:
        return f"Finding({self.system}:{self.kind}, subject={self.subject!r})"


@dataclass(frozen=True, slots=True)
class Record:
    """One exported item: a JSON-safe mapping of field name to value."""

    finding: Finding
    data: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Record({self.finding!r}, {len(self.data)} fields)"


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What happened to one item on delete, anonymise or restrict.

    ``transient`` marks a failure the host may retry for this item alone. ``error`` is a short
    message without personal data. ``handle`` (with PENDING or AWAITING_CONFIRMATION) is an
    opaque reference the ledger keeps and gives back to ``Connector.poll``. ``held`` (with
    RETAINED) says the item is kept by a hold that may be lifted (an S3 legal hold, a
    retention date), ``error`` naming it: while the request is open the host acts on the
    item again every ``hold_recheck_hours`` until the request's give-up time, and only then
    ends the task ``retained``.
    """

    finding: Finding
    status: ItemStatus
    error: str | None = None
    transient: bool = False
    handle: str | None = None
    held: bool = False

    @property
    def ok(self) -> bool:
        return self.status in _OK_STATUSES


@dataclass(frozen=True, slots=True)
class Correction:
    """One corrected value of one subject (GDPR Art. 16), as the host hands it to
    :meth:`erasure.Connector.rectify`.

    - ``subject``: the subject key (``Finding.subject``) whose items it applies to.
    - ``type``: what is corrected; the connector maps it to its fields (the columns it
      searches for that identifier type; for ``address``, the fields configured as the
      postal address).
    - ``new``: the correct value, normalised like an identifier (emails lower-cased,
      phones in E.164, names and addresses with single spaces).
    - ``old``: the values the subject's items hold now, as the host found them
      (normalised); a field is changed only when it holds one of them, so a second
      address of someone else on the same row stays. Empty for ``address`` (never an
      identifier, so never found): every field mapped to the address is set.

    Build with :meth:`parse` to validate user input. Its repr shows no values.
    """

    subject: str
    type: CorrectionType
    new: str
    old: tuple[str, ...] = ()

    @classmethod
    def parse(cls, type: CorrectionType | str, value: str, *, subject: str = "",
              old: tuple[str, ...] = ()) -> Correction:
        """Validate and normalise ``value``; raise :class:`UsageError` naming the problem."""
        try:
            ctype = CorrectionType(type)
        except ValueError:
            known = ", ".join(t.value for t in CorrectionType)
            raise UsageError(f"cannot correct {type!r} (known: {known})") from None
        if not isinstance(value, str):
            raise UsageError(f"{ctype.value}: a correction must be a string")
        itype = ctype.identifier_type
        if itype is not None:
            return cls(subject, ctype, Identifier.parse(itype, value).value, old)
        try:
            return cls(subject, ctype, _normalise_address(value), old)
        except UsageError as exc:
            raise UsageError(f"address: {exc}") from None

    def matches(self, value: Any) -> bool | None:
        """Whether a stored ``value`` is the corrected one (True), one of ``old`` (False)
        or neither (None), compared normalised: for connectors and verification."""
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            norm = Correction.parse(self.type, value).new
        except UsageError:
            return None
        if norm == self.new:
            return True
        if norm in self.old or not self.old:
            return False
        return None

    def __repr__(self) -> str:
        return f"Correction({self.subject!r}, {self.type.value}, <redacted>)"
