"""Settings of a ``zendesk`` system: where the account is, how to sign in, what to do."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from erasure import ConnectorSettings, ObjectionScope

__all__ = ["ZendeskSettings"]

_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_FIELD_KEY = re.compile(r"^[a-z0-9_]{1,64}$")
_TAG = re.compile(r"^[a-z0-9_/-]{1,80}$")


class ZendeskSettings(ConnectorSettings):
    """Settings of a ``zendesk`` system.

    Secrets are ``{ env = "NAME" }`` references in the config (the loader refuses them
    inline); their repr never shows the value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``acme`` for https://acme.zendesk.com; or give ``url``
    subdomain: str | None = None
    #: any other base: a sandbox, a proxy, a local test server (``http://127.0.0.1:PORT``);
    #: the API is under ``<url>/api/v2``
    url: str | None = None
    #: agent email for API-token auth (with ``token``)
    email: str | None = None
    token: SecretStr | None = None
    #: or an OAuth access token
    oauth_token: SecretStr | None = None
    #: tickets the subject requested: ``delete`` (then permanently) or ``redact`` (kept by
    #: policy: the subject's comments are redacted and their attachments removed)
    requested_tickets: Literal["delete", "redact"] = "delete"
    #: also find tickets where the person only commented (search ``commenter:``)
    find_commented: bool = True
    #: also search ticket text for the subject's emails and phones (someone else's ticket
    #: quoting them); such comments are redacted, the ticket kept
    search_text: bool = False
    #: what ``restrict`` does to the user: add ``restrict_tag`` and/or suspend
    restrict_with: list[Literal["tag", "suspend"]] = Field(default=["tag"], min_length=1)
    restrict_tag: str = "erasure-restricted"
    #: the tag an objection (Art. 21) adds to the user, per scope it can honour
    #: (``marketing``, ``profiling``); a scope left out is reported not covered
    objection_tags: dict[str, str] = {"marketing": "erasure-objection-marketing"}
    #: custom user fields holding an email or a phone, by field key (``erasure discover``
    #: proposes them): searched, matched exactly, corrected by rectify
    user_fields: dict[str, Literal["email", "phone"]] = {}
    #: values per search query (``email:"a" email:"b"`` ...), kept under URL limits
    search_batch: int = Field(default=20, ge=1, le=50)
    timeout: float = Field(default=30.0, gt=0, le=300)
    #: seconds between polls of the deletion jobs (job statuses usually end in seconds;
    #: one request reads them all)
    poll_seconds: float = Field(default=5.0, ge=0, le=3600)

    @field_validator("subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is not None and not _SUBDOMAIN.match(value):
            raise ValueError("invalid subdomain (letters, digits and '-' only)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be http(s)://host[:port][/path]")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("url takes no query, fragment or credentials")
        return value.rstrip("/")

    @field_validator("restrict_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not _TAG.match(value):
            raise ValueError("invalid tag (lower-case letters, digits, _ - / only)")
        return value

    @field_validator("user_fields")
    @classmethod
    def _user_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _FIELD_KEY.match(key):
                raise ValueError("user_fields: a field key is lower-case letters, digits "
                                 "and _ only")
        return value

    @field_validator("objection_tags")
    @classmethod
    def _objection_tags(cls, value: dict[str, str]) -> dict[str, str]:
        scopes = {s.value for s in ObjectionScope}
        for scope, tag in value.items():
            if scope not in scopes:
                raise ValueError(f"objection_tags: unknown scope {scope!r} "
                                 f"(known: {', '.join(sorted(scopes))})")
            if not _TAG.match(tag):
                raise ValueError("objection_tags: invalid tag (lower-case letters, digits, "
                                 "_ - / only)")
        return value

    @model_validator(mode="after")
    def _where_and_who(self) -> ZendeskSettings:
        if (self.subdomain is None) == (self.url is None):
            raise ValueError("give exactly one of subdomain and url")
        if self.oauth_token is not None:
            if self.token is not None:
                raise ValueError("give token (with email) or oauth_token, not both")
        elif self.token is None or not self.email:
            raise ValueError("auth needs email and token, or oauth_token")
        return self

    @property
    def base(self) -> str:
        """The account's base URL (without ``/api/v2``)."""
        return self.url or f"https://{self.subdomain}.zendesk.com"
