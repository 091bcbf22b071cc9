"""One streaming pass over raw message bytes for a whole batch of needles.

The byte scan only nominates candidates (a needle occurs somewhere in the message); the
candidates are then parsed and checked exactly (:mod:`erasure_mail.matching`). Matching is
Aho-Corasick (pyahocorasick) over ASCII-lower-cased bytes, or, without it, one compiled
alternation: the time of one pass does not grow with the number of subjects.

mbox boundaries: a message starts at a "From " line only when the line has the
``From sender Www Mmm dd hh:mm:ss yyyy`` shape and starts the file or follows a newline. An
unescaped "From " line in a body ("From me to you...") does not split the message, so a
delete never leaves the second half of somebody's message behind. A message whose
Content-Length is believed ends where the count says, whatever "From " lines its body
holds (:func:`mbox_bounds`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

from erasure.phonetext import PhoneFinder

__all__ = ["CHUNK", "FROM_LINE", "Needles", "Span", "mbox_bounds", "mbox_entries",
           "mbox_messages", "mbox_preamble", "mbox_spans", "split_from_line"]

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

    def hits(self, data: bytes, lowered: bytes | None = None) -> Iterator[int]:
        """End offsets (exclusive) of needle occurrences in ``data``, ASCII case ignored
        (``lowered``: ``data.lower()`` when the caller has it already)."""
        if lowered is None:
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


class Span(NamedTuple):
    """One message of an mbox file: bytes ``[start, end)``, "From " line and separator
    included. ``unsure``: where it ends cannot be told (a Content-Length that lands on no
    message start, in a file that counts lengths): it may hold part of a neighbour, or a
    neighbour part of it, so nothing may cut it out (see :func:`mbox_bounds`)."""

    start: int
    end: int
    unsure: bool = False


def mbox_spans(f: BinaryIO, needles: Needles, *,
               chunk_size: int = CHUNK) -> Iterator[Span]:
    """The messages of an mbox file in which a needle occurs: one pass, flat memory.
    Boundaries are looked for only around hits (a few ``find``/``rfind`` calls), not at
    every message, while the file holds no Content-Length header; from the chunk that holds
    one on, every message is read as :func:`mbox_bounds` splits it. Bytes before the first
    "From " line are no message."""
    first = len(mbox_preamble(f))
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
        lowered = chunk.lower()
        if _counts(lowered):
            # Spans given so far ended before this chunk, in messages without a length.
            resume = pending if pending is not None else last if last is not None else 0
            yield from _counted_spans(f, needles, resume, chunk_size)
            return
        done = 0  # hits before this local offset are in a message already given
        if pending is not None:
            end = _next_start(chunk, 0)
            if end is None:
                offset += len(chunk)
                continue  # the whole chunk is inside the pending message
            yield _checked(f, first, pending, offset + end)
            pending, done = None, end
        for hit in sorted(needles.hits(chunk, lowered)):
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
            yield _checked(f, first, start, offset + end)
            done = end
        tail = _prev_start(chunk, len(chunk))
        if tail is not None:
            last = offset + tail
        offset += len(chunk)
    if pending is not None:
        yield _checked(f, first, pending, offset, last=True)


def _checked(f: BinaryIO, first: int, start: int, end: int, *, last: bool = False) -> Span:
    """The span, unsure when a "From " line without a blank line before it starts or ends
    it (see :func:`mbox_bounds`)."""
    pos = f.tell()
    unsure = (start > first and not _blank_before(f, start)) or \
        (not last and not _blank_before(f, end))
    f.seek(pos)  # the scan reads on from where it was
    return Span(start, end, unsure)


def _blank_before(f: BinaryIO, pos: int) -> bool:
    f.seek(pos - 2)
    return f.read(2) == b"\n\n"


def _counted_spans(f: BinaryIO, needles: Needles, resume: int,
                   chunk_size: int) -> Iterator[Span]:
    """The messages from ``resume`` on, split by :func:`mbox_bounds`, that a needle occurs
    in: the hits of one more pass over the chunks, each placed in its message."""
    spans = [s for s in mbox_bounds(f, chunk_size=chunk_size) if s.start >= resume]
    starts = [s.start for s in spans]
    hit: set[int] = set()
    f.seek(resume)
    offset = resume
    while True:
        chunk = f.read(chunk_size)
        if not chunk:
            break
        if not chunk.endswith(b"\n"):
            chunk += f.readline()
        for end in needles.hits(chunk):  # a needle is on one line: in one message
            i = bisect.bisect_right(starts, offset + end - 1) - 1
            if i >= 0:
                hit.add(i)
        offset += len(chunk)
    for i in sorted(hit):
        yield spans[i]


def mbox_entries(f: BinaryIO, *, chunk_size: int = CHUNK) -> Iterator[tuple[bytes, bool]]:
    """(raw, unsure) of every message of an mbox file ("From " line included), in order,
    split as :func:`mbox_bounds` says; memory holds one chunk and one message."""
    f.seek(0)
    offset = 0
    pending: list[bytes] = []  # parts of the message that runs on past the chunk
    started: int | None = None  # where the pending message starts
    blank_before = True  # the message before the pending one ended with a blank line
    while True:
        chunk = f.read(chunk_size)
        if not chunk:
            break
        if not chunk.endswith(b"\n"):
            chunk += f.readline()
        if _counts(chunk.lower()):
            # every message given so far ended before this chunk and had no length
            for span in mbox_bounds(f, chunk_size=chunk_size):
                if started is None or span.start >= started:
                    f.seek(span.start)
                    yield f.read(span.end - span.start), span.unsure
            return
        starts = [s - offset for s in _starts(chunk, offset)]
        prev = 0
        for s in starts:
            if started is not None:
                pending.append(chunk[prev:s])
                raw = b"".join(pending)
                blank = raw.endswith(b"\n\n")  # else a "From " line right after text
                yield raw, not (blank and blank_before)
                blank_before = blank
            pending, started, prev = [], offset + s, s
        if started is not None:
            pending.append(chunk[prev:])
        offset += len(chunk)
    if started is not None:
        yield b"".join(pending), not blank_before


def mbox_messages(f: BinaryIO, *, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Every message of an mbox file ("From " line included), in order (see
    :func:`mbox_entries`)."""
    return (raw for raw, _unsure in mbox_entries(f, chunk_size=chunk_size))


# Content-Length ----------------------------------------------------------------------------

_COUNTED = b"\ncontent-length:"
_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*([^\n]*?)[ \t]*\r?$")


def _counts(lowered: bytes) -> bool:
    """Whether a lower-cased chunk (which starts a line) holds a Content-Length line."""
    return _COUNTED in lowered or lowered.startswith(_COUNTED[1:])


#: the bytes read around where a length lands: the blank line before and the "From " line
_PEEK = 1024


def mbox_bounds(f: BinaryIO, *, chunk_size: int = CHUNK) -> list[Span]:
    """Every message of an mbox file, split by Content-Length where it is trustworthy.

    A message whose header has a Content-Length ends where the count says (its counted
    body, then the blank line) when that point is a message start or the end of the file:
    its body's "From " lines, quoted or not, are its own (mboxcl2 quotes none). A length
    that lands anywhere else (too short, too long, past the end) is not believed: the
    message ends at the next "From " line, as in a file without lengths. In a file that
    counts lengths (at least half its messages carry one), such a message, and those that
    follow it until a believed length ends one again, are ``unsure``: a body's "From "
    line may have split them, so neither their end nor their start is known.
    Two passes over the file (the split, then the caller's reads); memory holds one
    message and a few integers per message."""
    size = f.seek(0, 2)
    found: list[tuple[int, int, str]] = []  # start, end, "" | "good" | "bad"
    window = _Window(f, chunk_size)
    start = window.next_start(0)
    while start is not None:
        split = window.next_start(start + 1)
        end = size if split is None else split
        state = ""
        head_end = window.find(b"\n\n", start, end)
        if head_end >= 0:
            values = set(_LENGTH.findall(window.slice(start, head_end + 1)))
            if values:
                counted = _landing(window, size, head_end + 2, values)
                state = "bad" if counted is None else "good"
                end = counted if counted is not None else end
        if end < size and end == split and window.slice(end - 2, end) != b"\n\n":
            state += "?"  # a "From " line right after text ends it: a guess
        found.append((start, end, state))
        if end >= size:
            break
        window.skip_to(end)  # memory: one message
        start = end
    counting = 2 * sum(1 for *_x, state in found if state.strip("?")) >= len(found)
    out, sure, guessed = [], True, False
    for start, end, state in found:
        unsure = counting and (not sure or state.startswith("bad"))
        out.append(Span(start, end, unsure or guessed or state.endswith("?")))
        guessed = state.endswith("?")
        if state == "good":
            sure = True
        elif state.startswith("bad"):
            sure = False
    f.seek(0)
    return out


def _landing(window: _Window, size: int, body: int, values: set[bytes]) -> int | None:
    """Where a message whose body starts at ``body`` ends by its Content-Length ``values``
    (one value, digits): the end of the file, or a message start after the blank line
    that separates messages (counted in the length or not). None: anywhere else."""
    if len(values) != 1:
        return None
    (value,) = values
    if not value.isdigit():
        return None
    at = body + int(value)
    if at >= size:
        return size if at == size else None
    near = window.peek(at - 2, _PEEK)  # near[2] is the byte at `at`
    if near[1:3] == b"\n\n" and (at + 1 == size or FROM_LINE.match(near, 3)):
        return at + 1  # the counted body ends a line, then the blank line
    if at + 1 == size and near[2:3] == b"\n":
        return size
    if near[0:2] == b"\n\n" and FROM_LINE.match(near, 2):
        return at  # the length counted the blank line
    return None


class _Window:
    """The bytes of a file from a message start on, read in chunks that end on a line."""

    def __init__(self, f: BinaryIO, chunk_size: int) -> None:
        f.seek(0)
        self.f, self.chunk_size = f, chunk_size
        self.base, self.buf, self.eof = 0, bytearray(), False

    def _more(self) -> bool:
        chunk = self.f.read(self.chunk_size)
        if not chunk:
            self.eof = True
            return False
        if not chunk.endswith(b"\n"):
            chunk += self.f.readline()
        self.buf += chunk
        return True

    def skip_to(self, pos: int) -> None:
        """Forget everything before ``pos`` (a line start), reading on from there."""
        if pos <= self.base + len(self.buf):
            del self.buf[: pos - self.base]
        else:
            self.buf.clear()
            self.f.seek(pos)
        self.base = pos

    def next_start(self, pos: int) -> int | None:
        """The first message start at or after ``pos``; None: none before the end."""
        i = max(pos - self.base, 0)
        if i == 0 and self.base == 0 and (self.buf or self._more()) \
                and FROM_LINE.match(self.buf, 0):
            return 0
        i = max(i - 1, 0)
        while True:
            j = self.buf.find(b"\nFrom ", i)
            if j >= 0:
                if FROM_LINE.match(self.buf, j + 1):  # lines are whole: chunks end on one
                    return self.base + j + 1
                i = j + 1
                continue
            i = max(len(self.buf) - 6, i)
            if not self._more():
                return None

    def peek(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``pos`` (after the window's start): the line at ``pos + 3``
        whole, from what was read when it holds it (lines are whole there), else from the
        file (a length that points far ahead: nothing in between is read)."""
        i = pos - self.base
        if i + 3 < len(self.buf) or self.eof:
            return bytes(self.buf[i: i + n])
        at = self.f.tell()
        self.f.seek(pos)
        near = self.f.read(n)
        self.f.seek(at)  # the window reads on from where it was
        return near

    def find(self, needle: bytes, start: int, end: int) -> int:
        """The absolute offset of ``needle`` in ``[start, end)`` (bytes already read)."""
        i = self.buf.find(needle, start - self.base, end - self.base)
        return i + self.base if i >= 0 else -1

    def slice(self, start: int, end: int) -> bytes:
        return bytes(self.buf[start - self.base: end - self.base])


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
