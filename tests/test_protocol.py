"""Framing of all three formats, incremental decoding, and the `$` escape."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge import protocol

FRAMES = [
    {"type": "SimpleComponent", "id": "1", "data": {"title": "costs $$$ and $", "value": 3}},
    protocol.error_frame("x", "broke"),
    protocol.remove_frame("1"),
    protocol.end_frame(session_id="s", provider="offline", from_cache=False, processing_time_ms=1.23456),
]


def test_text_frames_round_trip_and_never_contain_a_raw_dollar() -> None:
    body = "".join(protocol.encode_text(f) for f in FRAMES)
    assert body.count("$$$") == 2 * len(FRAMES)
    assert protocol.decode_text(body) == FRAMES


def test_ndjson_and_sse_round_trip() -> None:
    assert protocol.decode_ndjson("".join(protocol.encode_ndjson(f) for f in FRAMES)) == FRAMES
    sse = "".join(f"event: {protocol.sse_event_name(f)}\r\ndata: {protocol.dumps(f)}\r\n\r\n" for f in FRAMES)
    sse = ": ping\r\n\r\n" + sse
    assert protocol.decode_sse(sse) == FRAMES
    assert [e for e, _ in protocol.iter_sse(sse)] == ["component", "error", "remove", "end"]


def test_negotiate() -> None:
    assert protocol.negotiate(None) == "text"
    assert protocol.negotiate("text/event-stream") == "sse"
    assert protocol.negotiate("application/x-ndjson, */*") == "ndjson"
    assert protocol.negotiate("text/html") == "text"


def test_incomplete_text_stream_is_an_error() -> None:
    body = protocol.encode_text(FRAMES[0])
    decoder = protocol.TextFrameDecoder()
    assert decoder.feed(body[:-5]) == []
    assert decoder.feed(body[-5:]) == [FRAMES[0]]
    try:
        protocol.decode_text(body[:-2])
    except ValueError:
        pass
    else:
        raise AssertionError("a cut frame must not decode silently")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=5),
    st.lists(st.integers(0, 10_000), max_size=6),
)
def test_any_frames_survive_any_chunking(frames: list[dict[str, object]], cuts: list[int]) -> None:
    body = "".join(protocol.encode_text(f) for f in frames)
    decoder = protocol.TextFrameDecoder()
    out: list[dict[str, object]] = []
    points = sorted({c % (len(body) + 1) for c in cuts})
    for start, end in zip([0, *points], [*points, len(body)], strict=True):
        out.extend(decoder.feed(body[start:end]))
    assert out == [json.loads(json.dumps(f)) for f in frames]
    assert decoder.pending == ""
