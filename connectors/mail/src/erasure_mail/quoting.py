"""The "From " quoting convention of an mbox file, read from its messages, and the quoting
of a message written into it.

Files differ: mboxo quotes a body line ``From `` as ``>From ``; mboxrd also quotes lines
already quoted (``>From `` -> ``>>From ``); mboxcl2 quotes nothing and gives each message a
``Content-Length``; some writers quote nothing and count on readers that split only at
whole ``From sender date`` lines. A rewrite copies every message it does not change as it
is stored (no quoting added, none undone: a neighbour's ``From now on`` stays as it was);
only a message written anew (one moved into a restricted folder) is quoted, the way its new
file does it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from .scan import FROM_LINE

__all__ = ["Convention", "detect", "quote"]

#: mboxcl: mboxo quoting and Content-Length; "none": "From " lines written as they are
Convention = Literal["mboxrd", "mboxcl", "mboxcl2", "none"]

_BODY_FROM = re.compile(rb"(?m)^(>*)From ")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[^\n]*\n")


def detect(raws: Iterable[bytes]) -> Convention:
    """The convention of a file whose stored messages ("From " line included) are
    ``raws``. No evidence (an empty file, no body line starting "From "): mboxrd."""
    count = with_length = bare = quoted = nested = 0
    for raw in raws:
        count += 1
        nl = raw.find(b"\n")
        stored = raw[nl + 1:] if nl >= 0 else b""
        end = stored.find(b"\n\n")
        head = stored if end < 0 else stored[: end + 1]
        if _CONTENT_LENGTH.search(head):
            with_length += 1
        for m in _BODY_FROM.finditer(stored):
            depth = len(m.group(1))
            if depth == 0:
                bare += 1
            elif depth == 1:
                quoted += 1
            else:
                nested += 1
    if count and with_length == count:
        return "mboxcl" if quoted or nested else "mboxcl2"
    if bare:
        return "none"  # its writer left "From " lines as they were
    # ">From " alone cannot tell mboxo from mboxrd: mboxrd, the one a reader can undo.
    return "mboxrd"


def quote(msg: bytes, convention: Convention) -> bytes:
    """``msg`` (a whole message, no "From " line, unquoted) as stored in a file of
    ``convention``; files that count lengths get a Content-Length of the stored body."""
    if convention == "mboxrd":
        msg = _BODY_FROM.sub(rb">\1From ", msg) if b"From " in msg else msg
    elif convention == "mboxcl":
        msg = re.sub(rb"(?m)^From ", b">From ", msg) if b"From " in msg else msg
    elif convention == "none" and b"From " in msg:
        # Only what a reader would take for the start of a message.
        msg = re.sub(rb"(?m)^(>*)(?=From )", lambda m: b">" + m.group(1)
                     if FROM_LINE.match(msg, m.end()) else m.group(0), msg)
    if convention in ("mboxcl", "mboxcl2") or _has_length(msg):
        # a length carried over from the message's old file would no longer match its
        # stored body here: that message's end would become unsure (scan.mbox_bounds)
        msg = _with_length(msg)
    return msg


def _has_length(msg: bytes) -> bool:
    end = msg.find(b"\n\n")
    return _CONTENT_LENGTH.search(msg, 0, len(msg) if end < 0 else end + 1) is not None


def _with_length(msg: bytes) -> bytes:
    end = msg.find(b"\n\n")
    if end < 0:
        return msg
    head, body = msg[: end + 1], msg[end + 2:]
    head = _CONTENT_LENGTH.sub(b"", head)
    return head + b"Content-Length: " + str(len(body)).encode() + b"\n\n" + body
