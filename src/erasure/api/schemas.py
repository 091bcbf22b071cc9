"""The HTTP API's bodies (pydantic): a request as a ticketing workflow submits it, after the
OpenDSR specification, and what the API answers. These are also the OpenAPI document's
schemas; no FastAPI here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

__all__ = ["Correction", "FieldError", "FieldErrors", "Identity", "Problem", "RequestStatus",
           "SubmitRequest", "SystemState", "TokenScope"]

#: what a bearer token may do: submit requests, read them, fetch access packages, or all
TokenScope = Literal["submit", "read", "package", "admin"]
#: the engine's request types (``find`` is for the CLI's dry look, not for tickets)
RequestTypeName = Literal["access", "portability", "erasure", "restriction", "rectification",
                          "objection"]
#: a time as the API answers it: UTC with its offset (RFC 3339 ``date-time`` needs one; the
#: ledger stores naive UTC)
UtcDatetime = Annotated[datetime, AfterValidator(
    lambda d: d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC))]
#: how far ahead of the server's clock a submitted_time may be (clocks drift)
MAX_CLOCK_SKEW = timedelta(minutes=5)
IdentityType = Literal["email", "phone", "customer_id", "user_id", "name", "ip"]


class _Body(BaseModel):
    # a field we do not know is a mistake worth a 422, not something to ignore silently
    model_config = ConfigDict(extra="forbid")


class Identity(_Body):
    """One identifier of the subject (OpenDSR ``subject_identities`` item)."""

    identity_type: IdentityType
    identity_value: str = Field(min_length=1, max_length=320)
    #: only raw values can be searched for; hashed ones (OpenDSR ``sha256``) cannot
    identity_format: Literal["raw"] = "raw"

    @model_validator(mode="after")
    def _well_formed(self) -> Identity:
        # The engine's own check (an email's shape, a phone number in international form,
        # an IP address): a bad value is a field error of this item, not a 422 without one.
        # Its message names the problem, never the value.
        from ..errors import UsageError
        from ..models import Identifier

        if self.identity_type == "phone" and not self.identity_value.lstrip().startswith(
                ("+", "00")):
            return self  # a national form: read with the configured region, then checked
        try:
            Identifier.parse(self.identity_type, self.identity_value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return self


class Correction(_Body):
    """Rectification: one correct value."""

    type: Literal["email", "phone", "name", "address"]
    value: str = Field(min_length=1, max_length=500)


class SubmitRequest(_Body):
    """A data-subject request (OpenDSR fields plus ticket, verified flag and id space)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "subject_request_id": "3f1c2a9e-7d4b-4c1e-9a55-0b6f2e8d1c44",
        "subject_request_type": "erasure",
        "subject_identities": [{"identity_type": "email",
                                "identity_value": "jane@example.org",
                                "identity_format": "raw"}],
        "submitted_time": "2026-12-01T09:30:00Z",
        "ticket": "ZD-4711", "verified": True}]})

    subject_request_id: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$",
        description="The caller's own id of this request (a UUID): the same id again "
                    "returns the request recorded before.")
    subject_request_type: RequestTypeName
    subject_identities: list[Identity] = Field(min_length=1, max_length=50)
    submitted_time: datetime | None = Field(
        None, description="When the person asked (the one-month deadline runs from it).")
    status_callback_urls: list[str] = Field(
        default_factory=list, max_length=5,
        description="http(s) URLs told of every state change (signed, see docs/api.md): "
                    "no user or password, no fragment, no link-local address.")
    status_callback_secret: SecretStr | None = Field(
        None, json_schema_extra={"minLength": 16, "maxLength": 200},
        description="Signs this request's callbacks (else its token's secret, else the "
                    "server's); kept encrypted, never shown again.")
    ticket: str | None = Field(None, max_length=200,
                               description="The ticket reference (no free text).")
    verified: bool = Field(False, description="The subject's identity was checked.")
    id_space: str | None = Field(None, max_length=63,
                                 description="Id space of customer_id/user_id identities.")
    corrections: list[Correction] = Field(default_factory=list, max_length=10,
                                          description="Rectification only.")
    scope: Literal["marketing", "profiling"] | None = Field(
        None, description="Objection only (default marketing).")

    @field_validator("status_callback_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        # pydantic would count a SecretStr's length in "items"
        if value is not None and not 16 <= len(value.get_secret_value()) <= 200:
            raise ValueError("must be 16 to 200 characters long")
        return value

    @field_validator("submitted_time")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        # the deadline runs from it: a date ahead would put the due date off (2099 -> 2099)
        if value is None:
            return None
        try:
            # in UTC here, as the ledger stores it: 0001-01-01T00:00+14:00 is before the
            # first instant a datetime holds in UTC, and converting it later was a 500
            when = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError:
            raise ValueError("is before 0001-01-01T00:00:00Z: give when the person "
                             "asked") from None
        if when > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("is in the future (more than 5 minutes ahead of the "
                             "server's clock): give when the person asked")
        return when


class SystemState(BaseModel):
    """One system's part of a request: where its task is, and what it waits on."""

    system: str
    state: str = Field(description="The task's state (docs/architecture.md), or `blocked`: "
                                   "it waits for an operator's `erasure retry`.")
    outcome: str | None = None
    waits: str | None = Field(None, description="What the task waits on, and why.")
    not_before: UtcDatetime | None = None


class RequestStatus(BaseModel):
    """A request as the API shows it (no identifiers: they are purged at its end)."""

    id: str
    subject_request_id: str | None = None
    subject_request_type: str
    ticket: str | None = None
    status: Literal["pending", "in_progress", "completed", "cancelled", "failed"]
    outcome: str | None = None
    received_time: UtcDatetime
    due_time: UtcDatetime
    finished_time: UtcDatetime | None = None
    systems: list[SystemState]
    links: dict[str, str] = Field(default_factory=dict)


class Problem(BaseModel):
    """Every answer but success and a malformed request: a one-line message."""

    detail: str


class FieldError(BaseModel):
    """One thing wrong with a request: where (``["body", "subject_identities", 0]``) and
    what; never the value sent."""

    loc: list[str | int]
    msg: str
    type: str


class FieldErrors(BaseModel):
    """A malformed request (422): what is wrong, field by field."""

    detail: list[FieldError]
