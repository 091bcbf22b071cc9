"""What a person types at intake besides identifiers: references and reasons.

A *reference* (``--ticket``, a processor's confirmation ``--reference``) is copied into the
ledger and the signed receipts as given, so it must be a reference and nothing else: it
matches ``[erasure] ticket_pattern`` (letters, digits and ``-_.:#/`` by default), or the
request is refused. The value is never echoed in the error: it may be the personal data
that the pattern kept out.

A *reason* (``--override-unverified REASON``, ``request extend --reason``) is free text and
may name the person. It is kept in the ledger encrypted under the request's own key, so it
is shredded with the request (shredding.py), and a receipt holds only its keyed hash:
``keys.digest("reason", KIND, REQUEST_ID, TEXT)``, which an auditor holding the hash key can
match against the text kept in the ticket.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .errors import UsageError

__all__ = [
    "DEFAULT_TICKET_PATTERN",
    "MAX_REFERENCE_LENGTH",
    "check_reference",
    "reason_hash",
    "seal_reason",
]

#: letters, digits and ``-_.:#/``, 1 to 100 of them (``T-1``, ``HELP#42``, ``jira:OPS/7``)
DEFAULT_TICKET_PATTERN = r"[A-Za-z0-9_.:#/-]{1,100}"
#: whatever the configured pattern allows: the ledger's column holds 200 characters
MAX_REFERENCE_LENGTH = 200
#: a sealed reason: ``r1:`` + its keyed hash + ``:`` + the token of the request's cipher
_SEALED = re.compile(r"r1:([0-9a-f]{32}):(.+)", re.DOTALL)

Digest = Callable[..., str]


def check_reference(value: str, pattern: str, what: str) -> None:
    """Raise UsageError (one line, without the value) unless ``value`` is a reference."""
    if len(value) > MAX_REFERENCE_LENGTH or re.fullmatch(pattern, value) is None:
        raise UsageError(
            f"{what} must be a reference such as T-1 (letters, digits and -_.:#/ by default; "
            "[erasure] ticket_pattern), not free text or personal data: nothing was recorded")


def seal_reason(digest: Digest, encrypt: Callable[[bytes], bytes], request_id: str,
                kind: str, text: str) -> str:
    """What the ledger keeps of a reason: its keyed hash and its text encrypted with
    ``encrypt`` (the request's cipher)."""
    text = text.strip()
    token = encrypt(text.encode()).decode("ascii")
    return f"r1:{digest('reason', kind, request_id, text)}:{token}"


def reason_hash(digest: Digest, request_id: str, kind: str, stored: str | None) -> str | None:
    """The keyed hash a receipt shows for a stored reason (None when there is none).
    A reason stored as plain text by an earlier version is hashed the same way."""
    if not stored:
        return None
    sealed = _SEALED.fullmatch(stored)
    if sealed is not None:
        return sealed.group(1)
    return str(digest("reason", kind, request_id, stored.strip()))
