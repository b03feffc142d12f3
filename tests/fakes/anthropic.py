"""A fake Anthropic Messages API: a real HTTP server on 127.0.0.1 that answers like api.anthropic.com.

It is driven by the real ``anthropic`` SDK through ``base_url``, so the headers, the URL layout, the
error parsing and the SSE decoding under test are the SDK's own, not ours.

Answers come from a script that tests program, one per request in order, with the builders of
:mod:`tests.fakes.bedrock` (imported, so every fake is scripted alike): ``fake.push(text(...))``,
``error(429, "rate_limit_error")``, ``stream([...], chunk_delay=...)``, ``disconnect()``, plus
:func:`cut` (a stream that breaks half-way). When the script is empty the ``default`` answer is used
(a 500 unless set, so a test that under-scripts fails loudly). Every request is recorded
(``fake.requests``: operation, model, parsed body, headers, the client's port) for tests to assert on;
the port shows whether the client reused its connection.

Wire format (API version 2026-10-21, the one the SDK 2.x sends):
- ``POST /v1/messages``: a ``message`` object; with ``"stream": true`` in the body, SSE events
  ``message_start``, ``content_block_start``, ``ping``, one ``content_block_delta`` (``text_delta``)
  per chunk, ``content_block_stop``, ``message_delta``, ``message_stop``.
- Errors: ``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`` with the
  status (429 ``rate_limit_error``, 529 ``overloaded_error``, 500 ``api_error``, 401
  ``authentication_error``, 400 ``invalid_request_error``, 404 ``not_found_error``, ...); inside a
  stream (``stream(..., stream_error="overloaded_error")``), an ``event: error`` with the same body.
- Like the real API, a request without a key is a 401, and a body with ``temperature``, ``top_p`` or
  ``top_k`` under version 2026-10-21 is a 400 (those validation answers use no scripted reply).

The server's lifecycle and script are :class:`tests.fakes.bedrock.FakeBedrock`'s; the HTTP plumbing
here (:class:`LoopbackFake`, :class:`JsonSseHandler`) is reused by :mod:`tests.fakes.openai`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tests.fakes.bedrock import FakeBedrock, Reply, disconnect, error, stream, text
from tests.fakes.bedrock import RecordedRequest as _BedrockRecordedRequest

__all__ = [
    "API_VERSION",
    "FakeAnthropic",
    "JsonSseHandler",
    "LoopbackFake",
    "RecordedRequest",
    "Reply",
    "cut",
    "disconnect",
    "error",
    "fake_anthropic",
    "stream",
    "text",
]

API_VERSION = "2026-10-21"
_REMOVED_SAMPLING_PARAMS = ("temperature", "top_p", "top_k")


def cut(chunks: list[str], *, chunk_delay: float = 0.0, delay: float = 0.0) -> Reply:
    """A stream that sends ``chunks`` and then drops the connection, without the end of the body."""
    return Reply("cut", chunks=tuple(chunks), chunk_delay=chunk_delay, delay=delay)


@dataclass(frozen=True)
class RecordedRequest(_BedrockRecordedRequest):
    """One request as the fake saw it; ``operation`` is ``"complete"``, ``"stream"`` or ``"models"``."""

    client_port: int = 0

    @property
    def streaming(self) -> bool:
        return self.operation == "stream"

    @property
    def response_format(self) -> Any:
        """The ``response_format`` an OpenAI-style request asked for (``None`` when it sent none)."""
        return self.body.get("response_format")


# -- shared HTTP plumbing ----------------------------------------------------------------------------


class JsonSseHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: JSON answers with a length, SSE answers chunked, and the two failures
    a network can produce (no answer at all; an answer that stops half-way)."""

    owner: LoopbackFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def read_json_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return {"_raw": raw.decode(errors="replace")}
        return body if isinstance(body, dict) else {"_json": body}

    def record(self, operation: str, model_id: str, body: dict[str, Any]) -> None:
        self.owner._record(
            RecordedRequest(
                operation=operation,
                model_id=model_id,
                path=self.path,
                body=body,
                headers={k.lower(): v for k, v in self.headers.items()},
                client_port=int(self.client_address[1]),
            )
        )

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_sse(self, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop_connection(self) -> None:
        """Close the socket now: no answer, or the rest of one, ever comes."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_sse(self, reply: Reply, events: list[bytes], n_head: int, tail: list[bytes]) -> None:
        """``events[:n_head]`` at once, one chunk event per ``chunk_delay``, then ``tail`` (unless the
        reply is a ``cut``, which drops the connection instead). A client that leaves is not an error."""
        try:
            for i, event in enumerate(events):
                if i >= n_head:
                    self.owner._sleep(reply.chunk_delay)
                self.write_chunk(event)
            if reply.kind == "cut":
                self.drop_connection()
                return
            for event in tail:
                self.write_chunk(event)
            self.end_chunks()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class LoopbackFake(FakeBedrock):
    """A :class:`FakeBedrock` (script, recording, lifecycle) that serves ``handler`` instead."""

    handler: ClassVar[type[JsonSseHandler]]

    def start(self) -> LoopbackFake:
        fake = self

        class Handler(self.handler):  # type: ignore[name-defined,misc]
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self) -> LoopbackFake:
        return self.start()

    def unscripted(self) -> Reply:
        """The answer when neither the script nor ``default`` has one."""
        return error(500, "api_error", "fake: no scripted reply left")

    def _next_reply(self) -> Reply:
        try:
            return self._script.get_nowait()
        except queue.Empty:
            return self.default if self.default is not None else self.unscripted()

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            request = self.requests[-1]
        assert isinstance(request, RecordedRequest)
        return request


# -- the Anthropic wire format -----------------------------------------------------------------------


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": f"req_fake_{uuid.uuid4().hex[:16]}",
    }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


class _AnthropicHandler(JsonSseHandler):
    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        body = self.read_json_body()
        if path != "/v1/messages":
            self.send_anthropic_error(404, "not_found_error", f"no route for POST {self.path}")
            return
        operation = "stream" if body.get("stream") is True else "complete"
        model = str(body.get("model", ""))
        self.record(operation, model, body)
        if not self.headers.get("x-api-key") and not self.headers.get("authorization"):
            self.send_anthropic_error(401, "authentication_error", "x-api-key header is required")
            return
        problem = self._invalid(body)
        if problem:
            self.send_anthropic_error(400, "invalid_request_error", problem)
            return
        reply = self.owner._next_reply()
        self.owner._sleep(reply.delay)
        if reply.kind == "disconnect":
            self.drop_connection()
        elif reply.kind == "error":
            self.send_anthropic_error(reply.status, reply.error_type, reply.message)
        elif operation == "stream":
            self._send_stream(reply, model)
        elif reply.kind == "cut":
            self.drop_connection()
        else:
            self._send_message(reply, model)

    def do_GET(self) -> None:
        self.send_anthropic_error(404, "not_found_error", f"no route for GET {self.path}")

    def _invalid(self, body: dict[str, Any]) -> str:
        for field in ("model", "max_tokens", "messages"):
            if field not in body:
                return f"{field}: Field required"
        if self.headers.get("anthropic-version") == API_VERSION:
            for name in _REMOVED_SAMPLING_PARAMS:
                if name in body:
                    return f"{name}: Extra inputs are not permitted"
        return ""

    def send_anthropic_error(self, status: int, error_type: str, message: str) -> None:
        self.send_json(status, _error_body(error_type, message), {"request-id": "req_fake"})

    def _send_message(self, reply: Reply, model: str) -> None:
        self.send_json(
            200,
            {
                "id": f"msg_fake_{uuid.uuid4().hex[:16]}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": reply.text}],
                "stop_reason": reply.stop_reason,
                "stop_sequence": None,
                "usage": _usage(42, max(1, len(reply.text) // 4)),
            },
            {"request-id": "req_fake"},
        )

    def _send_stream(self, reply: Reply, model: str) -> None:
        head = [
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_fake_{uuid.uuid4().hex[:16]}",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": _usage(42, 1),
                    },
                },
            ),
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            _sse("ping", {"type": "ping"}),
        ]
        deltas = [
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}},
            )
            for c in reply.chunks
        ]
        if reply.stream_error:
            tail = [_sse("error", _error_body(reply.stream_error, f"fake in-stream {reply.stream_error}"))]
        else:
            tail = [
                _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
                _sse(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                        "usage": {"output_tokens": len(reply.chunks)},
                    },
                ),
                _sse("message_stop", {"type": "message_stop"}),
            ]
        self.start_sse({"request-id": "req_fake"})
        self.send_sse(reply, head + deltas, len(head), tail)


class FakeAnthropic(LoopbackFake):
    """The fake Messages API. Use as a context manager (or the :func:`fake_anthropic` fixture);
    point the SDK at :attr:`url` (no ``/v1``: the SDK adds it)."""

    handler = _AnthropicHandler

    def __enter__(self) -> FakeAnthropic:
        self.start()
        return self


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def anthropic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No ANTHROPIC_* variable of the developer's shell, and no profile on disk, reaches the SDK."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "anthropic-config-absent"))


@pytest.fixture
def fake_anthropic(anthropic_env: None) -> Iterator[FakeAnthropic]:
    """A running fake Anthropic Messages API (with the developer's ANTHROPIC_* settings hidden)."""
    with FakeAnthropic() as fake:
        yield fake
