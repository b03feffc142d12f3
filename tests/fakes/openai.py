"""A fake OpenAI chat-completions server: a real HTTP server on 127.0.0.1 that answers like OpenAI,
vLLM, Ollama or llama.cpp's server do.

It is driven by the real ``openai`` SDK through ``base_url``, so the headers, the URL layout, the error
parsing and the SSE decoding under test are the SDK's own, not ours.

Scripting is the same as every fake here (builders from :mod:`tests.fakes.bedrock` and
:func:`tests.fakes.anthropic.cut`): ``fake.push(text(...))``, ``error(429, "rate_limit_exceeded")``,
``stream([...], chunk_delay=...)``, ``disconnect()``, ``cut([...])``. Every request is recorded
(``fake.requests``; ``fake.last.response_format`` shows whether structured output was asked for).

Wire format:
- ``POST /v1/chat/completions`` (and ``/chat/completions``, for base URLs without ``/v1``): a
  ``chat.completion`` object; with ``"stream": true``, SSE ``data:`` lines of ``chat.completion.chunk``
  objects (a role chunk, one content chunk per scripted chunk, a ``finish_reason`` chunk, a usage chunk
  if ``stream_options.include_usage``), then ``data: [DONE]``.
- ``GET /v1/models`` (and ``/models``): ``{"object": "list", "data": [...]}`` of :attr:`FakeOpenAI.models`.
- Errors: ``{"error": {"message", "type", "param", "code"}}``. ``error(status, code)`` takes the
  ``code``; the ``type`` follows the status as OpenAI sends it (``invalid_request_error`` for 4xx,
  ``requests`` for a 429, ``insufficient_quota`` for that code, ``server_error`` for 5xx). Inside a
  stream (``stream(..., stream_error="server_error")``), a ``data: {"error": ...}`` line, as vLLM sends.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.anthropic import (
    JsonSseHandler,
    LoopbackFake,
    RecordedRequest,
    Reply,
    cut,
    disconnect,
    error,
    stream,
    text,
)

__all__ = [
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "cut",
    "disconnect",
    "error",
    "fake_openai",
    "openai_env",
    "stream",
    "text",
]

_COMPLETIONS_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")
_FINISH_REASONS = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop"}


def _error_type(status: int, code: str) -> str:
    if code == "insufficient_quota":
        return "insufficient_quota"
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": _error_type(status, code), "param": None, "code": code}}


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


class _OpenAIHandler(JsonSseHandler):
    owner: FakeOpenAI

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in _MODELS_PATHS:
            self.send_openai_error(404, "unknown_url", f"Unknown request URL: GET {self.path}")
            return
        self.record("models", "", {})
        self.send_json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                    for m in self.owner.models
                ],
            },
        )

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        body = self.read_json_body()
        if path not in _COMPLETIONS_PATHS:
            self.send_openai_error(404, "unknown_url", f"Unknown request URL: POST {self.path}")
            return
        operation = "stream" if body.get("stream") is True else "complete"
        model = str(body.get("model", ""))
        self.record(operation, model, body)
        if "model" not in body or not isinstance(body.get("messages"), list):
            self.send_openai_error(400, "invalid_request_error", "model and messages are required")
            return
        reply = self.owner._next_reply()
        self.owner._sleep(reply.delay)
        if reply.kind == "disconnect":
            self.drop_connection()
        elif reply.kind == "error":
            self.send_openai_error(reply.status, reply.error_type, reply.message)
        elif operation == "stream":
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._send_stream(reply, model, include_usage)
        elif reply.kind == "cut":
            self.drop_connection()
        else:
            self._send_completion(reply, model)

    def send_openai_error(self, status: int, code: str, message: str) -> None:
        self.send_json(status, _error_body(status, code, message), {"x-request-id": "req_fake"})

    def _send_completion(self, reply: Reply, model: str) -> None:
        completion_tokens = max(1, len(reply.text) // 4)
        self.send_json(
            200,
            {
                "id": f"chatcmpl-fake{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": _FINISH_REASONS.get(reply.stop_reason, reply.stop_reason),
                    }
                ],
                "usage": {
                    "prompt_tokens": 42,
                    "completion_tokens": completion_tokens,
                    "total_tokens": 42 + completion_tokens,
                },
            },
            {"x-request-id": "req_fake"},
        )

    def _send_stream(self, reply: Reply, model: str, include_usage: bool) -> None:
        base = {
            "id": f"chatcmpl-fake{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**base, "choices": [choice]})

        head = [chunk({"role": "assistant", "content": ""})]
        deltas = [chunk({"content": c}) for c in reply.chunks]
        if reply.stream_error:
            tail = [_sse(_error_body(500, reply.stream_error, f"fake in-stream {reply.stream_error}"))]
        else:
            tail = [chunk({}, _FINISH_REASONS.get(reply.stop_reason, reply.stop_reason))]
            if include_usage:
                usage = {"prompt_tokens": 42, "completion_tokens": len(reply.chunks)}
                usage["total_tokens"] = 42 + len(reply.chunks)
                tail.append(_sse({**base, "choices": [], "usage": usage}))
        tail.append(_sse("[DONE]"))
        self.start_sse({"x-request-id": "req_fake"})
        self.send_sse(reply, head + deltas, len(head), tail)


class FakeOpenAI(LoopbackFake):
    """The fake chat-completions server. Use as a context manager (or the :func:`fake_openai`
    fixture); point the SDK at :attr:`base_url` (``.../v1``) or at :attr:`url` (no ``/v1``)."""

    handler = _OpenAIHandler

    def __init__(self) -> None:
        super().__init__()
        self.models: list[str] = ["gpt-4o-mini", "fake-local-model"]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def unscripted(self) -> Reply:
        return error(500, "server_error", "fake: no scripted reply left")

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OPENAI_* variable of the developer's shell (a real key, a base URL) reaches the SDK."""
    for name in list(os.environ):
        if name.startswith("OPENAI_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_openai(openai_env: None) -> Iterator[FakeOpenAI]:
    """A running fake chat-completions server (with the developer's OPENAI_* settings hidden)."""
    with FakeOpenAI() as fake:
        yield fake
