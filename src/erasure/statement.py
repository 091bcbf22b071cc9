"""The Art. 15 statement: what a person who asks for access must be told besides their data.

GDPR Art. 15(1)-(2) and 13-14: per system, the purposes of the processing, its legal basis,
the categories of data, the recipients, how long the data is kept and the criteria for it,
where it came from and where it is stored (with the safeguards when that is outside the
EEA); for the controller, its name, the data protection officer's contact, the person's
rights and the right to complain to a supervisory authority. All of it comes from config::

    [controller]
    name = "Example Telecom Ltd"
    dpo = "dpo@example.com"
    supervisory_authority = "Information Commissioner's Office, ico.org.uk"

    [systems.crm.statement]
    purposes = ["customer service", "billing"]
    legal_basis = "contract (Art. 6(1)(b))"
    ...
    labels = { phone = "Phone number" }   # human labels of the package's fields
    portable = ["email", "phone"]          # Art. 20: fields the person provided or generated

A missing field is a ``config check`` warning naming ``systems.X.statement.KEY``, never an
error: the access package still goes out, and says which information is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "DEFAULT_RIGHTS", "ControllerStatement", "SystemStatement", "parse_controller",
    "parse_statement", "statement_warnings",
]

#: The rights a person has (Arts. 15-22), as the package lists them unless config says more.
DEFAULT_RIGHTS = (
    "access to your data (Art. 15)",
    "rectification of inaccurate data (Art. 16)",
    "erasure (Art. 17)",
    "restriction of processing (Art. 18)",
    "data portability (Art. 20)",
    "objection to processing, at any time to direct marketing (Art. 21)",
    "withdrawal of consent at any time, where processing is based on consent (Art. 7(3))",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ControllerStatement(_Section):
    """The ``[controller]`` section: who is responsible, whom to ask, where to complain."""

    name: str | None = None
    #: how to reach the data protection officer (Art. 37-38)
    dpo: str | None = None
    #: the supervisory authority a complaint may go to (Art. 77)
    supervisory_authority: str | None = None
    rights: tuple[str, ...] = DEFAULT_RIGHTS

    #: what the package shows for each field, in order
    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("name", "Controller"),
        ("dpo", "Data protection officer"),
        ("rights", "Your rights"),
        ("supervisory_authority", "Right to complain to a supervisory authority"),
    )


class SystemStatement(_Section):
    """A ``[systems.X.statement]`` table: what the person is told about one system."""

    purposes: tuple[str, ...] = ()
    legal_basis: str | None = None
    categories: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    retention: str | None = None
    retention_criteria: str | None = None
    source: str | None = None
    storage: str | None = None
    outside_eea: bool = False
    #: required when ``outside_eea``: adequacy decision, standard contractual clauses...
    safeguards: str | None = None
    #: field name -> the label the package shows instead of it
    labels: Mapping[str, str] = Field(default_factory=dict)
    #: Art. 20: the fields the person provided or that their use generated (what a
    #: portability package holds); empty: every field
    portable: tuple[str, ...] = ()

    FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("purposes", "Purposes of the processing"),
        ("legal_basis", "Legal basis"),
        ("categories", "Categories of personal data"),
        ("recipients", "Recipients"),
        ("retention", "How long it is kept"),
        ("retention_criteria", "Criteria for that period"),
        ("source", "Where the data came from"),
        ("storage", "Where it is stored"),
        ("safeguards", "Safeguards for storage outside the EEA"),
    )

    def missing(self) -> list[str]:
        """The statement fields config leaves empty (safeguards only outside the EEA)."""
        return [key for key, _label in self.FIELDS
                if not getattr(self, key) and (key != "safeguards" or self.outside_eea)]

    def shown(self) -> list[tuple[str, str, str | list[str] | None]]:
        """(key, label, value) of the fields the package shows; None where missing."""
        out = []
        for key, label in self.FIELDS:
            if key == "safeguards" and not self.outside_eea:
                continue
            value = getattr(self, key)
            out.append((key, label, list(value) if isinstance(value, tuple) else value))
        return out


def _problems(where: str, exc: ValidationError) -> list[str]:
    return [f"{where}.{'.'.join(str(p) for p in e['loc'])}: "
            f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()]


def parse_controller(raw: Any, problems: list[str]) -> ControllerStatement:
    """The ``[controller]`` section (problems appended, an empty statement returned)."""
    try:
        return ControllerStatement.model_validate(raw or {})
    except ValidationError as exc:
        problems.extend(_problems("controller", exc))
        return ControllerStatement()


def parse_statement(system: str, raw: Any, problems: list[str]) -> SystemStatement:
    """A system's ``statement`` table (problems appended, an empty statement returned)."""
    try:
        return SystemStatement.model_validate(raw or {})
    except ValidationError as exc:
        problems.extend(_problems(f"systems.{system}.statement", exc))
        return SystemStatement()


def statement_warnings(controller: ControllerStatement,
                       statements: Mapping[str, SystemStatement]) -> list[str]:
    """One line per statement field config leaves empty, naming its key."""
    lines = [f"controller.{key}: missing (the access package's Art. 15 statement)"
             for key, _label in ControllerStatement.FIELDS if not getattr(controller, key)]
    for system, st in sorted(statements.items()):
        lines += [f"systems.{system}.statement.{key}: missing (the access package's Art. 15 "
                  "statement)" for key in st.missing()]
    return lines


def package_statement(controller: ControllerStatement,
                      statements: Mapping[str, SystemStatement],
                      systems: list[str]) -> dict[str, Any]:
    """The statement as the package's JSON holds it (``statement`` in package.json)."""
    return {
        "controller": {key: (list(v) if isinstance(v := getattr(controller, key), tuple)
                             else v) for key, _label in ControllerStatement.FIELDS},
        "systems": {name: {key: value for key, _label, value in
                           statements.get(name, SystemStatement()).shown()}
                    for name in sorted(systems)},
    }
