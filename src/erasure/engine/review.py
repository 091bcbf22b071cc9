"""Review items: findings the host may not act on by itself, why each is weak, and an
operator's decision on each (``erasure review R --include/--exclude``).

An item is left for review when none of the identifiers it matched is strong
(:func:`.expansion.strong_fixpoint`): a phone or a name (types outside
``strong_identifiers``), an id learnt from an item that was itself matched weakly, or a row
the connector reached only through someone else's link (no identifier matched at all).
Decisions are keyed by the item's hash (the receipt's ``review_items``), never by its
reference. Included items are acted on like strong ones; excluded ones are left as they
are; items left undecided when the request ends make their system's outcome ``partial``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import UsageError
from ..models import Finding, Identifier, IdentifierType
from .tasks import Stage, TaskWork
from .work import Decision, StepContext, Work

__all__ = [
    "EXCLUDE", "INCLUDE", "NOT_OWNED", "ReviewItem", "apply_decisions", "plan_hash",
    "review_items", "weak_values",
]

INCLUDE = "include"
EXCLUDE = "exclude"
#: the one finding of a system that can only be told (engine/find.py): never reviewed
_NOTICE = "notice"
#: the last of ``Finding.fields`` of a row a connector reached only through a link that is
#: not its owner's (the sql connector's ``SHARED_FIELD``): someone else's row
NOT_OWNED = "(shared: not the owner's link)"
#: why such a row cannot be included
NOT_INCLUDABLE = ("the connector neither erases nor exports a row that is not the "
                  "subject's; exclude it or leave it, undecided it does not make its system "
                  "partial")


@dataclass(frozen=True)
class ReviewItem:
    """One item waiting for review, as ``erasure review`` shows it.

    ``item`` (its keyed hash) and ``ref`` (``system:N``) are no personal data; ``matched``,
    ``location`` and ``related`` are the item's values, shown only while the request is
    open (they come from its encrypted state).
    """

    system: str
    index: int
    item: str
    kind: str
    #: why it is weak, one reason a line (no values)
    reasons: tuple[str, ...]
    #: (type, value, provenance: "given" or "learnt") of each identifier it matched
    matched: tuple[tuple[str, str, str], ...] = ()
    #: where it is, when its reference says more than the item's hash (an S3 row)
    location: str | None = None
    fields: tuple[str, ...] = ()
    #: what else the item holds: (type, value)
    related: tuple[tuple[str, str], ...] = ()
    decision: Decision | None = None
    #: a row the connector reached only through someone else's link: it says the row is
    #: not the subject's and never acts on it, so it cannot be included
    not_owned: bool = False

    @property
    def ref(self) -> str:
        """The short stable reference an operator gives to ``--include``/``--exclude``."""
        return f"{self.system}:{self.index}"


def _strong(ctx: StepContext, w: Work, name: str, f: Finding) -> bool:
    spaces = ctx.config.id_spaces
    return any(w.known.is_strong(spaces.scope(m, name)) for m in f.matched)


def review_refs(ctx: StepContext, w: Work, name: str) -> list[tuple[str, str]]:
    """(item hash, ref) of the system's review items, in hash order (the order of the
    receipt's ``review_items``, and the ``N`` of ``system:N``)."""
    t = w.tasks[name]
    digest = ctx.keys.digest
    return sorted((digest(name, ref), ref) for ref, f in t.data.findings.items()
                  if ref != _NOTICE and not _strong(ctx, w, name, f))


def apply_decisions(ctx: StepContext, works: Iterable[Work]) -> None:
    """Act on included items like strong ones, and count each found task's review items
    nobody decided (``summary.undecided``: the system ends ``partial`` while any is).

    Called after find and before the approval gate, so the plan approved is the plan
    acted on. Idempotent: included items only ever join ``actionable``."""
    for w in works:
        for name, t in w.tasks.items():
            if t.stage is not Stage.FOUND or name not in ctx.systems:
                continue
            if not w.decisions.get(name) and len(t.data.findings) == len(t.data.actionable):
                t.summary.undecided = 0  # nothing for review: no hash computed
                continue
            decided = w.decisions.get(name, {})
            if not decided:
                # No decision: the review items are exactly the findings not acted on (no
                # hash needed: a batch of large tasks pays nothing for review it lacks).
                t.summary.undecided = sum(
                    1 for ref, f in t.data.findings.items()
                    if ref not in t.data.actionable and ref != _NOTICE and not _not_owned(f))
                continue
            undecided = 0
            for item, ref in review_refs(ctx, w, name):
                d = decided.get(item)
                if d is None:
                    undecided += 0 if _not_owned(t.data.findings[ref]) else 1
                elif d.decision == INCLUDE:
                    t.data.actionable.add(ref)
            t.summary.undecided = undecided
            t.summary.review = len(t.data.findings) - len(t.data.actionable)


def _not_owned(f: Finding) -> bool:
    """A row the connector reached only through someone else's link and says is not the
    subject's (listed for review; undecided, it does not make its system partial)."""
    return not f.matched and bool(f.fields) and f.fields[-1] == NOT_OWNED


def plan_hash(ctx: StepContext, w: Work) -> str:
    """A keyed hash of what the request would act on: (system, action, item) triples,
    and the items excluded by an operator (a plan with no exclusion hashes as before)."""
    parts = sorted(
        f"{name}\x1f{w.rule(ctx, name).action}\x1f{ref}"
        for name, t in w.tasks.items() if name in ctx.systems
        for ref in t.data.actionable)
    excluded = sorted(
        f"{name}\x1fexclude\x1f{item}"
        for name, decided in w.decisions.items() if name in ctx.systems
        for item, d in decided.items() if d.decision == EXCLUDE)
    return ctx.keys.digest("plan", *parts, *excluded)


def weak_values(ctx: StepContext, w: Work) -> set[tuple[str, str]]:
    """(type, value) of the global identifiers of a type outside ``strong_identifiers``
    that matched review items: the values worth comparing with other open requests."""
    strong_types = set(ctx.host.strong_identifiers)
    out: set[tuple[str, str]] = set()
    for name, t in w.tasks.items():
        if name not in ctx.systems:
            continue
        for _item, ref in review_refs(ctx, w, name):
            out.update((m.type.value, m.value) for m in t.data.findings[ref].matched
                       if m.type not in strong_types)
    return out


def review_items(ctx: StepContext, w: Work, *,
                 shared_with_others: Sequence[tuple[str, str]] = ()) -> list[ReviewItem]:
    """Every item of ``w`` waiting for review, per system, with why it is weak.

    ``shared_with_others``: (type, value) of weak identifiers another open request's
    subject has too (the caller compares; the engine sees one request)."""
    others = set(shared_with_others)
    uses = _holders(w)
    out = []
    for name in sorted(w.tasks):
        if name not in ctx.systems:
            continue
        t = w.tasks[name]
        decided = w.decisions.get(name, {})
        for n, (item, ref) in enumerate(review_refs(ctx, w, name), 1):
            f = t.data.findings[ref]
            out.append(ReviewItem(
                system=name, index=n, item=item, kind=f.kind,
                reasons=tuple(_reasons(ctx, w, name, f, uses, others)),
                matched=tuple((m.type.value, m.value, _provenance(ctx, w, name, m.type,
                                                                   m.value))
                              for m in f.matched),
                location=_location(ctx, name, ref),
                fields=tuple(x for x in f.fields if x != NOT_OWNED),
                related=tuple((r.type.value, r.value) for r in f.related),
                decision=decided.get(item), not_owned=_not_owned(f)))
    return out


def _holders(w: Work) -> Counter[tuple[str, str]]:
    """How many records of the request's findings hold each value, in every system.

    A record holds what the connector says it holds (``Finding.related``): a row reached
    through its owner's link (an order of the customer) matched the customer's phone
    without holding it, and is not counted. A system whose connector says of no item what
    it holds counts the items that matched the value."""
    uses: Counter[tuple[str, str]] = Counter()
    for t in w.tasks.values():
        findings = [f for ref, f in t.data.findings.items() if ref != _NOTICE]
        tells = any(f.related for f in findings)
        for f in findings:
            held = {(r.type.value, r.value) for r in f.related}
            uses.update({(m.type.value, m.value) for m in f.matched
                         if not tells or (m.type.value, m.value) in held})
    return uses


def _provenance(ctx: StepContext, w: Work, name: str, itype: IdentifierType,
                value: str) -> str:
    """"given" when the identifier came with the request, "learnt" when find saw it."""
    scoped = ctx.config.id_spaces.scope(Identifier(itype, value), name)
    return "given" if scoped in w.known.given else "learnt"


def _reasons(ctx: StepContext, w: Work, name: str, f: Finding,
             uses: Counter[tuple[str, str]], others: set[tuple[str, str]]) -> list[str]:
    """Why nothing the item matched lets the host act on it, without values."""
    if not f.matched:
        if f.fields and f.fields[-1] == NOT_OWNED:
            links = ", ".join(f.fields[:-1]) or "a link"
            return [f"reached only through {links}, a link that is not its owner's: "
                    f"another person's row; it cannot be included ({NOT_INCLUDABLE})"]
        return ["matched none of the subject's identifiers (listed by the connector for "
                "review)"]
    strong_types = set(ctx.host.strong_identifiers)
    spaces = ctx.config.id_spaces
    out = []
    for m in f.matched:
        t = m.type.value
        if m.type not in strong_types:
            if m.type is IdentifierType.NAME:
                out.append("a name only: names are not unique")
            else:
                out.append(f"a {t} only: {t} is not a strong identifier type "
                           "([erasure] strong_identifiers)")
            if (t, m.value) in others:
                out.append(f"shared {t}: the subject of another open request has it too")
            if uses[(t, m.value)] > 1:
                out.append(f"shared {t}: {uses[(t, m.value)]} records of this request's "
                           "findings hold it")
        else:
            space = spaces.scope(m, name).space
            where = f" of id space {space}" if space else ""
            out.append(f"{t}{where} not given in the request: seen only on items that "
                       "were themselves matched weakly")
    return list(dict.fromkeys(out))


def _location(ctx: StepContext, name: str, ref: str) -> str | None:
    """Where an item is when its reference names a place inside an object: a row of a
    shared S3 file (``["bucket", "key", "row", "<sha256 of the line>"]``)."""
    if ctx.systems[name].config.connector != "s3":
        return None
    try:
        parts = json.loads(ref)
    except ValueError:
        return None
    if isinstance(parts, list) and len(parts) == 4 and parts[2] == "row":
        return (f"s3://{parts[0]}/{parts[1]}, the line whose SHA-256 (without its line "
                f"end) starts {parts[3]}")
    if isinstance(parts, list) and len(parts) == 2:
        return f"s3://{parts[0]}/{parts[1]} (the object, every version)"
    return None


@dataclass
class Resolved:
    """ITEM references resolved against a request's review items."""

    chosen: dict[tuple[str, str], str] = field(default_factory=dict)  # (system, item) -> d


def resolve(items: Sequence[ReviewItem], refs: Sequence[str], decision: str,
            out: Resolved) -> None:
    """Resolve ``refs`` (``system:N``, ``system:HASHPREFIX``, ``HASHPREFIX`` or ``all``)
    to items; raises UsageError (one line, no value) on the first that names none."""
    for raw in refs:
        ref = raw.strip()
        if ref == "all":
            # every item that can be: another person's row is never included
            hits = [i for i in items if not (decision == INCLUDE and i.not_owned)]
        else:
            system, sep, rest = ref.rpartition(":")
            pool = [i for i in items if i.system == system] if sep else list(items)
            if sep and not pool:
                raise UsageError(f"{ref!r}: no review items in a system named {system!r}; "
                                 "nothing was recorded")
            key = rest if sep else ref
            hits = [i for i in pool if i.index == int(key)] if sep and key.isdigit() else []
            if not hits and len(key) >= 6 and all(c in "0123456789abcdef"
                                                  for c in key.lower()):
                # a hash prefix may be all digits (7302686...): not only SYSTEM:N
                hits = [i for i in pool if i.item.startswith(key.lower())]
            if len(hits) > 1:
                raise UsageError(f"{ref!r} names {len(hits)} review items: give more of the "
                                 "hash; nothing was recorded")
            if not hits:
                raise UsageError(f"{ref!r} names no review item of this request (SYSTEM:N or "
                                 "a hash prefix of 6+ hex digits, as `erasure review` shows); "
                                 "nothing was recorded")
        for i in hits:
            if decision == INCLUDE and i.not_owned:
                raise UsageError(f"{i.ref} cannot be included: it is a row reached only "
                                 "through a link that is not its owner's, another person's "
                                 f"row ({NOT_INCLUDABLE}); nothing was recorded")
            key2 = (i.system, i.item)
            if out.chosen.get(key2, decision) != decision:
                raise UsageError(f"{i.ref} is both included and excluded; nothing was "
                                 "recorded")
            out.chosen[key2] = decision


def decided_on(decisions: Iterable[dict[str, object]]) -> dict[str, dict[str, Decision]]:
    """Ledger rows of decisions as the engine reads them: system -> item hash -> decision
    (the last one recorded wins)."""
    out: dict[str, dict[str, Decision]] = {}
    for r in decisions:
        at = r["decided_at"]
        out.setdefault(str(r["system"]), {})[str(r["item"])] = Decision(
            decision=str(r["decision"]), by=str(r["decided_by"]),
            at=at.isoformat(timespec="seconds") if isinstance(at, datetime) else str(at),
            reason=None if r.get("reason") is None else str(r["reason"]))
    return out


def receipt_decisions(ctx: StepContext, w: Work, t: TaskWork) -> list[dict[str, object]]:
    """A receipt's ``review_decisions``: item hash, decision, by, when, the reason's keyed
    hash; of the items the system's findings hold (no values)."""
    from ..freetext import reason_hash

    decided = w.decisions.get(t.system)
    if not decided:
        return []
    digest = ctx.keys.digest
    held = {digest(t.system, ref) for ref in t.data.findings}
    return [{"item": item, "decision": d.decision, "by": d.by, "at": d.at,
             "reason": reason_hash(digest, w.row.id, "review", d.reason)}
            for item, d in sorted(decided.items()) if item in held]
