"""What a processor is told: one message for many requests, rendered from a sandboxed
Jinja2 template that sees only the identifier types the processor receives."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from erasure import PermanentError

if TYPE_CHECKING:
    from jinja2 import Template

    from .settings import NotifySettings

__all__ = ["ACTIONS", "Message", "Notice", "compile_templates", "message_id", "render"]

#: the host's action -> (what the processor is asked to do, the GDPR article)
ACTIONS: Mapping[str, tuple[str, str]] = {
    "delete": ("erasure", "17"),
    "restrict": ("restriction", "18"),
    "rectify": ("rectification", "16"),
}


@dataclass(frozen=True)
class Notice:
    """One request, as a processor sees it: its reference, when it is due, the
    identifiers of the types the processor receives and (rectification) the correct
    values of those types."""

    reference: str
    due: str | None
    identifiers: Mapping[str, tuple[str, ...]]
    corrections: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # identifiers are personal data
        return f"Notice({self.reference!r}, [{','.join(sorted(self.identifiers))}])"

    def as_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "due": self.due,
                "identifiers": {k: list(v) for k, v in self.identifiers.items()},
                **({"corrections": dict(self.corrections)} if self.corrections else {})}


@dataclass(frozen=True)
class Message:
    """A rendered message to one processor."""

    message_id: str
    action: str
    article: str
    subject: str
    text: str
    notices: tuple[Notice, ...]
    sent_at: str
    reminder: int = 0
    refers_to: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Message({self.message_id}, {self.action}, {len(self.notices)} notices)"

    def as_json(self) -> dict[str, Any]:
        """The webhook body (everything the email says, structured)."""
        return {"type": "erasure.notice", "message_id": self.message_id,
                "action": self.action, "article": self.article, "reminder": self.reminder,
                "refers_to": list(self.refers_to), "sent_at": self.sent_at,
                "subject": self.subject, "notices": [n.as_json() for n in self.notices],
                "text": self.text}


def message_id(kind: str, keys: Iterable[str], domain: str) -> str:
    """A Message-ID derived from the idempotency keys it carries: the same keys always
    make the same id, in any process."""
    digest = hashlib.sha256("\x1f".join([kind, *sorted(keys)]).encode()).hexdigest()[:32]
    return f"<{kind}.{digest}@{domain}>"


def _environment(settings: NotifySettings) -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # Immutable sandbox: a template reads what it is given and can neither reach Python
    # internals (attributes starting with _ raise SecurityError) nor change its context.
    # Plain text, so no HTML autoescaping; a missing variable is an error, not blank.
    if settings.template == "default":
        loader: Any = None
    else:
        from pathlib import Path

        loader = FileSystemLoader(str(Path(settings.template).parent))
    return ImmutableSandboxedEnvironment(loader=loader, undefined=StrictUndefined,
                                         autoescape=False, keep_trailing_newline=True)


def compile_templates(settings: NotifySettings) -> tuple[Template, Template]:
    """The (subject, body) templates; a syntax error raises ValueError naming it."""
    from jinja2 import TemplateError

    env = _environment(settings)
    try:
        if settings.template == "default":
            text = resources.files("erasure_notify").joinpath(
                "templates/notice.txt.j2").read_text(encoding="utf-8")
            body = env.from_string(text)
        else:
            from pathlib import Path

            body = env.get_template(Path(settings.template).name)
        subject = env.from_string(settings.subject)
    except TemplateError as exc:
        raise ValueError(f"template: {type(exc).__name__}: {exc.message}") from None
    return subject, body


def render(settings: NotifySettings, templates: tuple[Template, Template], *,
           system: str, action: str, notices: Sequence[Notice], msg_id: str,
           reminder: int = 0, refers_to: Sequence[str] = ()) -> Message:
    """Render one message; a template that fails or reaches outside its sandbox is a
    PermanentError naming the problem (never a value)."""
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    what, article = ACTIONS.get(action, (action, "19"))
    sent_at = datetime.now(UTC).isoformat(timespec="seconds")
    context = {
        "controller": settings.controller, "processor": system, "action": what,
        "article": article, "message_id": msg_id, "reminder": reminder,
        "refers_to": list(refers_to), "sent_at": sent_at,
        "identifier_types": [t.value for t in settings.identifiers],
        "notices": [{"reference": n.reference, "due": n.due,
                     "identifiers": {k: list(v) for k, v in n.identifiers.items()},
                     "corrections": dict(n.corrections)} for n in notices],
    }
    subject_t, body_t = templates
    try:
        subject = " ".join(subject_t.render(context).split())
        text = body_t.render(context)
    except SecurityError as exc:
        raise PermanentError(f"the message template tried to reach outside its sandbox "
                             f"({_first_line(exc)})") from None
    except TemplateError as exc:
        raise PermanentError(f"the message template failed: {type(exc).__name__}: "
                             f"{_first_line(exc)}") from None
    return Message(msg_id, what, article, subject, text, tuple(notices), sent_at,
                   reminder, tuple(refers_to))


def _first_line(exc: Exception) -> str:
    # Jinja's messages name attributes and types, not values; keep them short anyway.
    return (str(exc).splitlines() or [""])[0][:160]
