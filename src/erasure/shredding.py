"""Crypto-shredding: what the ledger holds about an open request is encrypted under a key of
that request alone, so that ending the request makes it unreadable for good.

Keys come in three layers:

- a **request key** (random, one per request) encrypts the request's identifiers and the
  state of its tasks (findings, export records);
- an **epoch key** (random) wraps the request keys; it lives in a file of its own under
  ``<state_dir>/keys/epochs``, encrypted under the master key;
- the **master key** (``erasure.keys.encryption_key``) encrypts only the epoch files.

A database never forgets a deleted row at once (PostgreSQL keeps dead tuples and WAL,
SQLite free pages and its WAL), so deleting an ended request's key row is not enough.
After requests end, the key epoch is *rotated*: a new epoch key wraps the keys of the
requests still open, and the files of the older epochs are overwritten and removed. From
then on, every copy of an ended request's key that the database may still hold, live or
dead, is wrapped under an epoch key that no longer exists.

Request keys encrypt and epoch keys wrap with AES-256-GCM (:class:`Cipher`): a request's
data is written several times a run, and Fernet's CBC + HMAC took two and a half times as
long. Fernet tokens written by earlier versions are still read.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection

from .errors import ConfigError
from .files import private_dir
from .ledger import Ledger

__all__ = ["Cipher", "EpochKeys", "RequestKeys"]

#: how a token of :class:`Cipher` begins (a Fernet token begins with ``gAAAAA``)
TOKEN_PREFIX = b"a1."


class _Encrypts(Protocol):
    def encrypt(self, data: bytes) -> bytes: ...
    def decrypt(self, token: bytes) -> bytes: ...


class Cipher:
    """The cipher of one request or epoch key: AES-256-GCM with a random nonce per token.

    Keys keep Fernet's format (urlsafe base64 of 32 random bytes), so keys made by earlier
    versions go on working and their Fernet tokens are still read. The AES key is the
    SHA-256 of a label and the key, so the same bytes never serve both ciphers. A token
    is ``a1.`` + base64url(nonce | ciphertext | tag); a wrong key raises ``InvalidToken``.
    """

    __slots__ = ("_aes_key", "_fernet", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        # The AESGCM object is made per call (2 us): one holds an OpenSSL context of
        # 2.4 KB, and a process may hold the ciphers of many requests.
        self._aes_key = hashlib.sha256(b"erasure aes-256-gcm\0" + key).digest()
        self._fernet: Fernet | None = None

    @staticmethod
    def new_key() -> bytes:
        return Fernet.generate_key()

    def encrypt(self, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return TOKEN_PREFIX + base64.urlsafe_b64encode(
            nonce + AESGCM(self._aes_key).encrypt(nonce, data, None))

    def decrypt(self, token: bytes) -> bytes:
        if not token.startswith(TOKEN_PREFIX):
            if self._fernet is None:
                self._fernet = Fernet(self._key)
            return self._fernet.decrypt(token)  # written before this format
        try:
            raw = base64.urlsafe_b64decode(token[len(TOKEN_PREFIX):])
            return AESGCM(self._aes_key).decrypt(raw[:12], raw[12:], None)
        except (InvalidTag, ValueError):
            raise InvalidToken from None


class EpochKeys:
    """The epoch key files of one state folder: ``<n>.key``, each a key (Fernet's format)
    encrypted under the master key with Fernet."""

    def __init__(self, folder: Path, master: Fernet) -> None:
        self.folder = folder
        self.master = master
        self._cache: dict[int, Cipher] = {}

    def _path(self, epoch: int) -> Path:
        return self.folder / f"{epoch}.key"

    def get(self, epoch: int) -> Cipher | None:
        """The key of ``epoch``; None if it was destroyed (or never made here)."""
        if epoch in self._cache:
            return self._cache[epoch]
        try:
            token = self._path(epoch).read_bytes()
        except FileNotFoundError:
            return None
        try:
            key = Cipher(self.master.decrypt(token))
        except InvalidToken:
            raise ConfigError(f"key epoch {epoch}: not encrypted under this encryption key "
                              "(keys/epochs belongs to another master key)") from None
        self._cache[epoch] = key
        return key

    def ensure(self, epoch: int) -> Cipher:
        """The key of ``epoch``, made now if it does not exist yet."""
        found = self.get(epoch)
        if found is not None:
            return found
        private_dir(self.folder)
        path = self._path(epoch)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.master.encrypt(Cipher.new_key()))
            f.flush()
            os.fsync(f.fileno())
        try:
            # link, not rename: two processes making the same epoch at once keep one key
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        key = self.get(epoch)
        assert key is not None
        return key

    def epochs(self) -> list[int]:
        if not self.folder.exists():
            return []
        return sorted(int(p.stem) for p in self.folder.glob("*.key") if p.stem.isdigit())

    def destroy_before(self, epoch: int) -> int:
        """Overwrite and remove every epoch key older than ``epoch``; how many went."""
        gone = 0
        for n in self.epochs():
            if n >= epoch:
                continue
            path = self._path(n)
            try:
                size = path.stat().st_size
                with open(path, "r+b") as f:
                    f.write(b"\0" * size)
                    f.flush()
                    os.fsync(f.fileno())
                path.unlink()
            except FileNotFoundError:
                continue  # another process destroyed it first
            self._cache.pop(n, None)
            gone += 1
        return gone


class RequestKeys:
    """The per-request ciphers of one ledger, and the rotation that shreds ended ones.

    ``legacy`` decrypts what a version before crypto-shredding wrote (requests with no key
    row): such requests keep working, and the scan guarantee holds for requests made since.
    """

    def __init__(self, ledger: Ledger, epochs: EpochKeys, legacy: Fernet) -> None:
        self.ledger = ledger
        self.epochs = epochs
        self.legacy = legacy
        self._ciphers: dict[str, _Encrypts] = {}

    def seal(self, conn: Connection, raw: Mapping[str, bytes]) -> None:
        """Store the keys of requests inserted in ``conn``'s transaction, wrapped under the
        current epoch (read under the rotation lock, so a rotation cannot miss them).
        ``raw`` maps request ids to keys made with :meth:`Cipher.new_key`."""
        if not raw:
            return
        epoch, _due = self.ledger.key_state(conn)
        wrap = self.epochs.ensure(epoch)
        self.ledger.add_request_keys(conn, [
            {"request_id": rid, "epoch": epoch, "wrapped": wrap.encrypt(key)}
            for rid, key in raw.items()])

    def load(self, request_ids: Iterable[str]) -> dict[str, _Encrypts]:
        """The ciphers of these requests (the legacy master key for requests made before
        request keys existed)."""
        want = [rid for rid in request_ids if rid not in self._ciphers]
        for _attempt in range(3):
            if not want:
                break
            rows = self.ledger.request_keys(want)
            stale = []
            for rid in want:
                if rid not in rows:
                    self._ciphers[rid] = self.legacy
                    continue
                epoch, wrapped = rows[rid]
                wrap = self.epochs.get(epoch)
                if wrap is None:
                    stale.append(rid)  # rotated by another process since: read again
                    continue
                self._ciphers[rid] = Cipher(wrap.decrypt(wrapped))
            want = stale
        if want:
            raise ConfigError(f"the key epoch of {len(want)} request(s) is missing from "
                              f"{self.epochs.folder}: every runner must share that folder")
        return self._ciphers

    def encrypt(self, request_id: str, data: bytes) -> bytes:
        return self.load([request_id])[request_id].encrypt(data)

    def decrypt(self, request_id: str, token: bytes) -> bytes:
        try:
            return self.load([request_id])[request_id].decrypt(token)
        except InvalidToken:
            raise ConfigError(
                "cannot decrypt ledger data: the encryption key differs from the one used"
            ) from None

    def drop(self, request_ids: Iterable[str]) -> None:
        """Let go of these requests' ciphers (a batch is done with them): a long run must
        not hold every key it ever loaded."""
        for rid in request_ids:
            self._ciphers.pop(rid, None)

    #: the most open requests' keys a finish rewraps in its own transaction (which holds
    #: the leases' lock): past that, the rotation is left to its own transaction
    INLINE_ROTATION = 1000

    def forget(self, conn: Connection, request_ids: Iterable[str], *,
               rotate: bool = False) -> int | None:
        """In the transaction that ends these requests: drop their keys, and mark the
        epoch for rotation (:meth:`rotate`, after commit).

        ``rotate`` (a run's last batch): rotate in this transaction instead, as
        :meth:`rotate` would right after it, when no more than :attr:`INLINE_ROTATION`
        keys are to be rewrapped; returns the new epoch, whose older epoch keys the caller
        destroys with :meth:`shred_before` once the transaction committed (None: nothing
        rotated, the rotation is due)."""
        ids = list(request_ids)
        for rid in ids:
            self._ciphers.pop(rid, None)
        if not ids:
            return None
        if not rotate:
            self.ledger.drop_request_keys(conn, ids)
            return None
        epoch, _due = self.ledger.key_state(conn, exclusive=True)
        self.ledger.drop_request_keys(conn, ids, locked=True)
        new = self._rotate_in(conn, epoch, limit=self.INLINE_ROTATION)
        if new is None:
            self.ledger.mark_rotation_due(conn)
        return new

    def rotate(self) -> bool:
        """If requests ended since the last rotation: wrap the open requests' keys under a
        new epoch and destroy the older epoch keys. Safe to repeat after a crash."""
        with self.ledger.tx() as conn:
            epoch, due = self.ledger.key_state(conn, exclusive=True)
            if not due:
                return self._destroy_old(epoch) > 0
            new = self._rotate_in(conn, epoch)
            assert new is not None
        self._destroy_old(new)
        return True

    def _rotate_in(self, conn: Connection, epoch: int, limit: int | None = None
                   ) -> int | None:
        """Wrap every request key under epoch ``epoch + 1`` in ``conn``'s transaction
        (which holds the rotation lock exclusively) and make it the current epoch; the new
        epoch, or None (nothing done) when more than ``limit`` keys are to be rewrapped."""
        new = epoch + 1
        before = self.ledger.request_keys_before(
            conn, new, None if limit is None else limit + 1)
        if limit is not None and len(before) > limit:
            return None
        wrap_new = self.epochs.ensure(new)
        rows = []
        for rid, (old, wrapped) in before.items():
            wrap_old = self.epochs.get(old)
            if wrap_old is None:
                raise ConfigError(f"key epoch {old} is missing from {self.epochs.folder}"
                                  ": every runner must share that folder")
            rows.append({"request_id": rid, "epoch": new,
                         "wrapped": wrap_new.encrypt(wrap_old.decrypt(wrapped))})
        self.ledger.rewrap_request_keys(conn, rows)
        self.ledger.set_key_epoch(conn, new)
        return new

    def shred_before(self, epoch: int) -> None:
        """After a rotation to ``epoch`` committed: destroy the older epoch keys."""
        self._destroy_old(epoch)

    def _destroy_old(self, current: int) -> int:
        return self.epochs.destroy_before(current)
