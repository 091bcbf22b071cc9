"""discover: user and ticket fields (custom ones too) that may hold emails or phones, as a
``[systems.X]`` proposal for a person to review. Reads field definitions only, never values.
"""

from __future__ import annotations

import re
from typing import Any

from .client import ZendeskClient
from .settings import ZendeskSettings

__all__ = ["discover"]

_EMAIL = re.compile(r"e-?mail", re.I)
_PHONE = re.compile(r"phone|mobile|cell|tel\b|fax|whatsapp", re.I)


def _kind(field: dict[str, Any]) -> str | None:
    text = f"{field.get('key') or ''} {field.get('title') or ''}"
    pattern = str(field.get("regexp_for_validation") or "")
    if _EMAIL.search(text) or "@" in pattern:
        return "email"
    if _PHONE.search(text):
        return "phone"
    return None


def discover(client: ZendeskClient, settings: ZendeskSettings, system: str) -> str:
    user_fields = client.get("user_fields", "list user fields").get("user_fields") or []
    ticket_fields = client.get("ticket_fields", "list ticket fields").get("ticket_fields") or []
    lines = [f"[systems.{system}]", 'connector = "zendesk"']
    if settings.subdomain:
        lines.append(f'subdomain = "{settings.subdomain}"')
    else:
        lines.append(f'url = "{settings.url}"')
    if settings.oauth_token is not None:
        lines.append('oauth_token = { env = "ZENDESK_OAUTH_TOKEN" }')
    else:
        lines += [f'email = "{settings.email}"', 'token = { env = "ZENDESK_API_TOKEN" }']
    lines += ["# Built in: users by every email and phone identity, their tickets in every",
              "# role; the fields below may hold emails or phones too (review them)."]
    found = False
    for label, fields, name in (("user field", user_fields, "key"),
                                ("ticket field", ticket_fields, "id")):
        for field in fields:
            kind = _kind(field)
            if kind is None:
                continue
            found = True
            lines.append(f"# {label} {field.get(name)!s} ({field.get('type')}): "
                         f"may hold {kind}s")
    if not found:
        lines.append("# no user or ticket field looks like it holds emails or phones")
    lines += ["# search_text = true   # also find other people's tickets quoting the subject"]
    return "\n".join(lines) + "\n"
