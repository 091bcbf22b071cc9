"""Which action a request type asks of a system under its policy, and how outcomes rank."""

from __future__ import annotations

from collections.abc import Iterable

from .models import Action, Capability, Outcome, Policy, RequestType

__all__ = ["OK_OUTCOMES", "OUTCOME_ORDER", "action_for", "capability_for", "worst"]

_CAPABILITY = {
    Action.EXPORT: Capability.EXPORT,
    Action.DELETE: Capability.DELETE,
    Action.ANONYMISE: Capability.ANONYMISE,
    Action.RESTRICT: Capability.RESTRICT,
}


def action_for(request_type: RequestType, policy: Policy) -> Action | None:
    """The action to run after find, or None (find only, or retained under a legal hold).

    Access and portability always export: a legal hold does not take away the right of
    access. Restriction restricts whatever the policy, since it keeps the data.
    """
    if request_type in (RequestType.ACCESS, RequestType.PORTABILITY):
        return Action.EXPORT
    if request_type is RequestType.RESTRICTION:
        return Action.RESTRICT
    if request_type is RequestType.ERASURE:
        return {
            Policy.ERASE: Action.DELETE,
            Policy.ANONYMISE: Action.ANONYMISE,
            Policy.RESTRICT: Action.RESTRICT,
            Policy.RETAIN: None,
        }[policy]
    return None


def capability_for(action: Action) -> Capability:
    return _CAPABILITY[action]


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
