"""Framing: the same frame objects, encoded three ways.

A *frame* is a JSON object: a component (``{"type": "TableA", "id": ..., "data": ...}``) or a control
frame with a lower-case type (``end``, ``error``, ``remove``; see ``docs/protocol.md``). The default
``text/plain`` stream frames each as ``$$${json}$$$`` for clients of the earlier backend; browsers get
Server-Sent Events, and scripts may ask for NDJSON.

Every ``$`` inside the JSON is written as ``\\u0024``. ``$`` can only occur inside JSON strings, where
the escape is equivalent, so a title containing ``$$$`` can never end a frame early.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

Frame = dict[str, Any]
Format = Literal["text", "sse", "ndjson"]

DELIMITER = "$$$"
MEDIA_TYPES: dict[Format, str] = {
    "text": "text/plain; charset=utf-8",
    "sse": "text/event-stream",
    "ndjson": "application/x-ndjson",
}
CONTROL_TYPES = frozenset({"end", "error", "remove"})


def dumps(frame: Frame) -> str:
    """Compact JSON with no ``$`` characters left in it (see the module docstring)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).replace("$", "\\u0024")


def negotiate(accept: str | None) -> Format:
    """Pick the frame format from an ``Accept`` header; anything unknown gets the default."""
    accept = (accept or "").lower()
    if "text/event-stream" in accept:
        return "sse"
    if "application/x-ndjson" in accept:
        return "ndjson"
    return "text"


def encode_text(frame: Frame) -> str:
    return f"{DELIMITER}{dumps(frame)}{DELIMITER}"


def encode_ndjson(frame: Frame) -> str:
    return dumps(frame) + "\n"


def sse_event_name(frame: Frame) -> str:
    """Components go out as ``event: component``; control frames under their own type."""
    kind = str(frame.get("type", ""))
    return kind if kind in CONTROL_TYPES else "component"


def end_frame(
    *, session_id: str, provider: str, from_cache: bool, processing_time_ms: float, **extra: Any
) -> Frame:
    return {
        "type": "end",
        "session_id": session_id,
        "provider": provider,
        "from_cache": from_cache,
        "processing_time_ms": round(processing_time_ms, 3),
        **extra,
    }


def error_frame(code: str, message: str) -> Frame:
    return {"type": "error", "error": {"code": code, "message": message}}


def remove_frame(component_id: str) -> Frame:
    return {"type": "remove", "id": component_id}


class TextFrameDecoder:
    """Incremental decoder for the ``$$$`` stream: feed bytes as they arrive, get whole frames."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, chunk: str) -> list[Frame]:
        self._buffer += chunk
        frames: list[Frame] = []
        while True:
            start = self._buffer.find(DELIMITER)
            if start < 0:
                break
            end = self._buffer.find(DELIMITER, start + len(DELIMITER))
            if end < 0:
                break
            body = self._buffer[start + len(DELIMITER) : end]
            self._buffer = self._buffer[end + len(DELIMITER) :]
            if body.strip():
                frames.append(json.loads(body))
        return frames

    @property
    def pending(self) -> str:
        """Bytes received that do not yet make a whole frame (empty after a complete stream)."""
        return self._buffer


def decode_text(body: str) -> list[Frame]:
    decoder = TextFrameDecoder()
    frames = decoder.feed(body)
    if decoder.pending.strip():
        raise ValueError(f"incomplete frame at end of stream: {decoder.pending[:80]!r}")
    return frames


def decode_ndjson(body: str) -> list[Frame]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def iter_sse(body: str) -> Iterator[tuple[str, str]]:
    """Yield ``(event, data)`` pairs from an SSE body (comments and pings skipped)."""
    for block in body.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if data:
            yield event, "\n".join(data)


def decode_sse(body: str) -> list[Frame]:
    return [json.loads(data) for _, data in iter_sse(body)]


def decode(body: str, fmt: Format) -> list[Frame]:
    """Decode a whole response body of the given format into its frames."""
    if fmt == "sse":
        return decode_sse(body)
    if fmt == "ndjson":
        return decode_ndjson(body)
    return decode_text(body)
