"""Configuration: one TOML file with an ``[erasure]`` host section and ``[systems.<name>]``.

Secrets are only ever ``{ env = "NAME" }`` references; an inline secret-looking value is an
error. Every problem is collected and reported at once, each naming its section and key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .freetext import DEFAULT_TICKET_PATTERN
from .idspaces import GLOBAL_TYPES, IdSpace, IdSpaces
from .models import IdentifierType, Policy
from .phonetext import PhoneRegion
from .statement import (
    ControllerStatement,
    SystemStatement,
    parse_controller,
    parse_statement,
    statement_warnings,
)

__all__ = [
    "CONFIG_ENV",
    "ApiSettings",
    "Config",
    "HostSettings",
    "RetrySettings",
    "SystemConfig",
    "SystemLimits",
    "load_config",
    "parse_config",
]

CONFIG_ENV = "ERASURE_CONFIG"
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|api_?key|private_?key|access_?key|credential|signing_key|"
    r"encryption_key|hash_?key)",
    re.IGNORECASE,
)
_MAPPING_TABLES = frozenset({"anonymise", "identifiers", "columns"})
# user:password@ or :password@ (no user) in the authority, or a password in the query
_URL_WITH_PASSWORD = re.compile(
    r"^[a-z][a-z0-9+.-]*://(?:[^/:@\s]*:[^/@\s]+@|[^?#\s]*\?(?:[^#\s]*[&;])?"
    r"[a-z_.-]*(?:password|passwd|pwd|secret|token|api_?key|access_?key|signature|auth)"
    r"=[^&;#\s]+)",
    re.IGNORECASE)
# One key=value pair of a libpq or ODBC connection string ("host=db user=app password=x",
# "Server=db;Uid=app;Pwd={x};"): a value is bare, 'quoted' or {braced}; pairs are
# separated by spaces or semicolons. Read pair by pair (no backtracking across pairs).
_KEY_VALUE_PAIR = re.compile(
    r"\s*([A-Za-z_][\w.-]*(?: [A-Za-z_][\w.-]*)?)\s*=\s*"
    r"('(?:[^'\\]|\\.)*'|\{[^}]*\}|[^\s;'{]*)\s*;?")
_SECRET_PAIR_KEY = re.compile(
    r"[a-z_]*(?:password|passwd|pwd|secret|token|api_?key|access_?key)", re.IGNORECASE)
_SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Keys of a [systems.X] section that belong to the host, not the connector's Settings.
HOST_KEYS = ("connector", "policy", "reason", "enabled", "max_attempts", "statement", "limits")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Strict):
    """Retry policy for transient errors: exponential backoff with jitter."""

    max_attempts: int = Field(5, ge=1, le=100)
    deadline_seconds: float = Field(240, gt=0)  # shorter than lease_seconds
    initial_wait: float = Field(0.5, ge=0)
    max_wait: float = Field(60, ge=0)
    #: after a call's retries: the task waits this long before a later run tries again,
    #: doubling each time up to ``defer_max`` (a Retry-After or quota reset wins)
    defer_initial: float = Field(60, ge=0)
    defer_max: float = Field(6 * 3600, ge=0)
    #: a task still failing this close to its request's due date fails for good
    give_up_before_due_hours: float = Field(48, ge=0)
    #: how long one system may keep failing (transiently) within one run: from its first
    #: failure, retries stop after this many seconds, and its other calls of the run are
    #: deferred without being made, so a command against a dead system returns
    system_budget_seconds: float = Field(60, gt=0)


class SystemLimits(_Strict):
    """``[systems.X] limits``: what every runner and worker on the ledger together may
    ask of the system (its API's quota), enforced around each call attempt."""

    #: calls per second after the first ``burst`` (a token bucket shared through the ledger)
    calls_per_second: float | None = Field(None, gt=0)
    burst: int = Field(1, ge=1, le=10_000)
    #: calls in flight at once, across all processes
    concurrent: int | None = Field(None, ge=1, le=1000)


class KeySettings(_Strict):
    """Production keys as env references. Unset: generated once in the state folder."""

    signing_key: SecretStr | None = None
    encryption_key: SecretStr | None = None


class ZendeskApiSettings(_Strict):
    """``[erasure.api.zendesk]``: tickets tagged in Zendesk become requests through the
    webhook ``POST /v1/webhooks/zendesk``, and each request's outcome is posted back on its
    ticket (docs/api.md)."""

    #: the webhook's signing secret (Zendesk shows it on the webhook); an env reference
    signing_secret: SecretStr
    #: the account, to post outcomes back: ``acme`` (acme.zendesk.com) or a ``url``
    subdomain: str | None = Field(None, pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
    url: str | None = Field(None, pattern=r"^https?://[^/?#@\s]+(/[^?#@\s]*)?$")
    #: an agent's email with an API token, or an OAuth token (env references)
    email: str | None = None
    token: SecretStr | None = None
    oauth_token: SecretStr | None = None
    #: ticket tag -> the request type it asks for (exactly one on a ticket)
    type_tags: dict[str, Literal["access", "portability", "erasure", "restriction",
                                 "objection"]] = Field(min_length=1)
    #: the tag an agent sets once the requester's identity was checked
    verified_tag: str = "identity_verified"
    #: the ticket's requester email is one of the subject's identifiers
    requester_email: bool = True
    #: custom ticket field id -> the identifier type its value holds
    identifier_fields: dict[str, Literal["email", "phone", "customer_id", "user_id"]] = {}
    #: the tag set at the end is <prefix><type>_<status>: ``dsr_access_completed``,
    #: ``dsr_erasure_failed``, ``dsr_erasure_cancelled`` ...
    status_tag_prefix: str = Field("dsr_", pattern=r"^[a-z0-9_-]{0,40}$")
    #: a webhook signed longer ago than this (or ahead of it) is refused
    max_age_seconds: int = Field(300, ge=30, le=3600)
    timeout: float = Field(30, gt=0, le=300)

    @model_validator(mode="after")
    def _account(self) -> ZendeskApiSettings:
        if (self.subdomain is None) == (self.url is None):
            raise ValueError("give subdomain or url (where to post outcomes back)")
        if self.oauth_token is None and (self.email is None or self.token is None):
            raise ValueError("give email with token, or oauth_token")
        return self


class ApiSettings(_Strict):
    """The ``[erasure.api]`` section: ``erasure serve`` (docs/api.md)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: a request body larger than this is refused (413) before it is read whole
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: run due work in the server's own runner (off: cron or workers run `erasure run`)
    runner: bool = True
    #: seconds between the runner's looks for due work when nothing woke it
    poll_seconds: float = Field(5, gt=0, le=3600)
    #: signs status callbacks (HMAC-SHA256) of requests without a secret of their own or
    #: of their token; an env reference. Unset: such requests may not ask for callbacks
    callback_secret: SecretStr | None = None
    #: attempts per callback before it is given up (backoff doubles from 1 s to 10 min)
    callback_attempts: int = Field(12, ge=1, le=100)
    #: seconds `erasure run` spends sending due callbacks at its end (0: leave them to
    #: `erasure serve`'s sender)
    run_callback_seconds: float = Field(10, ge=0, le=600)
    #: the Zendesk ticket trigger (unset: POST /v1/webhooks/zendesk answers 404)
    zendesk: ZendeskApiSettings | None = None


class HostSettings(_Strict):
    """The ``[erasure]`` section."""

    state_dir: Path = Path(".erasure")
    ledger: SecretStr | None = None
    export_dir: Path | None = None
    require_approval: bool = False
    strong_identifiers: tuple[IdentifierType, ...] = (
        IdentifierType.EMAIL,
        IdentifierType.CUSTOMER_ID,
        IdentifierType.USER_ID,
    )
    expansion_rounds: int = Field(2, ge=0, le=10)
    batch_size: int = Field(500, ge=1, le=100_000)
    max_workers: int = Field(8, ge=1, le=128)
    lease_seconds: float = Field(300, ge=1)
    #: days after which a processor that was told and has not confirmed is reminded
    confirmation_reminder_days: float = Field(7, gt=0)
    #: hours between two checks of an item kept by a hold that may be lifted (an S3 legal
    #: hold): the task waits and acts on it again until the request's give-up time
    hold_recheck_hours: float = Field(24, gt=0)
    #: days an access or portability package is kept (an erasure of the same person
    #: deletes it at once)
    package_days: float = Field(30, gt=0)
    #: encrypt packages (AES zip) with a password made per request and shown once
    package_password: bool = False
    #: what a --ticket (and a processor's --reference) must match, whole: a reference,
    #: never free text that could carry personal data into the receipts
    ticket_pattern: str = DEFAULT_TICKET_PATTERN
    #: the region of phone numbers written in national form in free text (``0113 000
    #: 0001`` read as +44 113 000 0001 with "GB"); a system's ``phone_region`` wins.
    #: Unset: only international forms (+44..., 0044...) are found in free text.
    default_phone_region: PhoneRegion | None = None
    retry: RetrySettings = RetrySettings()
    keys: KeySettings = KeySettings()
    api: ApiSettings = ApiSettings()
    #: the Celery broker of `erasure worker` and `erasure run --distributed` (RabbitMQ
    #: ``amqp://`` or Redis ``redis://``); an env reference, as it may hold a password
    broker: SecretStr | None = None
    #: the broker queue the batches go through (one per deployment sharing a broker)
    queue: str = Field("erasure", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    #: seconds between the heartbeats each `erasure worker` process writes in the ledger,
    #: busy or idle; `erasure status` shows a worker gone after three missed beats
    heartbeat_seconds: float = Field(10, gt=0, le=3600)

    @field_validator("ticket_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _lease_outlives_a_call(self) -> HostSettings:
        # The heartbeat renews leases while a call runs; a lease shorter than a call's
        # deadline would still expire if the heartbeat were held up for a whole call.
        if self.lease_seconds <= self.retry.deadline_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must be longer than "
                f"retry.deadline_seconds ({self.retry.deadline_seconds:g})")
        return self

    def ledger_url(self) -> str:
        if self.ledger is not None:
            return self.ledger.get_secret_value()
        return f"sqlite:///{self.state_dir / 'ledger.db'}"

    def exports(self) -> Path:
        return self.export_dir if self.export_dir is not None else self.state_dir / "exports"


@dataclass(frozen=True)
class SystemConfig:
    """One configured system: a named instance of a connector."""

    name: str
    connector: str
    policy: Policy = Policy.ERASE
    reason: str | None = None
    enabled: bool = True
    max_attempts: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: what the system may be asked by every process together (rate, concurrency)
    limits: SystemLimits | None = None

    #: what the access package says about the system (Art. 15; statement.py)
    statement: SystemStatement = field(default_factory=SystemStatement)
    #: env references of its settings that are not set (``defer_secrets``), one line
    #: each: the system cannot be contacted, every other command works
    unset: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"SystemConfig({self.name!r}, connector={self.connector!r}, policy={self.policy})"


@dataclass(frozen=True)
class Config:
    """A validated configuration."""

    host: HostSettings
    systems: Mapping[str, SystemConfig]
    path: Path | None = None
    id_spaces: IdSpaces = field(default_factory=IdSpaces)
    #: the ``[controller]`` section: the access package's Art. 15 statement
    controller: ControllerStatement = field(default_factory=ControllerStatement)

    def statement_warnings(self, exporting: Iterable[str] | None = None) -> list[str]:
        """Art. 15 statement fields left empty, one line each naming its key, for the
        enabled systems among ``exporting`` (None: all; a system that cannot export never
        appears in an access package)."""
        names = None if exporting is None else set(exporting)
        return statement_warnings(self.controller, {
            name: s.statement for name, s in self.systems.items()
            if s.enabled and (names is None or name in names)})


def _resolve(value: Any, where: str, problems: list[str], env: Mapping[str, str],
             unset: list[str] | None = None) -> Any:
    """Resolve ``{ env = "NAME" }`` references and reject inline secrets. A variable that
    is not set is a problem, or with ``unset`` is noted there (a secret needed only to
    contact the system)."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = value["env"]
            if not isinstance(name, str) or not name:
                problems.append(f"{where}: env reference needs a variable name")
                return None
            if not env.get(name):
                # set to nothing (NAME= in a shell or an env file) is no value either
                (problems if unset is None else unset).append(
                    f"{where}: environment variable {name} is "
                    f"{'empty' if name in env else 'not set'}")
                return None
            return env[name]
        return {k: _resolve(v, f"{where}.{k}", problems, env, unset)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, f"{where}[{i}]", problems, env, unset)
                for i, v in enumerate(value)]
    if isinstance(value, str):
        parts = where.split(".")
        key = parts[-1]
        # Keys of mapping tables are column names ("password_hash = 'null'"), not settings.
        in_mapping = any(p in _MAPPING_TABLES for p in parts[:-1])
        if _SECRET_KEY.search(key) and value and not in_mapping:
            problems.append(
                f'{where}: secrets must be given as {{ env = "NAME" }} references, not inline'
            )
            return None
        kind = _inline_password(value, connection_string=not in_mapping)
        if kind is not None:
            problems.append(
                f"{where}: {kind} contains a password; put the whole {kind} in an env variable "
                f'and write {{ env = "NAME" }}'
            )
            return None
    return value


def _inline_password(value: str, *, connection_string: bool = True) -> str | None:
    """"URL" for a URL with a password, also percent-encoded (``?pass%77ord=``) or padded
    with spaces; "connection string" (``connection_string``) for libpq/ODBC key=value pairs
    with one; None when neither."""
    text = value.strip()
    for _ in range(3):  # %2577 is %77 once decoded: decode while it changes
        if _URL_WITH_PASSWORD.match(text):
            return "URL"
        if connection_string and _connection_string_secret(text):
            return "connection string"
        decoded = unquote(text).strip()
        if decoded == text:
            return None
        text = decoded
    return None


def _connection_string_secret(text: str) -> bool:
    """``text`` is key=value pairs only, and one names a secret with a value."""
    pos, secret = 0, False
    while pos < len(text):
        pair = _KEY_VALUE_PAIR.match(text, pos)
        if pair is None:
            return False
        secret |= (_SECRET_PAIR_KEY.fullmatch(pair[1]) is not None
                   and pair[2] not in ("", "''", "{}"))
        pos = pair.end()
    return secret


def _pydantic_problems(section: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{section}.{loc}: {msg}" if loc else f"{section}: {msg}")
    return out


def parse_config(
    data: Mapping[str, Any],
    *,
    known_connectors: Mapping[str, type] | None = None,
    uncovered: frozenset[str] = frozenset(),
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    defer_secrets: bool = False,
) -> Config:
    """Validate raw TOML data. ``known_connectors`` maps connector names to classes whose
    ``Settings`` validate each system; names in ``uncovered`` belong to plugins that failed
    to load and are accepted (their systems will be reported as not covered).

    ``defer_secrets``: a system's env reference that is not set is no problem now: the
    system keeps it in ``unset`` (its settings are validated once it is set), and only
    contacting it fails, naming the variable.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    for key in data:
        if key not in ("erasure", "systems", "id_spaces", "controller"):
            problems.append(
                f"{key}: unknown section (expected [erasure], [controller], [systems.NAME] "
                "or [id_spaces.NAME])")
    raw_host = _resolve(dict(data.get("erasure", {})), "erasure", problems, env)
    host = HostSettings()
    try:
        host = HostSettings.model_validate(raw_host)
    except ValidationError as exc:
        problems.extend(_pydantic_problems("erasure", exc))
    if path is not None and not host.state_dir.is_absolute():
        host = host.model_copy(update={"state_dir": (path.parent / host.state_dir)})
    if path is not None and host.export_dir is not None and not host.export_dir.is_absolute():
        host = host.model_copy(update={"export_dir": (path.parent / host.export_dir)})

    systems: dict[str, SystemConfig] = {}
    raw_systems = data.get("systems", {})
    if not isinstance(raw_systems, dict):
        problems.append("systems: must be a table of [systems.NAME] sections")
        raw_systems = {}
    for name, section in raw_systems.items():
        where = f"systems.{name}"
        if not _SYSTEM_NAME.match(name):
            problems.append(f"{where}: system names are lower-case letters, digits, - and _")
            continue
        if not isinstance(section, dict):
            problems.append(f"{where}: must be a table")
            continue
        unset: list[str] | None = [] if defer_secrets else None
        resolved = _resolve(dict(section), where, problems, env, unset)
        connector = resolved.pop("connector", None)
        if not isinstance(connector, str) or not connector:
            problems.append(f"{where}.connector: missing (name the connector, e.g. \"sql\")")
            continue
        try:
            policy = Policy(resolved.pop("policy", Policy.ERASE))
        except ValueError:
            problems.append(
                f"{where}.policy: must be one of {', '.join(p.value for p in Policy)}"
            )
            continue
        reason = resolved.pop("reason", None)
        if policy is Policy.RETAIN and not reason:
            problems.append(f"{where}.reason: policy \"retain\" needs a reason (e.g. a legal hold)")
        enabled = bool(resolved.pop("enabled", True))
        max_attempts = resolved.pop("max_attempts", None)
        statement = parse_statement(name, resolved.pop("statement", None), problems)
        limits = None
        if "limits" in resolved:
            try:
                limits = SystemLimits.model_validate(resolved.pop("limits"))
            except ValidationError as exc:
                problems.extend(_pydantic_problems(f"{where}.limits", exc))
                continue
        if known_connectors is not None:
            cls = known_connectors.get(connector)
            if cls is None and connector not in uncovered:
                known = ", ".join(sorted(known_connectors)) or "none"
                problems.append(
                    f"{where}.connector: unknown connector {connector!r} (installed: {known})"
                )
                continue
            if cls is not None and not unset:
                try:
                    cls.Settings.model_validate(resolved)  # type: ignore[attr-defined]
                except ValidationError as exc:
                    problems.extend(_pydantic_problems(where, exc))
                    continue
        systems[name] = SystemConfig(
            name=name,
            connector=connector,
            policy=policy,
            reason=reason,
            enabled=enabled,
            max_attempts=max_attempts,
            settings=resolved,
            statement=statement,
            unset=tuple(unset or ()),
            limits=limits,
        )
    id_spaces = _id_spaces(data.get("id_spaces", {}), raw_systems, problems)
    controller = parse_controller(
        _resolve(data.get("controller", {}), "controller", problems, env), problems)
    if problems:
        raise ConfigError(problems)
    return Config(host=host, systems=systems, path=path, id_spaces=id_spaces,
                  controller=controller)


class _IdSpaceSection(_Strict):
    type: IdentifierType
    systems: tuple[str, ...] = Field(min_length=1)
    default: bool = False


def _id_spaces(raw: Any, systems: Mapping[str, Any], problems: list[str]) -> IdSpaces:
    """Validate ``[id_spaces.NAME]`` sections: a scoped type, known systems, a system in at
    most one space per type, at most one default per type."""
    if not isinstance(raw, dict):
        problems.append("id_spaces: must be a table of [id_spaces.NAME] sections")
        return IdSpaces()
    out: dict[str, IdSpace] = {}
    owner: dict[tuple[IdentifierType, str], str] = {}
    defaults: dict[IdentifierType, str] = {}
    for name, section in raw.items():
        where = f"id_spaces.{name}"
        if not _SYSTEM_NAME.match(name):
            problems.append(f"{where}: id space names are lower-case letters, digits, - and _")
            continue
        try:
            sec = _IdSpaceSection.model_validate(section)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(where, exc))
            continue
        if sec.type in GLOBAL_TYPES:
            problems.append(f"{where}.type: {sec.type.value} is global (the same in every "
                            "system) and needs no id space")
            continue
        for system in sec.systems:
            if system not in systems:
                problems.append(f"{where}.systems: no system {system!r} is configured")
            elif (sec.type, system) in owner:
                problems.append(f"{where}.systems: {system} is already in id space "
                                f"{owner[(sec.type, system)]!r} for {sec.type.value}")
            owner.setdefault((sec.type, system), name)
        if sec.default:
            if sec.type in defaults:
                problems.append(f"{where}.default: {defaults[sec.type]!r} is already the "
                                f"default id space for {sec.type.value}")
            defaults.setdefault(sec.type, name)
        out[name] = IdSpace(name=name, type=sec.type, systems=tuple(dict.fromkeys(sec.systems)),
                            default=sec.default)
    return IdSpaces(out)


def config_path(explicit: str | Path | None) -> Path:
    """The config file to use: ``--config``, else ``$ERASURE_CONFIG``, else ./erasure.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    default = Path("erasure.toml")
    if default.exists():
        return default
    raise ConfigError(
        f"no configuration: pass --config FILE or set {CONFIG_ENV} (or try `erasure demo`)"
    )


def load_config(
    path: str | Path | None,
    *,
    known_connectors: Mapping[str, type] | None = None,
    uncovered: frozenset[str] = frozenset(),
    defer_secrets: bool = False,
) -> Config:
    """Read and validate a TOML config file (``defer_secrets``: see :func:`parse_config`).
    Raises :class:`ConfigError` listing all problems."""
    p = config_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {p} is not valid TOML: {exc}") from None
    return parse_config(
        data, known_connectors=known_connectors, uncovered=uncovered, path=p.resolve(),
        defer_secrets=defer_secrets,
    )
