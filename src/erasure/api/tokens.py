"""Bearer tokens of the HTTP API: made by ``erasure tokens create``, stored as hashes.

A token reads ``ert_<id>_<secret>``: the id finds its row, the secret's SHA-256 is compared
with the stored hash in constant time. The secret is 256 random bits, so a plain hash (no
salt, no stretching) is enough: nothing can be guessed from it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import datetime

from ..ledger import Ledger, utcnow
from ..ledger.api import TokenRow

__all__ = ["SCOPES", "TokenCheck", "check_token", "create_token"]

SCOPES = ("submit", "read", "package", "admin")
_TOKEN = re.compile(r"^ert_(tk[0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
#: the hash compared when the token's id is unknown: the answer takes as long either way
_NO_HASH = "0" * 64


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def create_token(ledger: Ledger, scopes: Iterable[str], expires_at: datetime | None,
                 callback_secret: str | None = None) -> tuple[str, str]:
    """Make and store a token; returns (its id, the token). The token is never stored.
    ``callback_secret`` is the reference (``env:NAME`` or ``enc:...``, see
    :class:`erasure.callbacks.Secrets`) that signs the callbacks of requests submitted
    with it."""
    scopes = tuple(dict.fromkeys(scopes))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        from ..errors import UsageError
        raise UsageError(f"--scope must be one of {', '.join(SCOPES)}")
    token_id = "tk" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    ledger.add_token(token_id, _hash(secret), scopes, expires_at, callback_secret)
    return token_id, f"ert_{token_id}_{secret}"


class TokenCheck:
    """Why a token was refused: ``None`` when it is good for the scope."""

    MISSING = "missing or malformed bearer token"
    UNKNOWN = "invalid token"
    EXPIRED = "token expired"
    REVOKED = "token revoked"
    SCOPE = "token lacks the scope"


def check_token(ledger: Ledger, header: str | None, scope: str
                ) -> tuple[TokenRow | None, str | None]:
    """(the token's row, None) when ``header`` (``Authorization``) carries a valid token
    with ``scope`` (or ``admin``); else (row or None, why not). 401 for every reason but
    the scope (403)."""
    kind, _, value = (header or "").partition(" ")
    match = _TOKEN.match(value.strip()) if kind.lower() == "bearer" else None
    if match is None:
        return None, TokenCheck.MISSING
    row = ledger.token(match.group(1))
    good = hmac.compare_digest(_hash(match.group(2)), row.secret_hash if row else _NO_HASH)
    if row is None or not good:
        return None, TokenCheck.UNKNOWN
    if row.revoked_at is not None:
        return row, TokenCheck.REVOKED
    if row.expires_at is not None and row.expires_at <= utcnow():
        return row, TokenCheck.EXPIRED
    if scope not in row.scopes and "admin" not in row.scopes:
        return row, TokenCheck.SCOPE
    return row, None
