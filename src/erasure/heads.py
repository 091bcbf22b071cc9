"""Signed chain heads, receipts exports, and their verification.

The receipt chain alone shows an edited, removed or reordered receipt, but not receipts cut
off its end: the shorter chain is still a chain. A *head* is a signed record of how many
receipts the chain holds and the hash of the last one. One is written with every batch of
receipts, in the batch's transaction, so the newest head always covers the whole chain; an
export carries it, and an export cut short no longer matches it. A head published elsewhere
(``erasure run`` prints one line, ``chain head: N HASH``) is checked with ``--expect-head``:
it catches an export cut back to an older head, which its own heads cannot.

Verification takes nothing but the receipts and the head from the file it checks: whether
the file is a selection (one request's receipts) is the verifier's ``subset`` option. The
format is documented for third parties in docs/receipts.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import UsageError
from .receipts import ZERO, canonical, check_signed, is_signed_record, verify_chain

if TYPE_CHECKING:
    from .chain import ReceiptChain
    from .keys import KeyRing
    from .ledger import Ledger

__all__ = ["HEAD_TYPE", "Verdict", "export", "head_line", "ledger_export",
           "parse_expected_head", "seal_head", "verify_export"]

HEAD_TYPE = "chain_head"
EXPORT_FORMAT = "erasure-receipts"
EXPORT_VERSION = 2


def seal_head(count: int, last: str, *, keys: KeyRing, now: datetime,
              prev: str = ZERO) -> dict[str, Any]:
    """A signed head over the first ``count`` receipts, the last of which hashes to
    ``last``, chained to the previous head's hash ``prev``: ``{"body", "hash",
    "signature", "text"}`` (``text``: the body's canonical JSON, as hashed and stored),
    hashed and signed as receipts are."""
    body = {"type": HEAD_TYPE, "schema": 1, "count": count, "last": last, "prev": prev,
            "key_id": keys.key_id, "signed_at": now.isoformat()}
    text = canonical(body)
    digest = hashlib.sha256(text).hexdigest()
    return {"body": body, "hash": digest, "signature": keys.sign(digest.encode()),
            "text": text.decode()}


def head_line(count: int, last: str) -> str:
    """The one line a run prints, to be published: ``chain head: N HASH``."""
    if count == 0:
        return "chain head: 0 (no receipts yet)"
    return f"chain head: {count} {last}"


def export(chain: ReceiptChain, request_id: str | None = None) -> dict[str, Any]:
    """The export file's content: every receipt up to the newest head (signed now if the
    chain's end had none), or only ``request_id``'s, with that head and the public key.

    The public key is there for people reading the file; a verifier must take the key
    from elsewhere, or whoever edits the file can sign their own receipts."""
    chain.ensure_head()
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
            "public_key": chain.keys.public_text, "request": request_id,
            **ledger_export(chain.ledger, request_id)}


def ledger_export(ledger: Ledger, request_id: str | None = None) -> dict[str, Any]:
    """``{"receipts", "head"}`` as the ledger holds them, read under the chain's lock so
    that the head and the receipts are of the same moment."""
    with ledger.tx() as conn:
        ledger.chain_head(conn)
        head = ledger.newest_head(conn)
        receipts = ledger.receipts_in(conn, request_id)
    return {"receipts": receipts, "head": head}


_EXPECTED = re.compile(r"(?:chain head:\s*)?(?:(\d+)\s+)?([0-9a-fA-F]{64})")


def parse_expected_head(text: str) -> tuple[int | None, str]:
    """``HASH``, ``N HASH`` or the whole printed line ``chain head: N HASH``, as (N or
    None, hash in lowercase)."""
    match = _EXPECTED.fullmatch(text.strip())
    if match is None:
        raise UsageError("--expect-head: give the 64-hex-digit HASH of a published "
                         "`chain head: N HASH` line (or the whole line)")
    return (int(match[1]) if match[1] else None), match[2].lower()


@dataclass(frozen=True)
class Verdict:
    """What verifying an export found: ``problems`` (empty when it verifies) and, when it
    does, what was proven, in one line (``summary``)."""

    checked: int
    problems: list[str]
    summary: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_export(data: Any, public_key: Ed25519PublicKey, *, subset: bool = False,
                  expect_head: str | None = None) -> Verdict:
    """Verify an export's receipts and head with ``public_key``.

    Whole chain (the default): every receipt hashes, is signed and links to the one before
    from receipt 1 on, and the signed head counts exactly these receipts and names the last
    one's hash. ``expect_head`` (a head published elsewhere: the hash of a receipt) must be
    one of the chain's receipts. ``subset``: each receipt is checked on its own; that none
    is missing is not checked, and the verdict says so.
    """
    receipts = data.get("receipts") if isinstance(data, Mapping) else None
    if not isinstance(receipts, list):
        return Verdict(0, ["not a receipts export: no list of receipts"])
    report = verify_chain(receipts, public_key, subset=subset)
    problems = list(report.problems)
    if subset:
        if expect_head is not None:
            problems.append("--expect-head checks a whole chain; it cannot be used with --subset")
        return Verdict(report.checked, problems, (
            f"{report.checked} receipts, each hash and signature verified; chain "
            "completeness NOT checked (--subset: receipts outside the file may be missing)"))
    problems.extend(_head_problems(data.get("head"), public_key, report.hashes,
                                   cut=report.ok))
    notes = []
    if expect_head is not None:
        count, expected = parse_expected_head(expect_head)
        if expected not in report.hashes:
            problems.append(f"--expect-head {expected[:16]}... is not a receipt of this chain "
                            "(receipts cut off or replaced since it was published)")
        elif count is not None and report.hashes.index(expected) + 1 != count:
            problems.append(f"--expect-head {expected[:16]}... is receipt "
                            f"{report.hashes.index(expected) + 1} of this chain, not {count}")
        elif (after := len(report.hashes) - 1 - report.hashes.index(expected)) > 0:
            notes.append(f"the expected head is receipt {report.hashes.index(expected) + 1}; "
                         f"{after} receipts were written after it")
    end = report.hashes[-1] if report.hashes else ZERO
    return Verdict(report.checked, problems,
                   f"{report.checked} receipts, signatures, chain and signed head verified "
                   f"({head_line(report.checked, end)})"
                   + ("; matches --expect-head" if expect_head is not None else ""), notes)


def _head_problems(head: Any, public_key: Ed25519PublicKey, hashes: list[str], *,
                   cut: bool) -> list[str]:
    """Problems of the export's head against the chain it came with (``hashes``); ``cut``:
    the chain itself verified, so receipts the head counts and the chain lacks were cut
    off its end."""
    if head is None:
        return ["no signed chain head: the end of the chain is not signed, so receipts cut "
                "off it would not show (`erasure run` or `erasure receipts export` signs one)"]
    if not is_signed_record(head):
        return ["chain head: not a signed record"]
    problems = check_signed(head, public_key, "chain head")
    body = head["body"]
    count, last = body.get("count"), body.get("last")
    if (body.get("type") != HEAD_TYPE or not isinstance(count, int) or isinstance(count, bool)
            or not isinstance(last, str)):
        return [*problems, "chain head: not a chain head (type, count and last expected)"]
    if problems:
        return problems
    if count > len(hashes):
        return [f"the signed chain head counts {count} receipts; the export holds "
                f"{len(hashes)}" + (f": receipts {len(hashes) + 1}-{count} were cut off its "
                                    "end" if cut else "")]
    if count < len(hashes):
        return [f"receipts {count + 1}-{len(hashes)} come after the signed chain head "
                f"(count {count}): their end is not signed"]
    if last != (hashes[-1] if hashes else ZERO):
        return ["the signed chain head names another last receipt than the export's"]
    return []
