"""Settings of a ``salesforce`` system: the org, how to sign in, which objects hold people."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erasure import ConnectorSettings

__all__ = ["DEFAULT_OBJECTS", "SObjectMap", "SalesforceSettings", "is_loopback"]

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (a local test server may speak plain http)."""
    return (urlsplit(url).hostname or "") in _LOOPBACK


class SObjectMap(BaseModel):
    """How one object holds a subject's data.

    A record belongs to a subject when one of its ``email`` / ``phone`` / ``name`` fields
    holds the subject's value exactly, one of its ``address_lists`` (``"a@x.org; b@y.org"``)
    holds the address, or one of its ``links`` points at a record already found for the
    subject (a Case's ContactId, a Task's WhoId).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: searched with SOSL (people objects: Contact, Lead, person Account); others by SOQL
    search: bool = False
    email: tuple[str, ...] = ()
    phone: tuple[str, ...] = ()
    name: tuple[str, ...] = ()
    address_lists: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    #: the field that links a person record to its Individual (privacy preferences)
    individual: str | None = None
    #: fields a rectification of the postal address sets
    address: tuple[str, ...] = ()
    #: whether rectification changes this object (an email already sent is history)
    rectify: bool = True
    #: leave this standard object out of the mapping altogether
    skip: bool = False
    #: fields exported; empty: every readable field from describe
    export: tuple[str, ...] = ()
    #: ``delete`` erases the record; ``keep`` keeps it (a legal duty) and an erasure
    #: replaces the ``anonymise`` fields instead
    policy: Literal["delete", "keep"] = "delete"
    #: field -> value an anonymisation writes (``""`` clears the field)
    anonymise: dict[str, str | bool] = {}

    @field_validator("email", "phone", "name", "address_lists", "links", "export", "address")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _API_NAME.match(name):
                raise ValueError(f"invalid field name {name!r}")
        return value

    @property
    def matching(self) -> tuple[str, ...]:
        """Every field that can match an identifier."""
        return self.email + self.phone + self.name + self.address_lists

    @property
    def searchable(self) -> bool:
        return bool(self.matching or self.links)


_PERSON_CLEAR = {"FirstName": "", "Email": "", "Phone": "", "MobilePhone": "",
                 "Description": ""}

#: The standard objects' mapping, in the order they are searched (links point backwards).
DEFAULT_OBJECTS: dict[str, SObjectMap] = {
    "Contact": SObjectMap(
        search=True, email=("Email",), phone=("Phone", "MobilePhone", "HomePhone", "OtherPhone"),
        name=("Name",), individual="IndividualId", address=("MailingStreet",),
        anonymise={**_PERSON_CLEAR, "LastName": "Anonymised", "HomePhone": "",
                   "OtherPhone": "", "MailingStreet": "", "MailingCity": "", "Title": ""}),
    "Lead": SObjectMap(
        search=True, email=("Email",), phone=("Phone", "MobilePhone"), name=("Name",),
        individual="IndividualId", address=("Street",),
        anonymise={**_PERSON_CLEAR, "LastName": "Anonymised", "Street": "", "City": ""}),
    "Case": SObjectMap(
        email=("SuppliedEmail",), phone=("SuppliedPhone",), links=("ContactId",),
        anonymise={"SuppliedEmail": "", "SuppliedName": "", "SuppliedPhone": "",
                   "Description": ""}),
    "EmailMessage": SObjectMap(
        email=("FromAddress",), address_lists=("ToAddress", "CcAddress", "BccAddress"),
        links=("ParentId", "RelatedToId"), rectify=False,
        anonymise={"FromName": "", "TextBody": ""}),
    "Task": SObjectMap(links=("WhoId",), anonymise={"Description": ""}),
    "CampaignMember": SObjectMap(links=("ContactId", "LeadId")),
}


class SalesforceSettings(ConnectorSettings):
    """Settings of a ``salesforce`` system. Secrets are ``{ env = "NAME" }`` references."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``https://yourorg.my.salesforce.com``; ``http://127.0.0.1:PORT`` for a local server
    instance_url: str
    #: ``jwt`` (OAuth 2.0 JWT bearer: production), ``password`` (username, password and
    #: security token) or ``session`` (an access token an operator already has)
    auth: Literal["jwt", "password", "session"] = "jwt"
    username: str | None = None
    consumer_key: SecretStr | None = None
    private_key: SecretStr | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    session_id: SecretStr | None = None
    #: ``login``, ``test`` (sandboxes) or your My Domain (``acme.my``)
    domain: str = "login"
    #: where ``domain``'s login goes instead (loopback only: a local test server)
    login_url: str | None = None
    api_version: str = "59.0"
    objects: dict[str, SObjectMap] = Field(default_factory=lambda: dict(DEFAULT_OBJECTS))
    #: follow people's IndividualId to their Individual (a finding of its own)
    individuals: bool = True
    #: most records one SOSL search returns (Salesforce: 2,000); a search that returns
    #: this many may have been cut short, and the batch is searched by SOQL instead
    search_cap: int = Field(default=2000, ge=1, le=2000)
    #: most characters in one FIND {...} clause; longer batches take several searches
    search_chars: int = Field(default=3800, ge=100, le=10000)
    #: fields set on a person record when it is restricted, besides its Individual's
    #: HasOptedOutProcessing
    restrict_fields: tuple[str, ...] = ("HasOptedOutOfEmail", "DoNotCall")
    #: checkboxes an objection to direct marketing sets on a person record (and the
    #: Individual's HasOptedOutSolicit where there is one)
    marketing_fields: tuple[str, ...] = ("HasOptedOutOfEmail", "DoNotCall")
    #: region for phone numbers stored without a country code (e.g. "DE"); none: such
    #: numbers never match
    phone_region: str | None = None
    timeout: float = Field(default=60.0, gt=0, le=600)
    #: seconds between polls of a submitted hardDelete job (they finish within minutes)
    poll_seconds: float = Field(default=60.0, ge=0, le=86400)

    @field_validator("instance_url", "login_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.scheme == "http" and not is_loopback(value):
            raise ValueError("plain http is only for a local server (127.0.0.1)")
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2,3}\.0", value):
            raise ValueError('api_version looks like "59.0"')
        return value

    @field_validator("objects", mode="before")
    @classmethod
    def _over_defaults(cls, value: object) -> object:
        # A section names the objects it changes; the standard objects it does not name
        # keep their mapping (configuring Case alone must not stop the search for Contacts).
        if isinstance(value, dict):
            return {**DEFAULT_OBJECTS, **value}
        return value

    @field_validator("objects")
    @classmethod
    def _objects(cls, value: dict[str, SObjectMap]) -> dict[str, SObjectMap]:
        for name in value:
            if not _API_NAME.match(name):
                raise ValueError(f"invalid object name {name!r}")
        value = {n: m for n, m in value.items() if not m.skip}
        if not value:
            raise ValueError("map at least one object")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SalesforceSettings:
        need = {"jwt": ("username", "consumer_key", "private_key"),
                "password": ("username", "password", "security_token"),
                "session": ("session_id",)}[self.auth]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f'auth = "{self.auth}" needs {", ".join(missing)}')
        if self.login_url is not None and not is_loopback(self.login_url):
            raise ValueError("login_url is only for a local server; use domain")
        return self
