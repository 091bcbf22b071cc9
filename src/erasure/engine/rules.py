"""What each request type does in a system under each policy, as data.

One table answers every question the engine asks about a request type: which action runs
after find, whether it waits for approval, whether the result is verified by finding
again, whether a package is written, and what the outcome is when nothing is to be done.
A new request type or policy is one entry here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..models import Action, Capability, ItemStatus, Outcome, Policy, RequestType

__all__ = [
    "NOT_ACTED", "OK_OUTCOMES", "OUTCOME_ORDER", "UNDECIDED_PARTIAL", "Rule", "capability_for",
    "for_request", "rule_for", "undecided", "worst",
]


@dataclass(frozen=True)
class Rule:
    """What one request type does in one system."""

    #: the action after find; None: find only (or kept under a legal duty)
    action: Action | None
    #: stops for a person's approval when ``require_approval`` is set
    approval: bool = False
    #: find again after acting: anything left is residue
    verify: bool = False
    #: write an access / portability package from the exported records
    package: bool = False
    #: the outcome when the rule has no action
    idle_outcome: Outcome = Outcome.COMPLETED
    #: the request is refused unless the subject's identity was verified (or the check
    #: overridden with a reason): acting on an unchecked claim could be an attack
    verified_identity: bool = False
    #: verification reads the acted items back by id (where the connector can): only a
    #: deleted item must be gone; an anonymised or corrected one still exists, by design
    read_back: bool = False
    #: a system that cannot be searched is told of the request (a notice to a processor)
    notice: bool = True
    #: once the request completes, the person's access packages are deleted at once
    drops_packages: bool = False


#: A package is a disclosure, and a restriction an act on someone's data: both need the
#: identity checked first (Art. 12(6)).
_EXPORT = Rule(Action.EXPORT, package=True, notice=False, verified_identity=True)
_RESTRICT = Rule(Action.RESTRICT, approval=True, verified_identity=True)
#: Verified by reading the items back: the new value there, the old ones gone.
_RECTIFY = Rule(Action.RECTIFY, approval=True, verify=True, verified_identity=True)
#: No approval: an objection to direct marketing must be honoured whenever it is made
#: (Art. 21(3)), and it changes no data, only what the system does with it.
_OBJECT = Rule(Action.OBJECT)

#: Access and portability always export: a legal hold does not take away the right of
#: access. Restriction restricts whatever the policy, since it keeps the data;
#: rectification and objection likewise (data kept under a legal duty must still be
#: accurate, and kept data is not for marketing).
RULES: dict[tuple[RequestType, Policy], Rule] = {
    **{(RequestType.FIND, p): Rule(None, notice=False) for p in Policy},
    **{(RequestType.ACCESS, p): _EXPORT for p in Policy},
    **{(RequestType.PORTABILITY, p): _EXPORT for p in Policy},
    **{(RequestType.RESTRICTION, p): _RESTRICT for p in Policy},
    **{(RequestType.RECTIFICATION, p): _RECTIFY for p in Policy},
    **{(RequestType.OBJECTION, p): _OBJECT for p in Policy},
    # An erasure needs a verified identity under every policy (the request is the same
    # whichever systems keep data), and a completed one takes the person's packages along.
    (RequestType.ERASURE, Policy.ERASE): Rule(
        Action.DELETE, approval=True, verify=True, read_back=True, verified_identity=True,
        drops_packages=True),
    (RequestType.ERASURE, Policy.ANONYMISE): Rule(
        Action.ANONYMISE, approval=True, verify=True, verified_identity=True,
        drops_packages=True),
    (RequestType.ERASURE, Policy.RESTRICT): replace(
        _RESTRICT, verified_identity=True, drops_packages=True),
    (RequestType.ERASURE, Policy.RETAIN): Rule(
        None, idle_outcome=Outcome.RETAINED, notice=False, verified_identity=True,
        drops_packages=True),
}


def rule_for(request_type: RequestType, policy: Policy) -> Rule:
    """The rule of ``request_type`` in a system with ``policy``."""
    return RULES[(request_type, policy)]


def for_request(request_type: RequestType, flag: str) -> bool:
    """A decision about the request as a whole (``verified_identity``,
    ``drops_packages``): whether the rule of any policy of ``request_type`` sets ``flag``."""
    return any(getattr(RULES[(request_type, p)], flag) for p in Policy)


_CAPABILITY = {
    Action.EXPORT: Capability.EXPORT,
    Action.DELETE: Capability.DELETE,
    Action.ANONYMISE: Capability.ANONYMISE,
    Action.RESTRICT: Capability.RESTRICT,
    Action.RECTIFY: Capability.RECTIFY,
    Action.OBJECT: Capability.OBJECT,
}


def capability_for(action: Action) -> Capability:
    """The capability a connector must declare to be asked for ``action``."""
    return _CAPABILITY[action]


#: An item the action did not act on, by what the connector answered, and the outcome it
#: gives its system at best (whatever the request type and policy): a receipt never says
#: ``completed`` while an item was left as it was. Kept on purpose by the connector's
#: mapping (a legal duty) is ``retained``; not supported (a table without a restrict
#: column) or failed is ``partial``. The receipt names the reason (``not_acted``).
NOT_ACTED: dict[str, Outcome] = {
    ItemStatus.NOT_SUPPORTED.value: Outcome.PARTIAL,
    ItemStatus.FAILED.value: Outcome.PARTIAL,
    ItemStatus.RETAINED.value: Outcome.RETAINED,
}

#: Actions whose review items left undecided make their system ``partial`` ("N review
#: items undecided"): an item that may be the person's was neither erased, restricted nor
#: exported. A rectification refuses a correction whose old value a review item holds
#: (``corrections_refused``), and an objection changes no data: their own rules.
UNDECIDED_PARTIAL = frozenset({Action.DELETE.value, Action.ANONYMISE.value,
                               Action.RESTRICT.value, Action.EXPORT.value})

OUTCOME_ORDER = [
    Outcome.FAILED, Outcome.PARTIAL, Outcome.NOT_COVERED, Outcome.AWAITING_CONFIRMATION,
    Outcome.RETAINED, Outcome.COMPLETED,
]
OK_OUTCOMES = {Outcome.COMPLETED.value, Outcome.RETAINED.value}


def worst(outcomes: Iterable[str]) -> str:
    """The most severe outcome (an empty set is completed)."""
    present = set(outcomes)
    ranked = [o for o in OUTCOME_ORDER if o.value in present]
    return ranked[0].value if ranked else Outcome.COMPLETED.value


def undecided(action: str | None, count: int) -> int:
    """How many review items left undecided count against a task of ``action``."""
    return count if action in UNDECIDED_PARTIAL else 0
