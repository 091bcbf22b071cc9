"""Redaction of a subject's text in tickets that are kept (someone else's ticket, or the
subject's own when policy keeps it), with ``PUT /comment_redactions/{id}``: the endpoint
that also works on closed and archived tickets (the older per-comment ``redact`` refuses
them). Whole comments the subject wrote are redacted and their attachments removed; in
other people's comments only the subject's emails and phones are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .client import NotFound, ZendeskClient
from .locate import comments_of

__all__ = ["REDACTED", "Redactor", "holds_subject"]

#: what Zendesk leaves in place of redacted characters
REDACTED = "▇"
_SPLIT = re.compile(r"(<[^>]*>)")
_REDACTED_FILE = "redacted.txt"


def _mention(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.+@-]){re.escape(value)}(?![\w@-]|\.\w)", re.IGNORECASE)


def _is_redacted(text: str) -> bool:
    return all(ch == REDACTED or ch.isspace() for ch in text)


def _wrap_all(html: str) -> str | None:
    """``html`` with every non-blank, not yet redacted text run in ``<redact>`` tags;
    None when there is nothing left to redact."""
    parts = _SPLIT.split(html)
    changed = False
    for n, part in enumerate(parts):
        if part.startswith("<") or not part.strip() or _is_redacted(part):
            continue
        parts[n] = f"<redact>{part}</redact>"
        changed = True
    return "".join(parts) if changed else None


def _wrap_values(html: str, values: Iterable[str]) -> str | None:
    """``html`` with each quoted value (in text, not in tags) in ``<redact>`` tags."""
    patterns = [_mention(v) for v in values]
    parts = _SPLIT.split(html)
    changed = False
    for n, part in enumerate(parts):
        if part.startswith("<"):
            continue
        for pattern in patterns:
            new = pattern.sub(lambda m: f"<redact>{m.group(0)}</redact>", part)
            if new != part:
                changed = True
                part = new
        parts[n] = part
    return "".join(parts) if changed else None


def _open_files(comment: dict[str, Any]) -> list[str]:
    return [a["content_url"] for a in comment.get("attachments") or []
            if a.get("file_name") != _REDACTED_FILE and a.get("content_url")]


def holds_subject(comment: dict[str, Any], authors: set[int], values: Iterable[str]) -> bool:
    """Whether a comment still holds the subject's text: written by them and not redacted
    (or with an attachment left), or quoting one of their values."""
    text = str(comment.get("plain_body") or comment.get("body") or "")
    if int(comment.get("author_id") or 0) in authors:
        return not _is_redacted(text) or bool(_open_files(comment))
    return any(_mention(v).search(text) for v in values)


class Redactor:
    """Redacts one subject's text in the comments of kept tickets."""

    def __init__(self, client: ZendeskClient) -> None:
        self.client = client

    def redact_ticket(self, ticket_id: int, authors: set[int], values: list[str]) -> bool:
        """Redact ``authors``' comments and ``values`` quoted by anyone; True if anything
        changed, False if nothing was left (or the ticket is gone)."""
        try:
            comments = comments_of(self.client, ticket_id)
        except NotFound:
            return False
        changed = False
        for comment in comments:
            html = str(comment.get("html_body") or "")
            files: list[str] = []
            if int(comment.get("author_id") or 0) in authors:
                wrapped = _wrap_all(html)
                files = _open_files(comment)
            else:
                wrapped = _wrap_values(html, values)
            if wrapped is None and not files:
                continue
            payload: dict[str, Any] = {"ticket_id": ticket_id}
            if wrapped is not None:
                payload["html_body"] = wrapped
            if files:
                payload["external_attachment_urls"] = files
            try:
                self.client.put(f"comment_redactions/{int(comment['id'])}",
                                "redact comment", payload)
            except NotFound:
                continue
            changed = True
        return changed

    def holds(self, ticket_id: int, authors: set[int], values: list[str]) -> bool:
        """Whether the ticket still holds the subject's text (verification)."""
        try:
            comments = comments_of(self.client, ticket_id)
        except NotFound:
            return False
        return any(holds_subject(c, authors, values) for c in comments)
