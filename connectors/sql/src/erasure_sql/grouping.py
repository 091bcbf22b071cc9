"""Findings handed back to the connector, grouped by table and decoded to typed primary keys."""

from __future__ import annotations

from collections.abc import Sequence

from erasure import Finding

from .mapping import Mapping
from .values import NO_MATCH, Key, coerce, decode_ref, json_str

__all__ = ["Group", "group_findings", "int_ref_heads"]


class Group:
    """The findings of one table, each beside the primary key of its row (same order).

    Two parallel lists rather than a dict of lists: a batch holds thousands of rows, nearly
    all with one finding each, and delete only needs the distinct keys and the pairs.
    """

    __slots__ = ("findings", "pks")

    def __init__(self) -> None:
        self.pks: list[Key] = []
        self.findings: list[Finding] = []

    def keys(self) -> list[Key]:
        """The distinct primary keys, in first-seen order."""
        return list(dict.fromkeys(self.pks))

    def by_pk(self) -> dict[Key, list[Finding]]:
        """Findings by primary key."""
        out: dict[Key, list[Finding]] = {}
        for pk, f in zip(self.pks, self.findings, strict=True):
            out.setdefault(pk, []).append(f)
        return out


def int_ref_heads(m: Mapping) -> dict[str, str]:
    """``'["table"'`` -> table, for tables whose key is one integer column.

    Their refs (``["table",[123]]``) are the bulk of every batch and are decoded with string
    operations; anything else goes through the JSON decoder.
    """
    return {f"[{json_str(name)}": name for name, tm in m.tables.items() if tm.pk_types == (int,)}


def group_findings(
    m: Mapping, heads: dict[str, str], memo: dict[str, tuple[str, Key]],
    findings: Sequence[Finding],
) -> tuple[dict[str, Group], list[Finding]]:
    """Findings by table; the second list holds references not in this mapping.

    ``memo`` holds refs this connector handed out, decoded (the usual case in one process).
    """
    groups: dict[str, Group] = {}
    bad: list[Finding] = []
    for f in findings:
        known = memo.get(f.ref)
        if known is not None:
            tname, pk = known
            g = groups.get(tname)
            if g is None:
                g = groups[tname] = Group()
            g.pks.append(pk)
            g.findings.append(f)
            continue
        head, _sep, tail = f.ref.rpartition(",[")
        tname = heads.get(head)
        digits = tail[:-2]
        if (
            tname is not None and tail.endswith("]]") and digits.isascii() and digits.isdigit()
            and (digits[0] != "0" or digits == "0")
        ):
            pk: Key = (int(digits),)
        else:
            decoded = _decode(m, f.ref)
            if decoded is None:
                bad.append(f)
                continue
            tname, pk = decoded
        g = groups.get(tname)
        if g is None:
            g = groups[tname] = Group()
        g.pks.append(pk)
        g.findings.append(f)
    return groups, bad


def _decode(m: Mapping, ref: str) -> tuple[str, Key] | None:
    decoded = decode_ref(ref)
    tm = m.tables.get(decoded[0]) if decoded else None
    if decoded is None or tm is None or len(decoded[1]) != len(tm.pk):
        return None
    pk = decoded[1]
    if not all(type(v) is t for v, t in zip(pk, tm.pk_types, strict=True)):
        pk = tuple(coerce(c, v) for c, v in zip(tm.pk_cols(), pk, strict=True))
        if any(v is NO_MATCH or v is None for v in pk):
            return None
    return tm.name, pk
