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
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from erasure.phonetext import PhoneFinder

__all__ = ["CHUNK", "FROM_LINE", "Needles", "mbox_messages", "mbox_preamble", "mbox_spans",
           "split_from_line"]

#: Bytes read per step: small enough to stay in the CPU's cache (L2) between lower-casing
#: and searching (twice as fast as 8 MiB chunks), large enough for few calls; flat memory.
CHUNK = 1 << 18

FROM_LINE = re.compile(
    rb"From \S+ +(?:[A-Z][a-z]{2}) +(?:[A-Z][a-z]{2}) +\d{1,2} +\d{1,2}:\d{2}(?::\d{2})?"
    rb"(?: +[A-Za-z]{3,5}| +[+-]\d{4})? +\d{4}")
_FROM_START = re.compile(rb"\nFrom ")
# Candidates of body search hide behind transfer encodings the byte scan cannot read.
_ENCODED = re.compile(rb"content-transfer-encoding:[ \t]*(?:base64|quoted-printable)",
                      re.IGNORECASE)


class Needles:
    """A set of lower-case needles searched for at once in byte strings."""

    def __init__(self, needles: Iterable[str], *, encoded_parts: bool = False,
                 phones: PhoneFinder | None = None) -> None:
        # Bytes are searched as latin-1 text: one character per byte, so a UTF-8 needle is
        # its bytes read as latin-1.
        self.words = sorted({n.lower().encode("utf-8").decode("latin-1") for n in needles if n})
        #: also nominate messages with base64 / quoted-printable parts (body search)
        self.encoded_parts = encoded_parts
        #: phones in any written form: lines whose digits hold one (body search)
        self.phones = phones if phones else None
        self._rs = None
        self._auto = None
        self._regex: re.Pattern[bytes] | None = None
        if not self.words:
            return
        try:  # Rust Aho-Corasick over bytes: GB/s, about grep -F's speed
            import ahocorasick_rs
        except ImportError:
            pass
        else:
            self._rs = ahocorasick_rs.BytesAhoCorasick([w.encode("latin-1") for w in self.words])
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
        return bool(self.words) or self.phones is not None

    def hits(self, data: bytes) -> Iterator[int]:
        """End offsets (exclusive) of needle occurrences in ``data``, ASCII case ignored."""
        lowered = data.lower()
        if self._rs is not None:
            for _n, _start, end in self._rs.find_matches_as_indexes(lowered):
                yield end
        elif self._auto is not None:
            for end, _length in self._auto.iter(lowered.decode("latin-1")):
                yield end + 1
        elif self._regex is not None:
            for m in self._regex.finditer(lowered):
                yield m.end()
        if self.encoded_parts:
            for m in _ENCODED.finditer(data):
                yield m.end()
        if self.phones is not None:
            for _start, end in self.phones.lines(data):
                yield end

    def found_in(self, data: bytes) -> bool:
        """Whether any needle occurs in ``data``."""
        return next(self.hits(data), None) is not None


def _starts(chunk: bytes, base: int) -> list[int]:
    """Absolute offsets of message starts in ``chunk`` (which begins at a line start: a
    message may begin at its first byte, in any chunk, not only the file's first)."""
    out = [base] if FROM_LINE.match(chunk, 0) else []
    for m in _FROM_START.finditer(chunk):
        if FROM_LINE.match(chunk, m.start() + 1):
            out.append(base + m.start() + 1)
    return out


def _is_start(chunk: bytes, pos: int) -> bool:
    return FROM_LINE.match(chunk, pos) is not None


def _prev_start(chunk: bytes, pos: int) -> int | None:
    """The last message start at or before ``pos`` in ``chunk`` (which begins a line)."""
    i = chunk.rfind(b"\nFrom ", 0, pos + 6)
    while i >= 0:
        if _is_start(chunk, i + 1):
            return i + 1
        i = chunk.rfind(b"\nFrom ", 0, i + 5)
    return 0 if _is_start(chunk, 0) else None


def _next_start(chunk: bytes, pos: int) -> int | None:
    """The first message start at or after ``pos`` in ``chunk``."""
    if pos == 0 and _is_start(chunk, 0):
        return 0
    i = chunk.find(b"\nFrom ", max(pos - 1, 0))
    while i >= 0:
        if _is_start(chunk, i + 1):
            return i + 1
        i = chunk.find(b"\nFrom ", i + 1)
    return None


def mbox_spans(f: BinaryIO, needles: Needles, *,
               chunk_size: int = CHUNK) -> Iterator[tuple[int, int]]:
    """(start, end) byte spans, "From " line included, of the messages of an mbox file in
    which a needle occurs: one pass, flat memory. Boundaries are looked for only around
    hits (a few ``find``/``rfind`` calls), not at every message. Bytes before the first
    "From " line are no message."""
    f.seek(0)
    offset = 0
    last: int | None = None  # the last message start before this chunk (absolute)
    pending: int | None = None  # a candidate whose end lies past the chunks read
    while True:
        chunk = f.read(chunk_size)
        if not chunk:
            break
        if not chunk.endswith(b"\n"):
            chunk += f.readline()  # end on a line: needles and boundaries never straddle
        done = 0  # hits before this local offset are in a message already given
        if pending is not None:
            end = _next_start(chunk, 0)
            if end is None:
                offset += len(chunk)
                continue  # the whole chunk is inside the pending message
            yield pending, offset + end
            pending, done = None, end
        for hit in sorted(needles.hits(chunk)):
            if hit <= done:
                continue
            local = _prev_start(chunk, hit - 1)
            start = offset + local if local is not None else last
            if start is None:
                continue  # before the first message
            end = _next_start(chunk, hit)
            if end is None:
                pending = start
                break
            yield start, offset + end
            done = end
        tail = _prev_start(chunk, len(chunk))
        if tail is not None:
            last = offset + tail
        offset += len(chunk)
    if pending is not None:
        yield pending, offset


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
        starts = [s - offset for s in _starts(chunk, offset)]
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


def mbox_preamble(f: BinaryIO) -> bytes:
    """The bytes before the file's first message (almost always none): a rewrite keeps
    them as they are."""
    f.seek(0)
    out = []
    for line in f:
        if FROM_LINE.match(line):
            break
        out.append(line)
    f.seek(0)
    return b"".join(out)


def split_from_line(raw: bytes) -> tuple[bytes, bytes]:
    """(the "From " line, the message with mboxrd ">From " quoting undone)."""
    nl = raw.find(b"\n")
    head, body = (raw, b"") if nl < 0 else (raw[: nl + 1], raw[nl + 1 :])
    if b">From " in body:
        body = re.sub(rb"(?m)^>(>*From )", rb"\1", body)
    if body.endswith(b"\n\n"):
        body = body[:-1]  # the blank line that separates messages is not the message's
    return head, body
