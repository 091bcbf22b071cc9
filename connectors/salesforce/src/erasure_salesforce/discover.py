"""Propose an ``objects`` mapping from describe: every field of type email or phone (and
people's name fields), per object. Only describe is read, never a record."""

from __future__ import annotations

from typing import Any

from .client import Api
from .settings import DEFAULT_OBJECTS

__all__ = ["describe_fields", "discover"]

_PEOPLE = ("Contact", "Lead", "Account")


def describe_fields(api: Api, sobject: str) -> list[dict[str, Any]]:
    """The fields of ``sobject`` as describe lists them."""
    result = api.json("GET", f"sobjects/{sobject}/describe", f"describe {sobject}")
    return list((result or {}).get("fields", []))


def discover(api: Api, system: str) -> str:
    """TOML text of ``[systems.<system>.objects.<Object>]`` sections for review.

    Described: the standard objects the default mapping knows and every custom object
    (``__c``); describing each of an org's hundreds of standard objects would cost as many
    calls and find system tables."""
    listing = api.json("GET", "sobjects", "describe global") or {}
    names = {o["name"] for o in listing.get("sobjects", []) if o.get("queryable")}
    wanted = [n for n in names if n in DEFAULT_OBJECTS or n in _PEOPLE or n.endswith("__c")]
    lines = [f"# Proposed object mapping for system {system}: review before use.",
             "# From describe only: field names and types, no record was read."]
    for name in sorted(wanted):
        fields = describe_fields(api, name)
        email = [f["name"] for f in fields if f.get("type") == "email"]
        phone = [f["name"] for f in fields if f.get("type") == "phone"]
        links = [f["name"] for f in fields if f.get("type") == "reference"
                 and f["name"] in ("ContactId", "LeadId", "WhoId", "ParentId")]
        if not (email or phone or links):
            continue
        default = DEFAULT_OBJECTS.get(name)
        lines.append(f"\n[systems.{system}.objects.{name}]")
        if default is not None and default.search or name in _PEOPLE:
            lines.append("search = true")
            if any(f["name"] == "Name" for f in fields):
                lines.append('name = ["Name"]')
        if email:
            lines.append(f"email = {_toml_list(email)}")
        if phone:
            lines.append(f"phone = {_toml_list(phone)}")
        if links:
            lines.append(f"links = {_toml_list(links)}")
        if any(f["name"] == "IndividualId" for f in fields):
            lines.append('individual = "IndividualId"')
    return "\n".join(lines) + "\n"


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"
