"""The SSE splitter yields the same events however the bytes are chunked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fabrique.providers.base import SSESplitter

payload = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"\n" not in b and b"\r" not in b and not b.startswith(b" "))


def encode(events: list[bytes], newline: bytes) -> bytes:
    return b"".join(b"data: " + e + newline * 2 for e in events)


def split_all(data: bytes, cuts: list[int]) -> list[bytes]:
    splitter, out, last = SSESplitter(), [], 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += [e.data for e in splitter.feed(data[last:cut])]
        last = cut
    return out


@given(st.lists(payload, max_size=8), st.sampled_from([b"\n", b"\r\n", b"\r"]),
       st.lists(st.integers(0, 400), max_size=12))
def test_any_chunking_any_line_ending(events, newline, cuts):
    data = encode(events, newline)
    assert split_all(data, [c for c in cuts if c <= len(data)]) == events


def test_comments_event_names_and_multiline_data():
    splitter = SSESplitter()
    events = splitter.feed(b": ping\n\nevent: error\ndata: {\"a\":\ndata: 1}\n\ndata:x\n\n")
    assert [(e.event, e.data) for e in events] == [("error", b'{"a":\n1}'), (None, b"x")]
