"""The ``mail`` connector's config section: one model for the three backends."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

import erasure
from erasure.phonetext import PhoneRegion

__all__ = ["MailSettings"]


class MailSettings(erasure.ConnectorSettings):
    """Where the archive is and how to search, restrict and sweep it.

    IMAP: ``host``, ``port``, ``security`` (``tls``: implicit TLS, ``starttls``, or ``plain``
    for a server on this machine only), ``username`` and ``password`` (an env reference,
    ``password = { env = "MAIL_PASSWORD" }``: the config loader refuses inline secrets).
    Maildir: ``path`` is the Maildir++ root (its ``.Sub`` folders are folders too).
    mbox: ``path`` is one mbox file, or a folder whose files are mbox folders.
    """

    backend: Literal["imap", "maildir", "mbox"]
    # IMAP
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["tls", "starttls", "plain"] = "tls"
    username: str | None = None
    password: SecretStr | None = None
    #: seconds before a connect or a read gives up (TransientError): a hung server must
    #: not hold a run's lease for ever
    timeout: float = Field(default=30.0, gt=0)
    # Maildir / mbox
    path: Path | None = None
    # every backend
    #: folders never searched (exact names); every other selectable folder is, Sent and
    #: Trash included
    exclude_folders: tuple[str, ...] = ()
    #: also search message bodies for addresses and phone numbers (slower on IMAP)
    search_body: bool = False
    #: the region of phones written in national form in bodies (``0113 000 0001`` with
    #: "GB"); unset: ``[erasure] default_phone_region``, or international forms only
    phone_region: PhoneRegion | None = None
    #: restrict by moving messages to this folder (created if missing); unset: by keyword
    restricted_folder: str | None = None
    #: the IMAP keyword (Maildir: Dovecot keyword letter; mbox: X-Keywords) of restriction
    restricted_keyword: str = Field(default="$Restricted", pattern=r"^[A-Za-z0-9$_.\-]+$")
    #: retention of mail in months (``erasure sweep``); 0 turns the sweep off
    retention_months: int = Field(default=12, ge=0)
    #: what dates a message: the server's arrival time, or its Date header
    retention_date: Literal["internaldate", "header"] = "internaldate"
    #: UIDs per UID STORE / UID EXPUNGE command when many messages go at once
    expunge_chunk: int = Field(default=1000, ge=1, le=100_000)
    #: UIDs per UID FETCH command (find, export): a server that limits responses wants fewer
    fetch_chunk: int = Field(default=500, ge=1, le=100_000)

    @model_validator(mode="after")
    def _backend_fields(self) -> MailSettings:
        if self.backend == "imap":
            missing = [n for n in ("host", "username", "password") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"imap backend needs {', '.join(missing)}")
            if self.security == "plain" and self.host not in ("127.0.0.1", "::1", "localhost"):
                # A password in clear over a network: only a server on this machine.
                raise ValueError("security = 'plain' is only allowed for a local server "
                                 "(host 127.0.0.1, ::1 or localhost)")
        elif self.path is None:
            raise ValueError(f"{self.backend} backend needs path")
        return self

    @property
    def imap_port(self) -> int:
        """The port to connect to: given, or the default of the security mode."""
        return self.port or (993 if self.security == "tls" else 143)
