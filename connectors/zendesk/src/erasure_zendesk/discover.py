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
    """The proposal: connection settings as configured (secrets as env references), the
    custom user fields that look like emails or phones as ``user_fields``, and ticket
    fields that do as comments (the connector does not search ticket fields)."""
    user_fields = client.get("user_fields", "list user fields").get("user_fields") or []
    ticket_fields = client.get("ticket_fields", "list ticket fields").get("ticket_fields") or []
    lines = [f"[systems.{system}]", 'connector = "zendesk"']
    lines.append(f'subdomain = "{settings.subdomain}"' if settings.subdomain
                 else f'url = "{settings.url}"')
    if settings.oauth_token is not None:
        lines.append('oauth_token = { env = "ZENDESK_OAUTH_TOKEN" }')
    else:
        lines += [f'email = "{settings.email}"', 'token = { env = "ZENDESK_API_TOKEN" }']
    lines += ["# Built in: users by every email and phone identity, their tickets in every",
              "# role. Custom user fields that look like emails or phones (review them):"]
    mapped = {str(f.get("key")): kind for f in user_fields
              if f.get("active", True) and f.get("key") and (kind := _kind(f))}
    if mapped:
        inner = ", ".join(f'{key} = "{kind}"' for key, kind in sorted(mapped.items()))
        lines.append(f"user_fields = {{ {inner} }}")
    else:
        lines.append("# (none found)")
    for field in ticket_fields:
        kind = _kind(field)
        if kind is not None:
            lines.append(f"# ticket field {field.get('id')} ({field.get('type')}) may hold "
                         f"{kind}s: not searched by the connector; check it by hand")
    lines.append("# search_text = true   # also other people's tickets quoting the subject")
    return "\n".join(lines) + "\n"
