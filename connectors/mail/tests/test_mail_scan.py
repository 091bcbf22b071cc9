"""The mbox reader splits a file into exactly its messages wherever its read chunks end,
a chunk ending exactly where a message begins included (that once merged two messages:
a sweep of the older would have taken the newer with it)."""

from __future__ import annotations

import io

import pytest
from erasure_mail.scan import mbox_messages


def _mbox(n: int) -> tuple[bytes, list[bytes]]:
    msgs = [f"From x@y Mon Jan 01 00:00:00 2024\nSubject: m{i}\n\nbody {i}\n\n".encode()
            for i in range(n)]
    return b"".join(msgs), msgs


@pytest.mark.parametrize("boundary", range(1, 4))
def test_every_message_whatever_the_chunk_boundaries(boundary: int) -> None:
    data, msgs = _mbox(6)
    # chunk size equal to the length of the first `boundary` messages: a chunk ends
    # exactly where the next message's "From " line begins
    size = sum(len(m) for m in msgs[:boundary])
    assert list(mbox_messages(io.BytesIO(data), chunk_size=size)) == msgs


@pytest.mark.parametrize("size", [7, 50, 64, 100, 1000])
def test_any_chunk_size(size: int) -> None:
    data, msgs = _mbox(20)
    assert list(mbox_messages(io.BytesIO(data), chunk_size=size)) == msgs
