"""One streaming pass over raw message bytes for a whole batch of needles.

The byte scan only nominates candidates (a needle occurs somewhere in the message); the
candidates are then parsed and checked exactly (:mod:`erasure_mail.matching`). Matching is
Aho-Corasick (pyahocorasick) over ASCII-lower-cased bytes, or, without it, one compiled
alternation: the time of one pass does not grow with the number of subjects.

mbox boundaries: a message starts at a "From " line only when the line has the
``From sender Www Mmm dd hh:mm:ss yyyy`` shape and starts the file or follows a newline. An
unescaped "From " line in a body ("From me to you...") does not split the message, so a
delete never leaves the second half of somebody's message behind.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from typing import BinaryIO

__all__ = ["CHUNK", "FROM_LINE", "Needles", "mbox_messages", "mbox_spans", "split_from_line"]

#: Bytes read per step: large enough for few calls, small enough for flat memory.
CHUNK = 8 << 20

FROM_LINE = re.compile(
    rb"From \S+ +(?:[A-Z][a-z]{2}) +(?:[A-Z][a-z]{2}) +\d{1,2} +\d{1,2}:\d{2}(?::\d{2})?"
    rb"(?: +[A-Za-z]{3,5}| +[+-]\d{4})? +\d{4}")
_FROM_START = re.compile(rb"\nFrom ")
# Candidates of body search hide behind transfer encodings the byte scan cannot read.
_ENCODED = re.compile(rb"content-transfer-encoding:[ \t]*(?:base64|quoted-printable)",
                      re.IGNORECASE)


class Needles:
    """A set of lower-case needles searched for at once in byte strings."""

    def __init__(self, needles: Iterable[str], *, encoded_parts: bool = False) -> None:
        # Bytes are searched as latin-1 text: one character per byte, so a UTF-8 needle is
        # its bytes read as latin-1.
        self.words = sorted({n.lower().encode("utf-8").decode("latin-1") for n in needles if n})
        #: also nominate messages with base64 / quoted-printable parts (body search)
        self.encoded_parts = encoded_parts
        self._auto = None
        self._regex: re.Pattern[bytes] | None = None
        if not self.words:
            return
        try:
            import ahocorasick
        except ImportError:  # an equivalent: one alternation, longest first
            alts = sorted(self.words, key=len, reverse=True)
            self._regex = re.compile(b"|".join(re.escape(w.encode("latin-1")) for w in alts))
            return
        auto = ahocorasick.Automaton()
        for w in self.words:
            auto.add_word(w, len(w))
        auto.make_automaton()
        self._auto = auto

    def __bool__(self) -> bool:
        return bool(self.words)

    def hits(self, data: bytes) -> Iterator[int]:
        """End offsets (exclusive) of needle occurrences in ``data``, ASCII case ignored."""
        lowered = data.lower()
        if self._auto is not None:
            for end, _length in self._auto.iter(lowered.decode("latin-1")):
                yield end + 1
        elif self._regex is not None:
            for m in self._regex.finditer(lowered):
                yield m.end()
        if self.encoded_parts:
            for m in _ENCODED.finditer(data):
                yield m.end()

    def found_in(self, data: bytes) -> bool:
        """Whether any needle occurs in ``data``."""
        return next(self.hits(data), None) is not None


def _starts(chunk: bytes, base: int, at_file_start: bool) -> list[int]:
    """Absolute offsets of message starts in ``chunk`` (which begins at a line start)."""
    out = [base] if at_file_start and FROM_LINE.match(chunk, 0) else []
    for m in _FROM_START.finditer(chunk):
        if FROM_LINE.match(chunk, m.start() + 1):
            out.append(base + m.start() + 1)
    return out


def mbox_spans(f: BinaryIO, needles: Needles | None = None, *,
               chunk_size: int = CHUNK) -> Iterator[tuple[int, int]]:
    """(start, end) byte spans of the messages of an mbox file, "From " line included.

    With ``needles``, only the messages in which a needle occurs (one pass, flat memory);
    without, every message. Bytes before the first "From " line are no message.
    """
    f.seek(0)
    offset = 0
    cur: int | None = None  # start of the message that runs past the chunk read so far
    cur_hit = False
    while True:
        chunk = f.read(chunk_size)
        if not chunk:
            break
        if not chunk.endswith(b"\n"):
            chunk += f.readline()  # end on a line: needles and boundaries never straddle
        starts = _starts(chunk, offset, offset == 0)
        hit_starts: set[int] = set()
        if needles is not None:
            for end in needles.hits(chunk):
                i = bisect_right(starts, offset + end - 1)
                if i:
                    hit_starts.add(starts[i - 1])
                elif cur is not None:
                    cur_hit = True
        for s in starts:
            if cur is not None and (needles is None or cur_hit):
                yield cur, s
            cur, cur_hit = s, s in hit_starts
        offset += len(chunk)
    if cur is not None and (needles is None or cur_hit):
        yield cur, offset


def mbox_messages(f: BinaryIO, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Every message of an mbox file ("From " line included), in order; memory holds one
    chunk and one message."""
    f.seek(0)
    offset = 0
    pending: list[bytes] = []  # parts of the message that runs on past the chunk
    started = False
    while True:
        chunk = f.read(chunk_size)
        if not chunk:
            break
        if not chunk.endswith(b"\n"):
            chunk += f.readline()
        starts = [s - offset for s in _starts(chunk, offset, offset == 0)]
        prev = 0
        for s in starts:
            if started:
                pending.append(chunk[prev:s])
                yield b"".join(pending)
            pending, started, prev = [], True, s
        if started:
            pending.append(chunk[prev:])
        offset += len(chunk)
    if started:
        yield b"".join(pending)


def split_from_line(raw: bytes) -> tuple[bytes, bytes]:
    """(the "From " line, the message with mboxrd ">From " quoting undone)."""
    nl = raw.find(b"\n")
    head, body = (raw, b"") if nl < 0 else (raw[: nl + 1], raw[nl + 1 :])
    if b">From " in body:
        body = re.sub(rb"(?m)^>(>*From )", rb"\1", body)
    if body.endswith(b"\n\n"):
        body = body[:-1]  # the blank line that separates messages is not the message's
    return head, body
