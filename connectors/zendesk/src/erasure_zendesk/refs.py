"""Finding references and kinds of the ``zendesk`` connector, and value matching.

Refs: ``user/<id>`` and ``ticket/<id>``. Kinds (receipts count by them):

- ``user``: the profile and its identities;
- ``ticket``: a ticket the subject requested (deleted, or redacted when kept by policy);
- ``ticket_participation``: someone else's ticket the subject is cc'd on, follows, is
  assigned or commented on: their comments there are redacted, the ticket kept;
- ``ticket_mention``: someone else's ticket whose text quotes the subject's email or phone
  (free-text search): those values are redacted, the ticket kept.
"""

from __future__ import annotations

import re

from erasure import Finding, Identifier, IdentifierType, UsageError

__all__ = [
    "MENTION", "PARTICIPATION", "TICKET", "USER", "identity_matches", "normal_identity",
    "ref_id", "safe_value", "text_mentions",
]

USER, TICKET = "user", "ticket"
PARTICIPATION, MENTION = "ticket_participation", "ticket_mention"
# what can sit inside a quoted search value: no quote, backslash, space or control char
_SAFE = re.compile(r'^[^"\\\s\x00-\x1f]+$')


def ref_id(finding: Finding) -> int:
    """The numeric id in a finding's ref."""
    return int(finding.ref.split("/", 1)[1])


def safe_value(value: str) -> bool:
    """Whether ``value`` can be put in a quoted search term as it is. No email Zendesk
    accepts and no E.164 phone holds these characters, so a value that does cannot be an
    identity there: it is matched by nothing rather than sent half-escaped."""
    return bool(_SAFE.match(value))


def normal_identity(kind: str, value: str) -> Identifier | None:
    """An email or phone identity as the host's identifier (normalised); None otherwise."""
    itype = {"email": IdentifierType.EMAIL, "phone_number": IdentifierType.PHONE}.get(kind)
    if itype is None:
        return None
    try:
        return Identifier.parse(itype, value)
    except UsageError:
        return None


def identity_matches(kind: str, value: str, wanted: set[Identifier]) -> Identifier | None:
    """The identifier among ``wanted`` an identity (type as Zendesk names it, value as
    stored) is, exactly: emails without case, phones compared in E.164."""
    ident = normal_identity(kind, value)
    return ident if ident is not None and ident in wanted else None


def text_mentions(text: str, value: str) -> bool:
    """Whether ``text`` quotes ``value`` as a whole token (``bob@x.org`` is not quoted by
    ``jimbob@x.org``; ``+4930123456`` is not by ``+49301234567``)."""
    pattern = rf"(?<![\w.+@-]){re.escape(value)}(?![\w@-]|\.\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None
