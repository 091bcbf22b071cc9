"""Settings of an ``s3`` system: where to look (rules per bucket and prefix) and how to connect."""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from erasure import ConnectorSettings, IdentifierType
from erasure.phonetext import PhoneRegion

__all__ = ["EEA_REGIONS", "Rule", "S3Settings"]

#: AWS regions inside the European Economic Area. London (eu-west-2) and Zurich
#: (eu-central-2) are outside it, whatever adequacy decisions say: the policy promises EEA.
EEA_REGIONS = (
    "eu-central-1",  # Frankfurt
    "eu-north-1",  # Stockholm
    "eu-south-1",  # Milan
    "eu-south-2",  # Spain
    "eu-west-1",  # Ireland
    "eu-west-3",  # Paris
    "eusc-de-east-1",  # European Sovereign Cloud, Brandenburg
)

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d$")
_TAG_KEY = re.compile(r"^[\w .:/=+@-]{1,128}$")
Content = Literal["auto", "none", "jsonl", "csv", "json", "text"]


class Rule(BaseModel):
    """Where one bucket (or a prefix of it) holds personal data and how to find it.

    A rule may combine every locator: a key template, tags, user metadata and a content
    scan. ``mode`` says what an erasure does to what was found.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str
    #: only keys under this prefix are looked at.
    prefix: str = ""
    #: keys that belong to one subject: ``"customers/{customer_id}/"`` (one placeholder,
    #: an identifier type; the value is one key segment, never containing ``/``).
    key_template: str | None = None
    #: object tag key -> identifier type (exact value, emails case-insensitively).
    tags: dict[str, IdentifierType] = {}
    #: user metadata key (``x-amz-meta-<key>``) -> identifier type.
    metadata: dict[str, IdentifierType] = {}
    #: content scan: ``auto`` picks by key suffix (.jsonl .ndjson .csv .json .txt .log, each
    #: optionally .gz) and content type; ``none`` scans nothing.
    content: Content = "auto"
    #: record field (JSON key, CSV column) -> identifier type. Emails, phones and IPs are
    #: recognised in any field; customer ids, user ids and names only in fields named here.
    fields: dict[str, IdentifierType] = {}
    #: ``object``: an item is a whole object, erased with every version. ``rows``: objects
    #: are shared by many people (a CSV export); an item is a row (line), erased by writing
    #: the object back without it and deleting the older versions that hold it.
    mode: Literal["object", "rows"] = "object"

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError("invalid bucket name")
        return value

    @field_validator("tags", "metadata")
    @classmethod
    def _keys(cls, value: dict[str, IdentifierType]) -> dict[str, IdentifierType]:
        for key in value:
            if not _TAG_KEY.match(key):
                raise ValueError("invalid tag or metadata key")
        return value

    @model_validator(mode="after")
    def _template(self) -> Rule:
        if self.key_template is not None:
            names = [n for _, n, _, _ in string.Formatter().parse(self.key_template) if n]
            if len(names) != 1 or names[0] not in {t.value for t in IdentifierType}:
                raise ValueError("key_template needs exactly one placeholder naming an "
                                 'identifier type, e.g. "customers/{customer_id}/"')
            if not self.key_template.startswith(self.prefix):
                raise ValueError("key_template must start with the rule's prefix")
        if self.mode == "rows" and self.content in ("none", "json"):
            raise ValueError('mode "rows" needs line content (auto, jsonl, csv or text)')
        if self.mode == "rows" and (self.key_template or self.tags or self.metadata):
            raise ValueError('mode "rows" finds rows by content only (a key, tag or metadata '
                             "match belongs to the whole object)")
        return self

    @property
    def template_type(self) -> IdentifierType | None:
        """The identifier type of the key template's placeholder."""
        if self.key_template is None:
            return None
        name = next(n for _, n, _, _ in string.Formatter().parse(self.key_template) if n)
        return IdentifierType(name)


class S3Settings(ConnectorSettings):
    """Settings of an ``s3`` system.

    Credentials are ``{ env = "NAME" }`` references, or left out to use the default AWS
    chain (environment, shared config, instance or task role).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(min_length=1)
    region: str = "eu-central-1"
    #: an S3-compatible endpoint (MinIO, a local moto server); default: AWS.
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    #: bucket regions personal data may be stored in; anything found elsewhere is flagged.
    allowed_regions: list[str] = list(EEA_REGIONS)
    #: how ``restrict`` marks an object: a legal hold where the bucket has object lock
    #: (``auto``) else a tag; ``legal_hold`` fails where there is no object lock.
    restrict_with: Literal["auto", "legal_hold", "tag"] = "auto"
    #: the tag ``restrict`` sets (value ``true``) when it cannot or may not use a legal hold.
    restrict_tag: str = "erasure-restricted"
    #: botocore's own attempts (standard retry mode) under the host's retries; kept small so
    #: that the host's backoff and deferral decide, not a long hidden loop. (A system's
    #: ``max_attempts`` is the host's own setting.)
    sdk_max_attempts: int = Field(default=2, ge=1, le=5)
    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    read_timeout: float = Field(default=30.0, gt=0, le=600)
    #: versions read at once while finding (S3 answers each read after a round trip).
    read_workers: int = Field(default=8, ge=1, le=64)
    #: keys per listing page (ListObjectVersions, ListObjectsV2, ListMultipartUploads) and
    #: per DeleteObjects request. 1,000 is S3's maximum; a store or proxy that answers
    #: fewer, or cuts large responses, wants less (every page is read, whatever the size).
    page_size: int = Field(default=1000, ge=1, le=1000)
    #: objects larger than this are reported (a failed item on delete) rather than rewritten
    #: in ``rows`` mode, or exported as metadata only.
    max_object_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    #: ``erasure systems check`` notes unfinished multipart uploads under the rules'
    #: prefixes started more than this many days ago (their parts hold data until aborted).
    stale_upload_days: float = Field(default=7.0, ge=0)
    #: phones written in national form in content (``0113 000 0001`` with "GB"); unset:
    #: ``[erasure] default_phone_region``, or international forms only
    phone_region: PhoneRegion | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError("invalid region name")
        return value

    @field_validator("restrict_tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not _TAG_KEY.match(value):
            raise ValueError("invalid tag key")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> S3Settings:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together (or leave both "
                             "out for the default AWS credential chain)")
        return self
