"""Faults the vendor fakes do not script, for all three of them: garbage bytes, a huge answer, an
answer that never ends, and a record of how each streamed answer ended (did the client leave early?).

The fakes of :mod:`tests.fakes.bedrock`, :mod:`tests.fakes.anthropic` and :mod:`tests.fakes.openai`
stay as they are; the classes here extend their handlers, so every reply those fakes can script still
works, and these kinds come on top:

- :func:`garbage` -- a 200 whose body (or, when streaming, whose stream after ``before`` valid pieces)
  is the given bytes: random bytes, or text that is not JSON.
- :func:`noise` -- not even HTTP: the given bytes instead of a status line, then the socket closes.
- :func:`huge` -- a well-formed answer of ``size`` characters (a valid first component, then a second
  one whose title never ends), in 64 KiB pieces when streamed.
- :func:`endless` -- an answer that never ends: stream pieces every ``chunk_delay`` until the client
  leaves; on the non-streaming endpoint, a body that trickles in a byte at a time.

Every streamed answer (scripted kinds included) is recorded in :attr:`FaultyFake.streams` as a
:class:`StreamOutcome`: how many text pieces were written, and whether the client went away before
the end. That is how a test proves that a client's disconnect reached the provider's HTTP request.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.fakes import bedrock as _bedrock
from tests.fakes.anthropic import FakeAnthropic, JsonSseHandler, _AnthropicHandler
from tests.fakes.bedrock import FakeBedrock, Reply
from tests.fakes.openai import FakeOpenAI, _OpenAIHandler

__all__ = [
    "FIRST_COMPONENT",
    "Fault",
    "FaultyAnthropic",
    "FaultyBedrock",
    "FaultyOpenAI",
    "StreamOutcome",
    "endless",
    "faulty_anthropic",
    "faulty_bedrock",
    "faulty_openai",
    "garbage",
    "huge",
    "noise",
    "random_bytes",
]

PIECE = 64 * 1024  # characters per streamed piece of a huge answer
# Upper bound on the pieces an "endless" answer writes, so a test that forgets to stop it still ends.
_ENDLESS_CAP = 200_000

FIRST_COMPONENT: dict[str, Any] = {
    "type": "SimpleComponent",
    "data": {"title": "Revenue", "value": 1234, "unit": "USD"},
}


@dataclass(frozen=True)
class Fault(Reply):
    """A reply of one of the kinds above; ``chunks`` are the valid text pieces sent first."""

    payload: bytes = b""
    size: int = 0  # huge: the answer's length in characters


def random_bytes(n: int, seed: int = 8) -> bytes:
    """``n`` random bytes, the same every run."""
    return random.Random(seed).randbytes(n)


def garbage(payload: bytes, *, before: list[str] | None = None, delay: float = 0.0) -> Fault:
    """A 200 whose body is ``payload``; when streamed, ``before`` (valid pieces), then ``payload``."""
    return Fault("garbage", chunks=tuple(before or ()), payload=payload, delay=delay)


def noise(payload: bytes) -> Fault:
    """Bytes that are not an HTTP response at all, then a closed socket."""
    return Fault("noise", payload=payload)


def _huge_prefix() -> str:
    return "$$$[" + json.dumps(FIRST_COMPONENT) + ', {"type": "SimpleComponent", "data": {"title": "'


def huge(size: int = 10 * 1024 * 1024) -> Fault:
    """A ``size``-character answer: one valid component, then a second whose title never ends."""
    return Fault("huge", size=size)


def endless(*, chunk_delay: float = 0.01, before: list[str] | None = None) -> Fault:
    """An answer that never ends (``before`` first, then filler inside a string, forever)."""
    return Fault("endless", chunks=tuple(before or ()), chunk_delay=chunk_delay)


def _huge_pieces(reply: Fault) -> Iterator[str]:
    prefix = _huge_prefix()
    yield prefix
    left = max(0, reply.size - len(prefix))
    while left > 0:
        n = min(PIECE, left)
        yield "x" * n
        left -= n


@dataclass
class StreamOutcome:
    """How one streamed answer went, as the fake saw it."""

    kind: str
    sent: int = 0  # text pieces written
    finished: bool = False  # the whole answer went out
    client_left: bool = False  # a write failed: the client closed the connection first
    ended_at: float = field(default=0.0)


class _Recorder:
    """The part of a faulty fake that records stream outcomes (thread-safe; handlers run in threads)."""

    def _init_recorder(self) -> None:
        self.streams: list[StreamOutcome] = []
        self._streams_lock = threading.Lock()
        self._stream_ended = threading.Condition(self._streams_lock)

    def _new_outcome(self, kind: str) -> StreamOutcome:
        outcome = StreamOutcome(kind)
        with self._streams_lock:
            self.streams.append(outcome)
        return outcome

    def _end_outcome(self, outcome: StreamOutcome, *, finished: bool, client_left: bool) -> None:
        with self._stream_ended:
            outcome.finished = finished
            outcome.client_left = client_left
            outcome.ended_at = time.monotonic()
            self._stream_ended.notify_all()

    def wait_stream_ended(self, index: int = 0, timeout: float = 10.0) -> StreamOutcome:
        """The ``index``-th stream's outcome once it has ended (or fail after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._stream_ended:
            while True:
                if len(self.streams) > index and self.streams[index].ended_at:
                    return self.streams[index]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"stream {index} did not end within {timeout} s: {self.streams}")
                self._stream_ended.wait(left)


class _FaultHandling:
    """Mixed into a vendor handler: the fault kinds, and recorded streams for every kind."""

    owner: Any
    connection: socket.socket
    wfile: Any
    close_connection: bool

    # -- helpers shared by the three vendors

    def _fault_complete(self, reply: Reply) -> Reply | None:
        """Answer a non-streaming call with a fault; return a plain reply to send normally instead."""
        if reply.kind == "cut":  # Bedrock's fake has no "cut" of its own; the others never get here
            self._drop()
            return None
        if not isinstance(reply, Fault):
            return reply
        if reply.kind == "noise":
            self._send_noise(reply.payload)
        elif reply.kind == "garbage":
            self._send_raw(200, "application/json", reply.payload)
        elif reply.kind == "endless":
            self._trickle_forever()
        elif reply.kind == "huge":
            return Reply("text", chunks=("".join(_huge_pieces(reply)),))
        return None

    def _send_noise(self, payload: bytes) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(payload)
            self.wfile.flush()
        self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_raw(self, status: int, content_type: str, payload: bytes) -> None:
        send_response: Any = getattr(self, "send_response")  # noqa: B009 - mixin of a handler
        send_header: Any = getattr(self, "send_header")  # noqa: B009
        end_headers: Any = getattr(self, "end_headers")  # noqa: B009
        send_response(status)
        send_header("Content-Type", content_type)
        send_header("Content-Length", str(len(payload)))
        end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(payload)
            self.wfile.flush()

    def _trickle_forever(self) -> None:
        """A JSON body that announces a length it never reaches: one byte every 50 ms."""
        outcome = self.owner._new_outcome("endless-body")
        send_response: Any = getattr(self, "send_response")  # noqa: B009
        send_header: Any = getattr(self, "send_header")  # noqa: B009
        end_headers: Any = getattr(self, "end_headers")  # noqa: B009
        send_response(200)
        send_header("Content-Type", "application/json")
        send_header("Content-Length", str(10**9))
        end_headers()
        left = False
        try:
            self.wfile.write(b'{"id": "')
            for _ in range(_ENDLESS_CAP):
                if self.owner._stopping.wait(0.05):
                    break
                self.wfile.write(b"x")
                self.wfile.flush()
                outcome.sent += 1
        except OSError:
            left = True
        self.owner._end_outcome(outcome, finished=False, client_left=left)
        self._drop()

    def _stream_pieces(self, reply: Reply) -> Iterator[str]:
        """The text pieces a streamed reply sends (before any fault bytes)."""
        if isinstance(reply, Fault) and reply.kind == "huge":
            yield from _huge_pieces(reply)
            return
        yield from reply.chunks
        if isinstance(reply, Fault) and reply.kind == "endless":
            for _ in range(_ENDLESS_CAP):
                yield "x" * 32


class _FaultySseHandler(_FaultHandling, JsonSseHandler):
    """For the SSE vendors: re-implements ``send_sse`` so that every stream is recorded and the fault
    kinds can take over after the head events."""

    def _encode_delta(self, piece: str) -> bytes:
        raise NotImplementedError

    def _send_stream(self, reply: Reply, *args: Any) -> None:
        if isinstance(reply, Fault) and reply.kind == "noise":
            self._send_noise(reply.payload)  # before any status line
            return
        super()._send_stream(reply, *args)  # type: ignore[misc]

    def send_sse(self, reply: Reply, events: list[bytes], n_head: int, tail: list[bytes]) -> None:
        outcome = self.owner._new_outcome(reply.kind)
        finished = left = False
        try:
            for event in events[:n_head]:
                self.write_chunk(event)
            for piece in self._stream_pieces(reply):
                if reply.chunk_delay and self.owner._stopping.wait(reply.chunk_delay):
                    break
                self.write_chunk(self._encode_delta(piece))
                outcome.sent += 1
            else:
                if isinstance(reply, Fault) and reply.kind == "garbage":
                    self.write_chunk(reply.payload)
                    self.end_chunks()
                elif reply.kind == "cut":
                    self.drop_connection()
                else:
                    for event in tail:
                        self.write_chunk(event)
                    self.end_chunks()
                    finished = True
        except OSError:
            left = True
            self.close_connection = True
        self.owner._end_outcome(outcome, finished=finished, client_left=left)


class _FaultyOpenAIHandler(_FaultySseHandler, _OpenAIHandler):
    def _encode_delta(self, piece: str) -> bytes:
        chunk = {
            "id": "chatcmpl-fault",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "fake",
            "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _send_completion(self, reply: Reply, model: str) -> None:
        plain = self._fault_complete(reply)
        if plain is not None:
            with contextlib.suppress(OSError):  # the client gave up (a timeout under test)
                super()._send_completion(plain, model)


class _FaultyAnthropicHandler(_FaultySseHandler, _AnthropicHandler):
    def _encode_delta(self, piece: str) -> bytes:
        data = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        return f"event: content_block_delta\ndata: {json.dumps(data)}\n\n".encode()

    def _send_message(self, reply: Reply, model: str) -> None:
        plain = self._fault_complete(reply)
        if plain is not None:
            with contextlib.suppress(OSError):  # the client gave up (a timeout under test)
                super()._send_message(plain, model)


class _FaultyBedrockHandler(_FaultHandling, _bedrock._Handler):
    """Bedrock's event stream: fault kinds are written as ``chunk`` events (garbage as raw bytes)."""

    def _send_message(self, reply: Reply, model_id: str) -> None:
        plain = self._fault_complete(reply)
        if plain is not None:
            with contextlib.suppress(OSError):  # the client gave up (a timeout under test)
                super()._send_message(plain, model_id)

    def _send_stream(self, reply: Reply, model_id: str) -> None:
        if isinstance(reply, Fault) and reply.kind == "noise":
            self._send_noise(reply.payload)  # before any status line
            return
        outcome = self.owner._new_outcome(reply.kind)
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("x-amzn-bedrock-content-type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = _bedrock._anthropic_stream_events(Reply("text"), model_id)
        finished = left = False
        try:
            for event in head:
                self._write_chunk(_bedrock._chunk_event(event))
            for piece in self._stream_pieces(reply):
                if reply.chunk_delay and self.owner._stopping.wait(reply.chunk_delay):
                    break
                delta = {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                }
                self._write_chunk(_bedrock._chunk_event(delta))
                outcome.sent += 1
            else:
                if reply.kind == "cut":
                    self._drop()  # no end of the body, like the other fakes' cut
                else:
                    if isinstance(reply, Fault) and reply.kind == "garbage":
                        self._write_chunk(reply.payload)
                    elif reply.stream_error:
                        self._write_chunk(
                            _bedrock._exception_event(reply.stream_error, "fake in-stream error")
                        )
                    else:
                        for event in _bedrock._anthropic_stream_tail(reply):
                            self._write_chunk(_bedrock._chunk_event(event))
                        finished = True
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
        except OSError:
            left = True
            self.close_connection = True
        self.owner._end_outcome(outcome, finished=finished, client_left=left)


class FaultyOpenAI(_Recorder, FakeOpenAI):
    """:class:`~tests.fakes.openai.FakeOpenAI` with the fault kinds and recorded streams."""

    handler = _FaultyOpenAIHandler

    def __init__(self) -> None:
        super().__init__()
        self._init_recorder()


class FaultyAnthropic(_Recorder, FakeAnthropic):
    """:class:`~tests.fakes.anthropic.FakeAnthropic` with the fault kinds and recorded streams."""

    handler = _FaultyAnthropicHandler

    def __init__(self) -> None:
        super().__init__()
        self._init_recorder()


class FaultyBedrock(_Recorder, FakeBedrock):
    """:class:`~tests.fakes.bedrock.FakeBedrock` with the fault kinds and recorded streams."""

    def __init__(self) -> None:
        super().__init__()
        self._init_recorder()

    def handler_base(self) -> type[BaseHTTPRequestHandler]:
        return _FaultyBedrockHandler

    def __enter__(self) -> FaultyBedrock:
        return self.start()


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def faulty_openai(openai_env: None) -> Iterator[FaultyOpenAI]:
    with FaultyOpenAI() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def faulty_anthropic(anthropic_env: None) -> Iterator[FaultyAnthropic]:
    with FaultyAnthropic() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def faulty_bedrock(aws_env: None) -> Iterator[FaultyBedrock]:
    with FaultyBedrock() as fake:
        yield fake
