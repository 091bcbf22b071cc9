"""Settings of a ``sql`` system: the database URL and the table mapping."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erasure import ConnectorSettings, IdentifierType, ObjectionScope
from erasure.phonetext import PhoneRegion

__all__ = [
    "AnonymiseRule", "DeepScanSettings", "Exclusion", "Relation", "SqlSettings", "TableSettings",
    "parse_rule",
]

_FIXED = "fixed:"
_KEEP = "keep:"
_STRATEGIES = ("null", "placeholder", "hash")


def _purpose() -> str:
    """Why the host validates these settings: ``"discover"`` lets a system map no table yet."""
    try:
        from erasure.connector import settings_purpose
    except ImportError:  # a host without the hook: every system must map a table
        return "run"
    return settings_purpose()


class AnonymiseRule(BaseModel):
    """One anonymisation strategy for one column, parsed from its TOML string.

    ``"null"``, ``"placeholder"`` (``erased+<pk>@invalid``, unique per row), ``"hash"``
    (keyed HMAC-SHA256 of the old value, needs ``hash_key``) or ``"fixed:<text>"``.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["null", "placeholder", "hash", "fixed", "keep"]
    #: the fixed value, or the reason of a ``keep`` rule.
    value: str | None = None


def parse_rule(text: str) -> AnonymiseRule:
    """Parse ``"null"``, ``"placeholder"``, ``"hash"``, ``"fixed:<text>"`` or
    ``"keep:<reason>"`` (the column is left as it is, on purpose, for that reason)."""
    if text.startswith(_FIXED):
        return AnonymiseRule(kind="fixed", value=text[len(_FIXED):])
    if text.startswith(_KEEP):
        reason = text[len(_KEEP):].strip()
        if not reason:
            raise ValueError('"keep:" needs a reason, e.g. "keep:not personal (tier code)"')
        return AnonymiseRule(kind="keep", value=reason)
    if text in _STRATEGIES:
        return AnonymiseRule(kind=text)
    raise ValueError('must be "null", "placeholder", "hash", "fixed:<text>" or "keep:<reason>"')


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Relation(_Strict):
    """A link to a parent table the schema does not declare as a foreign key.

    ``columns`` maps this table's columns to the parent's: ``{ customer_email = "email" }``.
    The parent is the table the link is followed *from*: a reverse link (the parent holds
    the key, ``customer.address_id -> address.id``) is declared on ``address`` as
    ``{ parent = "customer", columns = { id = "address_id" } }``. ``export_only``: the link
    is followed for access requests, never deleted or anonymised through.
    """

    parent: str
    columns: dict[str, str] = Field(min_length=1)
    export_only: bool = False


class Exclusion(_Strict):
    """A table (or one of its columns) the deep scan leaves out, and why."""

    table: str
    column: str | None = None
    #: schema of the table; default: the system's.
    schema_: str | None = Field(default=None, alias="schema")
    reason: str = Field(min_length=3)


class DeepScanSettings(_Strict):
    """The scan of every readable table's text columns for a subject's strong identifiers."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: scan after every erasure (the verification step) as well as in ``systems check --deep``.
    after_erasure: bool = True
    #: tables or columns not scanned, each with a reason.
    exclude: list[Exclusion] = []


class TableSettings(_Strict):
    """How one table holds personal data and what an erasure does to its rows."""

    #: identifier type -> column (or columns) holding it, searched with exact equality.
    identifiers: dict[IdentifierType, str | list[str]] = {}
    #: what ``delete`` does to this table's rows.
    action: Literal["delete", "anonymise", "retain"] = "delete"
    #: date/time column (UTC) whose rows older than the system's ``retention_months``
    #: ``erasure sweep`` deletes.
    retention_column: str | None = None
    #: column -> strategy, used when rows are anonymised (defaults derived from identifiers).
    anonymise: dict[str, str] = {}
    #: why rows are kept (required with ``action = "retain"``); shown in outcomes.
    reason: str | None = None
    #: boolean column set to true by ``restrict``.
    restrict_column: str | None = None
    #: boolean column that is true on rows under a legal hold: nothing of a person with
    #: such a row is erased in this system until it is false (RETAINED, named; the host
    #: checks again every ``hold_recheck_hours`` while the request is open).
    hold_column: str | None = None
    #: column(s) holding the postal address, which a rectification corrects (Art. 16);
    #: email, phone and name are corrected in their ``identifiers`` columns.
    address: str | list[str] | None = None
    #: what stops each kind of processing an objection names (Art. 21): scope
    #: (``marketing``, ``profiling``) -> {column = value set when the person objects}.
    opt_out: dict[ObjectionScope, dict[str, str | int | float | bool | None]] = {}
    #: parent links the schema lacks (foreign keys are reflected automatically).
    relations: list[Relation] = []
    #: rows still referenced by rows of other subjects (through a reverse link): kept and
    #: reported (``keep``) or anonymised with this table's rules (``anonymise``).
    shared: Literal["keep", "anonymise"] = "keep"
    #: the parent table whose link says whose rows these are, when several parents link
    #: here (orders -> customer and -> payment_card: ``owner = "customer"``). Rows a subject
    #: reaches only through another link are someone else's: reported, never erased.
    owner: str | None = None

    @field_validator("anonymise")
    @classmethod
    def _rules(cls, value: dict[str, str]) -> dict[str, str]:
        for column, text in value.items():
            try:
                parse_rule(text)
            except ValueError as exc:
                raise ValueError(f"column {column}: {exc}") from None
        return value

    @field_validator("opt_out")
    @classmethod
    def _opt_out(cls, value: dict[ObjectionScope, dict[str, object]]
                 ) -> dict[ObjectionScope, dict[str, object]]:
        for scope, columns in value.items():
            if not columns:
                raise ValueError(f"{scope.value}: name the column(s) and the value(s) that "
                                 'stop it, e.g. { marketing_ok = false }')
        return value

    @model_validator(mode="after")
    def _retain_reason(self) -> TableSettings:
        if self.action == "retain" and not self.reason:
            raise ValueError('action "retain" needs a reason (e.g. "tax law: 10 years")')
        if self.action == "anonymise" and not self.anonymise:
            # Without rules only link columns would change: the row would keep every value.
            raise ValueError(
                'action "anonymise" needs an anonymise rule for each personal column '
                '(or "keep:<reason>"); `erasure discover` proposes them')
        if self.shared == "anonymise" and not self.rules():
            raise ValueError('shared = "anonymise" needs anonymise rules that change something')
        return self

    def address_columns(self) -> list[str]:
        """The postal address columns (``address``), in config order."""
        return [] if self.address is None else (
            [self.address] if isinstance(self.address, str) else list(self.address))

    def identifier_columns(self) -> list[tuple[IdentifierType, str]]:
        """(identifier type, column) pairs in config order."""
        out = []
        for itype, cols in self.identifiers.items():
            for col in [cols] if isinstance(cols, str) else cols:
                out.append((itype, col))
        return out

    def rules(self) -> dict[str, AnonymiseRule]:
        """The explicitly configured anonymisation rules that change a value, parsed."""
        parsed = {col: parse_rule(text) for col, text in self.anonymise.items()}
        return {col: r for col, r in parsed.items() if r.kind != "keep"}

    def kept(self) -> dict[str, str]:
        """Columns a ``keep:<reason>`` rule leaves as they are, with the reason."""
        parsed = {col: parse_rule(text) for col, text in self.anonymise.items()}
        return {col: r.value or "" for col, r in parsed.items() if r.kind == "keep"}


_SCHEMA_NAME = re.compile(r"^[^\x00-\x1f]{1,128}$")


class SqlSettings(ConnectorSettings):
    """Settings of a ``sql`` system.

    ``url`` is an SQLAlchemy URL (``postgresql+psycopg://``, ``mysql+pymysql://``,
    ``sqlite:///path``); give it as ``{ env = "NAME" }`` when it holds a password.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    url: SecretStr
    #: database schema (PostgreSQL) or database (MySQL) holding the tables; default: the URL's.
    db_schema: str | None = Field(default=None, alias="schema")
    #: key for ``hash`` anonymisation (HMAC-SHA256); required only if a rule uses it.
    hash_key: SecretStr | None = None
    #: the mapped tables, by table name; empty only while ``erasure discover`` proposes them.
    tables: dict[str, TableSettings] = {}
    #: schemas (MySQL: databases) discover reads and the deep scan searches besides
    #: ``schema``; default: discover reads every schema it can, the scan only ``schema``.
    scan_schemas: list[str] | None = None
    #: the deep scan (verification beyond the mapping).
    deep_scan: DeepScanSettings = DeepScanSettings()
    #: the deep scan reads phones written in national form (``0113 000 0001``) as this
    #: region's; unset: ``[erasure] default_phone_region``, or international forms only
    phone_region: PhoneRegion | None = None
    #: bound parameters per statement; default per driver (SQLite 999, others 30000).
    max_params: int | None = Field(default=None, ge=10, le=65535)
    #: months rows of tables with a ``retention_column`` are kept (``erasure sweep``);
    #: 0: no sweep.
    retention_months: int = Field(default=0, ge=0)

    @field_validator("db_schema")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEMA_NAME.match(value):
            raise ValueError("invalid schema name")
        return value

    @field_validator("scan_schemas")
    @classmethod
    def _schemas(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if not _SCHEMA_NAME.match(name):
                raise ValueError("invalid schema name")
        return value

    @model_validator(mode="after")
    def _something_mapped(self) -> SqlSettings:
        if not self.tables and _purpose() != "discover":
            raise ValueError(
                "no tables mapped: run `erasure discover SYSTEM --write FILE`, review it and "
                "put its [systems.SYSTEM] section in the config")
        return self

    @model_validator(mode="after")
    def _hash_key_needed(self) -> SqlSettings:
        for name, table in self.tables.items():
            if any(r.kind == "hash" for r in table.rules().values()) and self.hash_key is None:
                raise ValueError(f'table {name}: "hash" anonymisation needs hash_key')
            for rel in table.relations:
                if rel.parent not in self.tables:
                    raise ValueError(f"table {name}: relation parent {rel.parent} is not mapped")
            if table.owner is not None and table.owner not in self.tables:
                raise ValueError(f"table {name}: owner {table.owner} is not mapped")
        return self
