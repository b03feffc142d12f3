"""A fake Bedrock Runtime: a real HTTP server on 127.0.0.1 that answers like Bedrock does.

It is driven by the real aioboto3 client through ``endpoint_url``, so the request signing, the URL
layout, the error parsing and the event-stream decoding under test are botocore's own, not ours.

Answers come from a script that tests program (``fake.push(text(...))``, ``error(...)``, ``stream(...)``,
``disconnect()``), one per request in order; when the script is empty the ``default`` answer is used
(a 500 unless set, so a test that under-scripts fails loudly). Every request is recorded
(``fake.requests``: operation, model id, parsed body) for tests to assert on.

Wire formats follow the service:
- ``POST /model/{modelId}/invoke``: an Anthropic Messages response body.
- ``POST /model/{modelId}/invoke-with-response-stream``: ``application/vnd.amazon.eventstream``
  messages, each ``chunk`` event carrying ``{"bytes": base64(<Anthropic stream event JSON>)}``.
- Errors: the status, an ``x-amzn-ErrorType: <Code>:http://internal.amazon.com/...`` header and a
  ``{"message": ...}`` body; inside a stream, an ``exception`` message with ``:exception-type``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

__all__ = [
    "FakeBedrock",
    "RecordedRequest",
    "Reply",
    "aws_env",
    "disconnect",
    "encode_event_message",
    "error",
    "fake_bedrock",
    "message",
    "stream",
    "text",
]

_ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: build it with text(), error(), stream() or disconnect()."""

    kind: str  # "text" | "error" | "disconnect"
    chunks: tuple[str, ...] = ()
    status: int = 200
    error_type: str = ""
    message: str = ""
    delay: float = 0.0  # before the response starts
    chunk_delay: float = 0.0  # between stream chunks
    stop_reason: str = "end_turn"
    # For streams: after the chunks, send an in-stream exception of this type (e.g. "throttlingException").
    stream_error: str | None = None
    # For /invoke: the response's content blocks as given, instead of one text block of the chunks.
    content: tuple[dict[str, Any], ...] | None = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def text(answer: str, *, delay: float = 0.0, stop_reason: str = "end_turn", chunk_size: int = 0) -> Reply:
    """A successful answer. On the streaming endpoint it is sent in ``chunk_size`` pieces (0: one)."""
    if chunk_size > 0:
        chunks = tuple(answer[i : i + chunk_size] for i in range(0, len(answer), chunk_size)) or ("",)
    else:
        chunks = (answer,)
    return Reply("text", chunks=chunks, delay=delay, stop_reason=stop_reason)


def stream(
    chunks: list[str], *, chunk_delay: float = 0.0, delay: float = 0.0, stream_error: str | None = None
) -> Reply:
    """A streamed answer, one ``content_block_delta`` per chunk (on ``/invoke``: the joined text)."""
    return Reply(
        "text", chunks=tuple(chunks), chunk_delay=chunk_delay, delay=delay, stream_error=stream_error
    )


def message(content: list[dict[str, Any]], *, stop_reason: str = "end_turn") -> Reply:
    """An ``/invoke`` answer with these content blocks (e.g. a tool_use block beside text blocks)."""
    chunks = tuple(b["text"] for b in content if b.get("type") == "text" and isinstance(b.get("text"), str))
    return Reply("text", chunks=chunks, content=tuple(content), stop_reason=stop_reason)


def error(status: int, error_type: str, message: str = "", *, delay: float = 0.0) -> Reply:
    """A Bedrock error response, e.g. ``error(429, "ThrottlingException")``."""
    return Reply(
        "error", status=status, error_type=error_type, message=message or f"fake {error_type}", delay=delay
    )


def disconnect(*, delay: float = 0.0) -> Reply:
    """Close the connection without answering (a dropped connection)."""
    return Reply("disconnect", delay=delay)


@dataclass(frozen=True)
class RecordedRequest:
    operation: str  # "invoke" | "stream"
    model_id: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


# -- event-stream encoding ---------------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # name length (1 byte), name, value type 7 (string), value length (2 bytes), value
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def encode_event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + raw_headers + payload
    return message + struct.pack("!I", zlib.crc32(message) & 0xFFFFFFFF)


def _chunk_event(event: dict[str, Any]) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()}).encode()
    return encode_event_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
    )


def _exception_event(exception_type: str, message: str) -> bytes:
    return encode_event_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )


def _anthropic_stream_events(reply: Reply, model_id: str) -> list[dict[str, Any]]:
    """The Anthropic Messages stream around the chunks, as Bedrock relays it."""
    message_id = "msg_bdrk_fake"
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model_id,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 42, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}}
        for c in reply.chunks
    ]
    return events


def _anthropic_stream_tail(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": len(reply.chunks)},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 42,
                "outputTokenCount": len(reply.chunks),
                "invocationLatency": 1,
                "firstByteLatency": 1,
            },
        },
    ]


# -- the server --------------------------------------------------------------------------------------


class FakeBedrock:
    """The fake service. Use as a context manager (or the :func:`fake_bedrock` fixture)."""

    def __init__(self) -> None:
        self._script: queue.SimpleQueue[Reply] = queue.SimpleQueue()
        self.default: Reply | None = None
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- programming and inspection

    def push(self, *replies: Reply) -> FakeBedrock:
        """Queue answers for the next requests, in order."""
        for reply in replies:
            self._script.put(reply)
        return self

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def model_ids(self) -> list[str]:
        with self._lock:
            return [r.model_id for r in self.requests]

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- lifecycle

    def handler_base(self) -> type[BaseHTTPRequestHandler]:
        """The request handler to serve with; a subclass of the fake swaps in its own."""
        return _Handler

    def start(self) -> FakeBedrock:
        fake = self

        class Handler(self.handler_base()):  # type: ignore[misc]
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping through a scripted delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeBedrock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler

    def _next_reply(self) -> Reply:
        try:
            return self._script.get_nowait()
        except queue.Empty:
            if self.default is not None:
                return self.default
            return error(500, "InternalServerException", "fake bedrock: no scripted reply left")

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeBedrock
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if (
            len(parts) != 3
            or parts[0] != "model"
            or parts[2] not in ("invoke", "invoke-with-response-stream")
        ):
            self._send_error(404, "UnknownOperationException", f"no route for {self.path}")
            return
        model_id = unquote(parts[1])
        operation = "invoke" if parts[2] == "invoke" else "stream"
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        self.owner._record(RecordedRequest(operation, model_id, self.path, body, dict(self.headers.items())))
        reply = self.owner._next_reply()
        self.owner._sleep(reply.delay)
        if reply.kind == "disconnect":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.kind == "error":
            self._send_error(reply.status, reply.error_type, reply.message)
            return
        if operation == "invoke":
            self._send_message(reply, model_id)
        else:
            self._send_stream(reply, model_id)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, error_type: str, message: str) -> None:
        self._send_json(
            status, {"message": message}, {"x-amzn-ErrorType": f"{error_type}:{_ERROR_NAMESPACE}"}
        )

    def _send_message(self, reply: Reply, model_id: str) -> None:
        self._send_json(
            200,
            {
                "id": "msg_bdrk_fake",
                "type": "message",
                "role": "assistant",
                "model": model_id,
                "content": list(reply.content)
                if reply.content is not None
                else [{"type": "text", "text": reply.text}],
                "stop_reason": reply.stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": 42, "output_tokens": max(1, len(reply.text) // 4)},
            },
            {
                "X-Amzn-Bedrock-Input-Token-Count": "42",
                "X-Amzn-Bedrock-Output-Token-Count": str(max(1, len(reply.text) // 4)),
            },
        )

    def _send_stream(self, reply: Reply, model_id: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("x-amzn-bedrock-content-type", "application/json")
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = _anthropic_stream_events(reply, model_id)
        n_head = len(head) - len(reply.chunks)
        try:
            for i, event in enumerate(head):
                if i >= n_head:
                    self.owner._sleep(reply.chunk_delay)
                self._write_chunk(_chunk_event(event))
            if reply.stream_error:
                self._write_chunk(_exception_event(reply.stream_error, "fake in-stream error"))
            else:
                for event in _anthropic_stream_tail(reply):
                    self._write_chunk(_chunk_event(event))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Dummy credentials and no AWS config files or instance metadata: nothing real is ever read."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def fake_bedrock(aws_env: None) -> Iterator[FakeBedrock]:
    """A running fake Bedrock Runtime (with dummy AWS credentials in the environment)."""
    with FakeBedrock() as fake:
        yield fake
