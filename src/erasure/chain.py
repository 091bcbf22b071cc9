"""The receipt chain's one write path: seal receipts (hash chain, signature, the canonical
text that was hashed), store them, and sign a head over the chain's new end, chained to
the head before it. Request receipts (the runner) and sweep receipts (``erasure sweep``)
are appended here alike.

A head's count or hash never goes backwards. The newest head is kept twice: in the ledger
and, outside it, in the state folder (``heads/<ledger>.json``, 0600). Before signing, the
chain must still hold every receipt both heads count, ending where they say; a ledger
whose receipts were cut back (``DELETE FROM receipts WHERE seq > 700; DELETE FROM
receipt_heads``) is refused with :class:`ChainCutBack` instead of being signed anew.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from .errors import ErasureError
from .files import private_dir
from .heads import HEAD_TYPE, seal_head
from .keys import KeyRing
from .ledger import Ledger, Lock, utcnow
from .receipts import ZERO, Receipt, check_signed, seal

__all__ = ["ChainCutBack", "ReceiptChain", "announce_new_keys", "head_file_for"]

#: the key-creation notes: an info line (`erasure run -v` shows it), or a warning
keys_log = logging.getLogger("erasure.keys")


class ChainCutBack(ErasureError):
    """The ledger holds fewer receipts, or other ones, than a head signed earlier covers."""

    #: the command's exit status (a finding about the ledger, not bad input)
    exit_code = 1


def announce_new_keys(keys: KeyRing, folder: Path, ledger: Ledger | None) -> None:
    """Say that local keys were just created in ``folder``. On a fresh state folder that is
    how every installation starts (an info line: a first cron run or ``make demo`` must not
    look like something went wrong); when the ``ledger`` already holds receipts, the keys
    that signed them (and encrypted its data) are missing: a loud warning."""
    count, signer = (0, None)
    if ledger is not None:
        with ledger.read() as conn:
            count, signer = ledger.last_signer(conn)
    if count == 0:
        keys_log.info("created new signing and encryption keys in %s (back them up; "
                      "production sets [erasure.keys] from env references)", folder)
        return
    other = (f"signed by key {signer}, not this new key {keys.key_id}"
             if signer != keys.key_id else "whose data the old encryption key protected")
    keys_log.warning(
        "created new keys in %s although the ledger holds %d receipt(s) %s: the keys were "
        "lost or not restored with the state folder; restore them from backup (receipts "
        "signed from now on verify only with the new public key)", folder, count, other)


def head_file_for(state_dir: Path, ledger: Ledger) -> Path:
    """Where the newest head of ``ledger`` is kept outside it: one file per ledger
    (named by a hash of its URL without the password), in the state folder."""
    url = ledger.engine.url.render_as_string(hide_password=True)
    return state_dir / "heads" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.json"


class ReceiptChain:
    """Appends to, and checks, one ledger's receipt chain with one signing key."""

    def __init__(self, ledger: Ledger, keys: KeyRing, head_file: Path | None) -> None:
        self.ledger, self.keys, self.head_file = ledger, keys, head_file

    # appending -----------------------------------------------------------------------

    def append(self, conn: Connection, entries: Sequence[tuple[str, dict[str, Any]]]
               ) -> tuple[list[Receipt], dict[str, Any] | None]:
        """Seal ``entries`` ((request or sweep id, body)) after the chain's end, store
        them with the canonical text each was hashed from, and sign a head over the new
        end, in the caller's transaction (whose chain lock this takes). Returns the
        receipts and the head; :meth:`keep` the head once the transaction committed."""
        if not entries:
            return [], None
        self.ledger.lock(conn, Lock.CHAIN)
        (seq, prev), ledger_head, at = self.ledger.chain_state(conn)
        prev_head = self._guard(conn, seq, ledger_head=ledger_head, at=at)
        sign, key_id = self.keys.sign, self.keys.key_id
        receipts, rows = [], []
        for owner, body in entries:
            seq += 1
            r = seal(body, seq=seq, prev=prev, sign=sign, key_id=key_id)
            prev = r.hash
            receipts.append(r)
            rows.append({"seq": r.seq, "request_id": owner, "system": body["system"],
                         "body": r.text, "hash": r.hash, "signature": r.signature})
        self.ledger.add_receipts(conn, rows)
        head = seal_head(seq, prev, keys=self.keys, now=utcnow(), prev=prev_head)
        self.ledger.add_head(conn, head)
        return receipts, head

    def ensure_head(self) -> tuple[int, str]:
        """The chain's end (count, last hash), after signing a head over it if it has none
        (receipts from before heads existed, an empty chain); the newest head is kept in
        the state folder too. Raises :class:`ChainCutBack` on a cut-back ledger."""
        return self.sign_end()[0]

    def sign_end(self) -> tuple[tuple[int, str], bool]:
        """:meth:`ensure_head`, and whether it signed a new head (a run that did only that
        has something to say)."""
        with self.ledger.read() as conn:  # the usual case, without the write lock
            end, head = self.ledger.chain_end(conn), self.ledger.newest_head(conn)
            if head is not None and _covers(head) == end:
                self._guard(conn, end[0], ledger_head=head)
                self.keep(head)
                return end, False
        signed = False
        with self.ledger.tx() as conn:
            end = self.ledger.chain_head(conn)
            prev_head = self._guard(conn, end[0])
            head = self.ledger.newest_head(conn)
            if head is None or _covers(head) != end:
                head = seal_head(end[0], end[1], keys=self.keys, now=utcnow(), prev=prev_head)
                self.ledger.add_head(conn, head)
                signed = True
        self.keep(head)
        return end, signed

    def keep(self, head: dict[str, Any] | None) -> None:
        """Keep ``head`` in the state folder (after its transaction committed), unless the
        file already holds a later one. Written to a new file, then renamed over the old."""
        if head is None or self.head_file is None:
            return
        kept = self._kept()  # read first without the lock: the usual case writes nothing
        if kept is not None and (kept.get("hash") == head["hash"]
                                 or _count(kept) > _count(head)):
            return
        private_dir(self.head_file.parent)
        # Runs finishing at once each keep their head: the lock stops an older one from
        # being renamed over a newer one.
        lock = os.open(self.head_file.with_name(self.head_file.name + ".lock"),
                       os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kept = self._kept()
            if kept is not None and _count(kept) >= _count(head):
                return
            tmp = self.head_file.with_name(self.head_file.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({k: head[k] for k in ("body", "hash", "signature")}, fh,
                          sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.head_file)
        finally:
            os.close(lock)

    # checking --------------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`ChainCutBack` if the ledger was cut back (read only)."""
        with self.ledger.read() as conn:
            (count, _last), ledger_head, at = self.ledger.chain_state(conn)
            self._guard(conn, count, ledger_head=ledger_head, at=at)

    def problems(self) -> list[str]:
        """What is wrong with the stored chain beyond its receipts: cut back behind a
        head (the ledger's or the state folder's), a head that does not verify, heads
        that do not link to each other (``erasure receipts verify``)."""
        problems = []
        try:
            self.check()
        except ChainCutBack as exc:
            problems.append(str(exc))
        public = self.keys.signing.public_key()
        kept = self._kept()
        if kept is not None:
            problems.extend(check_signed(kept, public, f"the head kept in {self.head_file}"))
        with self.ledger.read() as conn:
            heads = self.ledger.heads(conn)
        before = None
        for h in heads:
            prev = h["body"].get("prev")
            # heads signed before heads were chained have no ``prev``: nothing to link
            if prev is not None and before is not None and prev != before["hash"]:
                problems.append(f"signed head {_count(h)} does not link to head "
                                f"{_count(before)} before it (heads removed or replaced)")
            before = h
        return problems

    def _guard(self, conn: Connection, count: int, *,
               ledger_head: dict[str, Any] | None = None, at: str | None = None) -> str:
        """Refuse a chain of ``count`` receipts that lacks, or changed, receipts a head
        covers; the hash of the newest head known (the next head's ``prev``).
        ``ledger_head``: the ledger's newest head, when the caller has just read it, and
        ``at`` the stored hash of the receipt it ends at, read with it (chain_state)."""
        newest: dict[str, Any] | None = None
        hashes: dict[int, str | None] = {}  # both heads usually cover the same receipt
        if ledger_head is not None and at is not None:
            hashes[_count(ledger_head)] = at

        def stored(seq: int) -> str | None:
            if seq not in hashes:
                hashes[seq] = self.ledger.receipt_hash(conn, seq)
            return hashes[seq]

        if ledger_head is None:
            ledger_head = self.ledger.newest_head(conn)
        for where, head in (("the ledger's newest signed head", ledger_head),
                            (f"the last signed head (kept in {self.head_file})",
                             self._kept())):
            if head is None:
                continue
            covered, last = _covers(head)
            if count < covered:
                # Outside the write lock, ``count`` may have been read before another run
                # appended and signed this head (each read statement takes its own
                # snapshot): read again after the head, a healthy chain covers it.
                count = self.ledger.chain_end(conn)[0]
            if count < covered or (covered and stored(covered) != last):
                what = (f"holds {count} receipts" if count < covered
                        else f"no longer ends receipt {covered} with the hash it had")
                raise ChainCutBack(
                    f"the ledger was cut back: its receipt chain {what}, but {where} "
                    f"counts {covered}; refusing to sign (restore the ledger from a backup; "
                    "see docs/receipts.md)")
            if newest is None or covered > _count(newest):
                newest = head
        return newest["hash"] if newest is not None else ZERO

    def _kept(self) -> dict[str, Any] | None:
        if self.head_file is None:
            return None
        try:
            data = json.loads(self.head_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ChainCutBack(f"the last signed head kept in {self.head_file} cannot be "
                               f"read ({type(exc).__name__}); refusing to sign") from None
        if not (isinstance(data, dict) and isinstance(data.get("body"), dict)
                and data["body"].get("type") == HEAD_TYPE
                and isinstance(data["body"].get("count"), int)
                and isinstance(data["body"].get("last"), str)):
            raise ChainCutBack(f"the last signed head kept in {self.head_file} is not a "
                               "chain head; refusing to sign")
        return data


def _covers(head: dict[str, Any]) -> tuple[int, str]:
    return int(head["body"]["count"]), str(head["body"]["last"])


def _count(head: dict[str, Any]) -> int:
    return int(head["body"]["count"])
