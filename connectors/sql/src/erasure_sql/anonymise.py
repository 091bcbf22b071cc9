"""Anonymisation strategies: the value each rule gives a column of one row."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from .settings import AnonymiseRule

__all__ = ["HASH_PREFIX", "pending_changes", "placeholder", "target_value"]

#: Prefix of keyed-hash values, so a second run recognises them and leaves them alone.
HASH_PREFIX = "anon:"


def placeholder(pk: Sequence[Any]) -> str:
    """A unique, obviously fake value for one row: ``erased+<pk>@invalid``."""
    return "erased+" + "-".join(str(v) for v in pk) + "@invalid"


def keyed_hash(key: bytes, value: Any) -> str:
    """HMAC-SHA256 of the old value, 128 bits, hex, with :data:`HASH_PREFIX`."""
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    return HASH_PREFIX + digest


def target_value(rule: AnonymiseRule, current: Any, pk: Sequence[Any], key: bytes | None) -> Any:
    """The anonymised value of a column whose current value is ``current``."""
    if rule.kind == "null":
        return None
    if rule.kind == "fixed":
        return rule.value
    if rule.kind == "placeholder":
        return placeholder(pk)
    # hash
    if current is None or (isinstance(current, str) and current.startswith(HASH_PREFIX)):
        return current
    if key is None:  # validated in settings; defensive
        raise ValueError("hash_key missing")
    return keyed_hash(key, current)


def pending_changes(
    rules: Mapping[str, AnonymiseRule], row: Mapping[Any, Any], pk: Sequence[Any],
    key: bytes | None,
) -> dict[str, Any]:
    """The column updates a row still needs (empty when it is already anonymised)."""
    changes = {}
    for col, rule in rules.items():
        current = row[col]
        target = target_value(rule, current, pk, key)
        if current != target:
            changes[col] = target
    return changes
