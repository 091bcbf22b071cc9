"""Receipts: one per request and system, signed with Ed25519 and hash-chained.

A receipt body is canonical JSON (sorted keys, no spaces). Its ``hash`` is the SHA-256 of
that text; ``body.prev`` is the previous receipt's hash, so removing or editing any receipt
breaks the chain. The signature is over the hash. Bodies hold no personal data: item
references are keyed hashes, errors are classified messages. The end of the chain is
signed separately (heads.py), so that cutting receipts off the end shows too. The format
is written down for third parties in docs/receipts.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["ZERO", "ChainReport", "Receipt", "canonical", "check_signed",
           "is_signed_record", "seal", "verify_chain"]

SCHEMA = 1
#: the ``prev`` of the first receipt
ZERO = "0" * 64


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
    #: the canonical JSON of ``body`` (what was hashed), when this receipt was just sealed
    text: str = field(default="", compare=False, repr=False)

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
    text = canonical(full)
    digest = hashlib.sha256(text).hexdigest()
    return Receipt(seq=seq, body=full, hash=digest, signature=sign(digest.encode()),
                   text=text.decode())


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying receipts."""

    checked: int
    problems: list[str]
    #: the hash of every receipt checked, in order (the last one is the chain's end)
    hashes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def is_signed_record(item: Any) -> bool:
    """A mapping with a ``body`` mapping and ``hash`` and ``signature`` strings."""
    return (isinstance(item, Mapping) and isinstance(item.get("body"), Mapping)
            and isinstance(item.get("hash"), str) and isinstance(item.get("signature"), str))


def check_signed(item: Any, public_key: Ed25519PublicKey, where: str) -> list[str]:
    """Problems of one signed record (a receipt or a chain head): its ``hash`` must be the
    SHA-256 of its canonical ``body`` and its ``signature`` that key's over the hash."""
    if not is_signed_record(item):
        return [f"{where}: not a signed record (body, hash and signature expected)"]
    problems = []
    if hashlib.sha256(canonical(item["body"])).hexdigest() != item["hash"]:
        problems.append(f"{where}: body does not match its hash (edited)")
    try:
        public_key.verify(base64.b64decode(item["signature"]), item["hash"].encode())
    except (InvalidSignature, ValueError):
        problems.append(f"{where}: signature does not verify with this public key")
    return problems


def verify_chain(
    receipts: Iterable[Any], public_key: Ed25519PublicKey, *, subset: bool = False
) -> ChainReport:
    """Check every receipt's hash and signature and, unless ``subset``, that they form the
    chain from its first receipt on: seq 1, 2, 3... each linking to the one before.

    ``subset`` is the caller's statement that the receipts are a selection (one request's):
    then each is checked on its own and nothing is said about the ones not given. It is
    never read from the receipts themselves, which an editor of them controls.
    """
    problems: list[str] = []
    hashes: list[str] = []
    expected_seq, prev_hash = 1, ZERO
    for n, r in enumerate(receipts, start=1):
        if not is_signed_record(r):
            problems.append(f"entry {n} of the receipts: not a signed record")
            continue
        body, digest = r["body"], r["hash"]
        seq = body.get("seq")
        where = f"receipt {seq}"
        problems.extend(check_signed(r, public_key, where))
        if r.get("seq") != seq or not isinstance(seq, int) or isinstance(seq, bool):
            problems.append(f"{where}: sequence number differs from its body")
        elif not subset:
            if seq != expected_seq:
                problems.append(f"{where}: found where receipt {expected_seq} belongs "
                                f"(receipts missing or moved)")
            elif body.get("prev") != prev_hash:
                problems.append(f"{where}: does not link to the previous receipt")
            expected_seq = seq + 1
        prev_hash = digest
        hashes.append(digest)
    return ChainReport(checked=len(hashes), problems=problems, hashes=hashes)
