"""Keys: Ed25519 for signing receipts, the master encryption key (Fernet: it encrypts the
key epoch files and what requests made before crypto-shredding hold, see shredding.py),
HMAC for item hashes.

Production passes the signing and the encryption key as env references in
``[erasure.keys]``. The embedded default creates both once in ``<state_dir>/keys`` (0600)
and says so. The HMAC key is derived from the encryption key, so hashes stay stable for
as long as that key does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import HostSettings
from .errors import ConfigError
from .files import private_dir

__all__ = ["KeyRing", "generate_keys", "public_key_from_text"]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse a public key as printed by ``erasure keys show-public`` (base64 of 32 bytes)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except Exception:
        raise ConfigError("public key is not a base64-encoded Ed25519 key") from None


def generate_keys() -> tuple[str, str]:
    """A fresh (signing key, encryption key) pair as text for env variables."""
    signing = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(signing).decode(), Fernet.generate_key().decode()


@dataclass(frozen=True)
class KeyRing:
    """The keys one run uses."""

    signing: Ed25519PrivateKey
    fernet: Fernet
    hash_key: bytes
    created: bool = False  # True when this call created local keys

    def __repr__(self) -> str:
        return f"KeyRing(key_id={self.key_id!r})"

    @property
    def public_text(self) -> str:
        return base64.b64encode(_raw_public(self.signing.public_key())).decode()

    @cached_property  # one per receipt: a run signs thousands
    def key_id(self) -> str:
        return hashlib.sha256(_raw_public(self.signing.public_key())).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.signing.sign(data)).decode()

    def digest(self, *parts: str) -> str:
        """A keyed hash (HMAC-SHA256) of ``parts``: stable, not reversible without the key."""
        msg = "\x1f".join(parts).encode()
        return hmac.digest(self.hash_key, msg, "sha256").hex()[:32]

    def encrypt(self, data: bytes) -> bytes:
        return self.fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self.fernet.decrypt(token)
        except InvalidToken:
            raise ConfigError(
                "cannot decrypt ledger data: the encryption key differs from the one used"
            ) from None

    @classmethod
    def load(cls, host: HostSettings) -> KeyRing:
        """Keys from env references, else from (or newly created in) the state folder."""
        keys = host.keys
        created = False
        if keys.signing_key is not None:
            signing = _parse_signing(keys.signing_key.get_secret_value())
        else:
            text, made = _local_key(host.state_dir / "keys" / "signing.key", "signing")
            signing = _parse_signing(text)
            created |= made
        if keys.encryption_key is not None:
            enc = keys.encryption_key.get_secret_value()
        else:
            enc, made = _local_key(host.state_dir / "keys" / "encryption.key", "encryption")
            created |= made
        try:
            fernet = Fernet(enc.encode())
        except Exception:
            raise ConfigError("erasure.keys.encryption_key: not a valid Fernet key") from None
        hash_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"erasure item hashes"
        ).derive(base64.urlsafe_b64decode(enc.encode()))
        return cls(signing=signing, fernet=fernet, hash_key=hash_key, created=created)


def _parse_signing(text: str) -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except Exception:
        raise ConfigError(
            "erasure.keys.signing_key: not a base64-encoded 32-byte Ed25519 key "
            "(make one with `erasure keys generate`)"
        ) from None


def _local_key(path: Path, kind: str) -> tuple[str, bool]:
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    private_dir(path.parent)
    signing, enc = generate_keys()
    text = signing if kind == "signing" else enc
    # Written whole to a temporary file, then linked into place: link fails if the key
    # exists, so two processes starting at once never see a half-written or different key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip(), False
    finally:
        tmp.unlink()
    return text, True
