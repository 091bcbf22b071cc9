"""Settings of a ``sql`` system: the database URL and the table mapping."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erasure import ConnectorSettings, IdentifierType

__all__ = ["AnonymiseRule", "Relation", "SqlSettings", "TableSettings", "parse_rule"]

_FIXED = "fixed:"
_STRATEGIES = ("null", "placeholder", "hash")


class AnonymiseRule(BaseModel):
    """One anonymisation strategy for one column, parsed from its TOML string.

    ``"null"``, ``"placeholder"`` (``erased+<pk>@invalid``, unique per row), ``"hash"``
    (keyed HMAC-SHA256 of the old value, needs ``hash_key``) or ``"fixed:<text>"``.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["null", "placeholder", "hash", "fixed"]
    value: str | None = None


def parse_rule(text: str) -> AnonymiseRule:
    """Parse ``"null"``, ``"placeholder"``, ``"hash"`` or ``"fixed:<text>"``."""
    if text.startswith(_FIXED):
        return AnonymiseRule(kind="fixed", value=text[len(_FIXED):])
    if text in _STRATEGIES:
        return AnonymiseRule(kind=text)  # type: ignore[arg-type]
    raise ValueError('must be "null", "placeholder", "hash" or "fixed:<text>"')


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Relation(_Strict):
    """A link to a parent table the schema does not declare as a foreign key.

    ``columns`` maps this table's columns to the parent's: ``{ customer_email = "email" }``.
    """

    parent: str
    columns: dict[str, str] = Field(min_length=1)


class TableSettings(_Strict):
    """How one table holds personal data and what an erasure does to its rows."""

    #: identifier type -> column (or columns) holding it, searched with exact equality.
    identifiers: dict[IdentifierType, str | list[str]] = {}
    #: what ``delete`` does to this table's rows.
    action: Literal["delete", "anonymise", "retain"] = "delete"
    #: column -> strategy, used when rows are anonymised (defaults derived from identifiers).
    anonymise: dict[str, str] = {}
    #: why rows are kept (required with ``action = "retain"``); shown in outcomes.
    reason: str | None = None
    #: boolean column set to true by ``restrict``.
    restrict_column: str | None = None
    #: parent links the schema lacks (foreign keys are reflected automatically).
    relations: list[Relation] = []

    @field_validator("anonymise")
    @classmethod
    def _rules(cls, value: dict[str, str]) -> dict[str, str]:
        for column, text in value.items():
            try:
                parse_rule(text)
            except ValueError as exc:
                raise ValueError(f"column {column}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _retain_reason(self) -> TableSettings:
        if self.action == "retain" and not self.reason:
            raise ValueError('action "retain" needs a reason (e.g. "tax law: 10 years")')
        return self

    def identifier_columns(self) -> list[tuple[IdentifierType, str]]:
        """(identifier type, column) pairs in config order."""
        out = []
        for itype, cols in self.identifiers.items():
            for col in [cols] if isinstance(cols, str) else cols:
                out.append((itype, col))
        return out

    def rules(self) -> dict[str, AnonymiseRule]:
        """The explicitly configured anonymisation rules, parsed."""
        return {col: parse_rule(text) for col, text in self.anonymise.items()}


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
    #: the mapped tables, by table name.
    tables: dict[str, TableSettings] = Field(min_length=1)
    #: bound parameters per statement; default per driver (SQLite 999, others 30000).
    max_params: int | None = Field(default=None, ge=10, le=65535)

    @field_validator("db_schema")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEMA_NAME.match(value):
            raise ValueError("invalid schema name")
        return value

    @model_validator(mode="after")
    def _hash_key_needed(self) -> SqlSettings:
        for name, table in self.tables.items():
            if any(r.kind == "hash" for r in table.rules().values()) and self.hash_key is None:
                raise ValueError(f'table {name}: "hash" anonymisation needs hash_key')
            for rel in table.relations:
                if rel.parent not in self.tables:
                    raise ValueError(f"table {name}: relation parent {rel.parent} is not mapped")
        return self
