"""Settings of a ``notify`` system: one processor, how it is told, and what it may see."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from erasure import ConnectorSettings, Identifier, IdentifierType, UsageError

__all__ = ["DEFAULT_SUBJECT", "DEFAULT_TEMPLATE", "LOOPBACK", "NotifySettings"]

#: the built-in template (``templates/notice.txt.j2``)
DEFAULT_TEMPLATE = "default"
DEFAULT_SUBJECT = ("{% if reminder %}Reminder {{ reminder }}: {% endif %}"
                   "GDPR Art. {{ article }} notice: {{ action }} of "
                   "{{ notices | length }} data subject{{ 's' if notices | length != 1 }}")
#: hosts a transport may reach without encryption: this machine only
LOOPBACK = frozenset({"127.0.0.1", "::1"})
_SMTP_ONLY = ("host", "port", "username", "password", "sender", "to")
_WEBHOOK_ONLY = ("url",)
_DEFAULT_PORTS = {"tls": 465, "starttls": 587, "plain": 25}


def _loopback(host: str) -> bool:
    try:
        return str(ipaddress.ip_address(host.strip("[]"))) in LOOPBACK
    except ValueError:
        return False


def _address(value: str) -> str:
    try:
        return Identifier.parse(IdentifierType.EMAIL, value).value
    except UsageError:
        raise ValueError("not an email address") from None


class NotifySettings(ConnectorSettings):
    """One processor told by email (``transport = "smtp"``) or by a signed webhook
    (``transport = "webhook"``).

    ``identifiers`` are the identifier types this processor was given (a telecom carrier:
    ``["phone"]``); a notice names only those, never the rest of what is known.
    """

    transport: Literal["smtp", "webhook"]
    #: the identifier types the processor receives; nothing else is ever sent to it
    identifiers: tuple[IdentifierType, ...] = Field(min_length=1)
    #: ``"default"`` (built in) or the path of a Jinja2 template file for the message text
    template: str = DEFAULT_TEMPLATE
    #: the subject line (email) or ``subject`` field (webhook): a Jinja2 template too
    subject: str = Field(DEFAULT_SUBJECT, min_length=1, max_length=500)
    #: ``run``: one message per call (every request due in the run's batch); ``request``:
    #: one message per request
    batch: Literal["run", "request"] = "run"
    #: who asks (shown in the message): the controller's name
    controller: str = Field("the controller", min_length=1, max_length=200)
    #: seconds a connection and each exchange may take
    timeout: float = Field(30, gt=0, le=300)

    # smtp -----------------------------------------------------------------------------
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    #: ``tls`` (implicit TLS, port 465), ``starttls`` (587), or ``plain``: only to 127.0.0.1
    security: Literal["tls", "starttls", "plain"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()

    # webhook --------------------------------------------------------------------------
    #: ``https://...`` (``http://`` only to 127.0.0.1)
    url: str | None = None
    #: the HMAC-SHA256 key both sides hold: signs webhook notices, verifies signed
    #: confirmations (optional with smtp: only for signed confirmations)
    secret: SecretStr | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(v) for v in value)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("identifiers")
    @classmethod
    def _distinct(cls, value: tuple[IdentifierType, ...]) -> tuple[IdentifierType, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("template")
    @classmethod
    def _template_file(cls, value: str) -> str:
        if value != DEFAULT_TEMPLATE and not Path(value).is_file():
            raise ValueError(f"no template file {value!r} (or \"{DEFAULT_TEMPLATE}\")")
        return value

    @model_validator(mode="after")
    def _transport(self) -> NotifySettings:
        if self.transport == "smtp":
            self._smtp()
        else:
            self._webhook()
        from .message import compile_templates

        compile_templates(self)  # a syntax error is a config error, not a failed send
        return self

    def _smtp(self) -> None:
        stray = [k for k in _WEBHOOK_ONLY if getattr(self, k) is not None]
        if stray:
            raise ValueError(f"{', '.join(stray)}: belong to transport \"webhook\"")
        missing = [k for k in ("host", "sender") if getattr(self, k) is None]
        if not self.to:
            missing.append("to")
        if missing:
            raise ValueError(f"transport \"smtp\" needs {', '.join(missing)}")
        assert self.host is not None
        if self.security == "plain" and not _loopback(self.host):
            raise ValueError("security \"plain\" is allowed only to 127.0.0.1 (use tls or "
                             "starttls)")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")

    def _webhook(self) -> None:
        stray = [k for k in _SMTP_ONLY if getattr(self, k) not in (None, ())]
        if stray:
            raise ValueError(f"{', '.join(stray)}: belong to transport \"smtp\"")
        if self.url is None or self.secret is None:
            raise ValueError("transport \"webhook\" needs url and secret")
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("url must be an https:// URL")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("url must be https:// (http:// only to 127.0.0.1)")
        if parts.username or parts.password:
            raise ValueError("url must not hold credentials (the secret signs the body)")

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("secret must be at least 16 characters")
        return value

    def smtp_port(self) -> int:
        """The configured port, or the usual one for ``security``."""
        return self.port or _DEFAULT_PORTS[self.security]

    def domain(self) -> str:
        """The domain message ids are made in: the sender's, or the webhook's host."""
        if self.sender:
            return self.sender.rsplit("@", 1)[1]
        return urlsplit(self.url or "").hostname or "localhost"
