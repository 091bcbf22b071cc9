"""Receipts: one per request and system, signed with Ed25519 and hash-chained.

A receipt body is canonical JSON (sorted keys, no spaces). Its ``hash`` is the SHA-256 of
that text; ``body.prev`` is the previous receipt's hash, so removing or editing any receipt
breaks the chain. The signature is over the hash. Bodies hold no personal data: item
references are keyed hashes, errors are classified messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["Receipt", "canonical", "seal", "verify_chain"]

SCHEMA = 1


def canonical(body: Mapping[str, Any]) -> bytes:
    """The exact bytes that are hashed."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Receipt:
    """A stored receipt: its body, hash and signature."""

    seq: int
    body: Mapping[str, Any]
    hash: str
    signature: str

    @property
    def request_id(self) -> str:
        return str(self.body["request"])

    @property
    def system(self) -> str:
        return str(self.body["system"])

    @property
    def outcome(self) -> str:
        return str(self.body["outcome"])

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "body": dict(self.body), "hash": self.hash,
                "signature": self.signature}


def seal(body: dict[str, Any], *, seq: int, prev: str, sign: Any, key_id: str) -> Receipt:
    """Chain ``body`` after ``prev``, hash and sign it."""
    full = {**body, "schema": SCHEMA, "seq": seq, "prev": prev, "key_id": key_id}
    digest = hashlib.sha256(canonical(full)).hexdigest()
    return Receipt(seq=seq, body=full, hash=digest, signature=sign(digest.encode()))


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying receipts."""

    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    receipts: Iterable[Mapping[str, Any]], public_key: Ed25519PublicKey, *, full_chain: bool = True
) -> ChainReport:
    """Check every hash, signature and link. ``full_chain=False`` checks a subset (one
    request's receipts), where links to receipts not in the set cannot be followed."""
    problems: list[str] = []
    prev_hash: str | None = None
    prev_seq: int | None = None
    n = 0
    for r in receipts:
        n += 1
        body, digest, seq = r["body"], r["hash"], r["seq"]
        where = f"receipt {seq}"
        if hashlib.sha256(canonical(body)).hexdigest() != digest:
            problems.append(f"{where}: body does not match its hash (edited)")
        try:
            public_key.verify(base64.b64decode(r["signature"]), digest.encode())
        except (InvalidSignature, ValueError):
            problems.append(f"{where}: signature does not verify with this public key")
        if body.get("seq") != seq:
            problems.append(f"{where}: sequence number differs from its body")
        if full_chain:
            expected_prev = "0" * 64 if prev_hash is None else prev_hash
            if prev_seq is not None and seq != prev_seq + 1:
                problems.append(f"{where}: follows receipt {prev_seq} (receipts missing)")
            elif body.get("prev") != expected_prev:
                problems.append(f"{where}: does not link to the previous receipt")
        prev_hash, prev_seq = digest, seq
    return ChainReport(checked=n, problems=problems)
