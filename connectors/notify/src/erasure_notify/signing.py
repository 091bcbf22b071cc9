"""HMAC-SHA256 signatures of webhook bodies, both ways: notices we send and confirmations
a processor sends back. The scheme is documented in the connector's README so a processor
can implement its side without this code.

Signed bytes: the timestamp (decimal Unix seconds, ASCII), a ``.``, then the raw body.
Headers: ``X-Erasure-Timestamp: <timestamp>`` and
``X-Erasure-Signature: sha256=<hex of HMAC-SHA256(secret, signed bytes)>``.
A receiver refuses a signature that does not match (compared in constant time) and a
timestamp more than ``tolerance`` seconds away from its clock (a replayed old message).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "Confirmation", "InvalidSignature", "sign",
    "signed_headers", "verify_confirmation", "verify_signature",
]

TIMESTAMP_HEADER = "X-Erasure-Timestamp"
SIGNATURE_HEADER = "X-Erasure-Signature"
#: seconds a signed message stays valid either side of the receiver's clock
DEFAULT_TOLERANCE = 300


class InvalidSignature(Exception):
    """The signature, its timestamp or the signed body is not acceptable. The message
    says which, never a value."""


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Erasure-Signature`` value of ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str | bytes, body: bytes, now: float | None = None
                   ) -> dict[str, str]:
    """The two headers that sign ``body`` now."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}


def _header(headers: Mapping[str, str], name: str) -> str:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    raise InvalidSignature(f"missing header {name}")


def verify_signature(secret: str | bytes, headers: Mapping[str, str], body: bytes, *,
                     now: float | None = None, tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Raise :class:`InvalidSignature` unless ``headers`` sign ``body`` with ``secret``
    within ``tolerance`` seconds of ``now``."""
    ts = _header(headers, TIMESTAMP_HEADER)
    given = _header(headers, SIGNATURE_HEADER)
    if not ts.isdigit() or len(ts) > 12:
        raise InvalidSignature("malformed timestamp")
    if abs((time.time() if now is None else now) - int(ts)) > tolerance:
        raise InvalidSignature("timestamp outside the accepted window")
    if not hmac.compare_digest(given.encode(), sign(secret, ts, body).encode()):
        raise InvalidSignature("signature does not match")


@dataclass(frozen=True)
class Confirmation:
    """A processor's signed confirmation: which of our messages, which requests (our
    references), and its own reference."""

    message_id: str
    requests: tuple[str, ...]
    reference: str


def verify_confirmation(secret: str | bytes, headers: Mapping[str, str], body: bytes, *,
                        now: float | None = None, tolerance: float = DEFAULT_TOLERANCE
                        ) -> Confirmation:
    """Check a confirmation a processor posted and read it.

    The body is JSON: ``{"type": "erasure.confirmation", "message_id": "<...>",
    "requests": ["r-..."], "reference": "THEIR-REF"}``, signed like our notices (same
    secret, same headers). Raises :class:`InvalidSignature` for a bad signature, a stale
    timestamp or a body that is not such a confirmation.
    """
    verify_signature(secret, headers, body, now=now, tolerance=tolerance)
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidSignature("body is not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "erasure.confirmation":
        raise InvalidSignature("not an erasure.confirmation")
    mid, requests, ref = data.get("message_id"), data.get("requests"), data.get("reference")
    if (not isinstance(mid, str) or not isinstance(ref, str) or not isinstance(requests, list)
            or not requests or not all(isinstance(r, str) for r in requests)):
        raise InvalidSignature("a confirmation needs message_id, requests and reference")
    return Confirmation(mid, tuple(requests), ref)
