"""Which action a request type asks of a system under its policy."""

from __future__ import annotations

from .models import Action, Capability, Policy, RequestType

__all__ = ["action_for", "capability_for"]

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
