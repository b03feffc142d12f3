"""Anthropic's own Messages API, through the official ``anthropic`` SDK (``AsyncAnthropic``).

One client lives for the provider's lifetime: it owns the HTTP connection pool, so a client per
request would pay a TCP (and TLS) handshake every time. It is built on first use rather than in the
constructor, so a missing API key is a :class:`PermanentProviderError` at call time (which the planner
can fail over from) instead of an exception while the app starts. :meth:`AnthropicProvider.aclose`
closes it.

The SDK's own retries are off (``max_retries=0``): tenacity in the planner is the one retry policy, so
"rate limited twice, then success" is exactly three calls at the server (decisions.md).
``settings.anthropic_base_url`` points the SDK at another host (a proxy, a gateway, or the test fake);
the key comes from the ``api_key`` argument or, as the SDK does by default, ``ANTHROPIC_API_KEY``.

``settings.model_id`` defaults to a Bedrock inference-profile id (``us.anthropic.claude-...``), which
this API does not know; when it still has that shape, :data:`DEFAULT_MODEL` is used instead, so
switching ``STREAMFORGE_PROVIDER`` alone gives a working setup. That is Claude Haiku 4.5, not 3.5
Haiku: the Anthropic API retired ``claude-3-5-haiku-*`` on 2026-02-19, and Haiku 4.5 is its named
replacement.

``request.temperature`` is not sent. The SDK (2.x) speaks API version 2026-10-21, which removed the
sampling parameters: ``temperature``, ``top_p`` and ``top_k`` are no longer in ``messages.create``'s
signature, and the API answers 400 to a body that carries them, even ``temperature: 1.0``.

This module only translates: our :class:`CompletionRequest` to a Messages call, the answer to text,
and the SDK's errors to :class:`TransientProviderError` (worth retrying) or
:class:`PermanentProviderError` (not).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import anthropic
from anthropic import AsyncAnthropic, omit
from anthropic.types import MessageParam

from streamforge.config import Settings
from streamforge.providers.base import (
    CompletionRequest,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "AnthropicProvider"]

DEFAULT_MODEL = "claude-haiku-4-5"

# A Bedrock model id: an optional cross-region prefix ("us.", "eu.", "apac.", "global."), then the
# vendor, e.g. "us.anthropic.claude-3-5-haiku-20241022-v1:0". The Anthropic API names models without it.
_BEDROCK_MODEL_ID = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")

# Statuses worth another attempt: request timeout, rate limit, every 5xx (529 is "overloaded").
_TRANSIENT_STATUSES = frozenset({408, 429})
# Error types that arrive inside a stream (an ``event: error`` on a 200 response), by transience.
_TRANSIENT_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


def resolve_model(model_id: str) -> str:
    """The model to ask the Anthropic API for: ``model_id``, unless it is a Bedrock id."""
    return DEFAULT_MODEL if _BEDROCK_MODEL_ID.match(model_id) else model_id


class AnthropicProvider:
    """Claude through the Anthropic API (or anything that speaks its Messages wire format)."""

    name = "anthropic"

    def __init__(self, settings: Settings, *, api_key: str | None = None) -> None:
        self.model_id: str = resolve_model(settings.model_id)
        self._base_url = settings.anthropic_base_url
        self._api_key = api_key
        self._timeout = settings.provider_timeout
        self._client: AsyncAnthropic | None = None

    async def complete(self, request: CompletionRequest) -> str:
        """The whole answer's text: every text block of the response, concatenated."""
        client = self._get_client()
        try:
            message = await client.messages.create(
                model=self.model_id,
                system=request.system or omit,
                messages=_messages(request),
                max_tokens=request.max_tokens,
            )
        except Exception as exc:
            raise self._map_error(exc) from exc
        if message.stop_reason == "max_tokens":
            log.warning("Anthropic answer hit max_tokens (%d); it is probably cut off", request.max_tokens)
        return "".join(block.text for block in message.content if block.type == "text")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        """The answer's text as it is generated: the ``text_delta`` of each content block delta.

        ``create(stream=True)`` rather than the SDK's ``messages.stream()`` helper: we need only the
        deltas, not the message snapshot the helper rebuilds after every event.
        """
        client = self._get_client()
        try:
            events = await client.messages.create(
                model=self.model_id,
                system=request.system or omit,
                messages=_messages(request),
                max_tokens=request.max_tokens,
                stream=True,
            )
        except Exception as exc:
            raise self._map_error(exc) from exc
        iterator = aiter(events)
        try:
            while True:
                try:
                    event = await anext(iterator)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise self._map_error(exc) from exc
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    if event.delta.text:
                        yield event.delta.text
                elif event.type == "message_delta" and event.delta.stop_reason == "max_tokens":
                    log.warning(
                        "Anthropic answer hit max_tokens (%d); it is probably cut off", request.max_tokens
                    )
        finally:
            # Stop reading the HTTP body if the consumer left early (client disconnect, cancellation).
            await events.close()

    async def aclose(self) -> None:
        """Close the client (and its connection pool); a later call would open a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # -- internals ---------------------------------------------------------------------------------

    def _get_client(self) -> AsyncAnthropic:
        # No await between the check and the assignment, so concurrent first calls still make one.
        if self._client is None:
            try:
                self._client = AsyncAnthropic(
                    api_key=self._api_key,
                    base_url=self._base_url,
                    max_retries=0,
                    timeout=self._timeout,
                )
            except Exception as exc:
                raise self._map_error(exc) from exc
        return self._client

    def _map_error(self, exc: BaseException) -> ProviderError:
        """The SDK's error, as one of ours: transient when another attempt may succeed."""
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, anthropic.APIStatusError):
            error_type, message = _error_fields(exc.body)
            status = exc.status_code
            if status < 400:
                # An ``event: error`` inside a stream that began with 200: only its type tells.
                text = f"Anthropic {error_type or 'error'} mid-stream: {message or exc.message}"
                if error_type in _TRANSIENT_ERROR_TYPES:
                    return TransientProviderError(text, provider=self.name)
                return PermanentProviderError(text, provider=self.name)
            text = f"Anthropic {error_type or type(exc).__name__} ({status}): {message or exc.message}"
            if status >= 500 or status in _TRANSIENT_STATUSES:
                return TransientProviderError(text, provider=self.name, status=status)
            return PermanentProviderError(text, provider=self.name, status=status)
        if isinstance(exc, anthropic.APIConnectionError):  # APITimeoutError included
            return TransientProviderError(f"Anthropic unreachable: {exc}", provider=self.name)
        if _is_transport_error(exc) or isinstance(exc, TimeoutError | ConnectionError):
            # A body cut off mid-stream surfaces as the HTTP library's own error, unwrapped by the SDK.
            return TransientProviderError(f"Anthropic connection failed: {exc!r}", provider=self.name)
        if isinstance(exc, UnicodeDecodeError | json.JSONDecodeError):
            # A 200 whose body (or a stream event) is not UTF-8 JSON: the SDK lets the decoder's error
            # through. A garbled reply is a transport accident more often than a contract change.
            return TransientProviderError(
                f"Anthropic returned a body that is not JSON ({type(exc).__name__})", provider=self.name
            )
        if isinstance(exc, anthropic.AnthropicError | TypeError):
            # Missing credentials (the SDK raises TypeError for them in some versions), a response that
            # does not parse: configuration or contract problems that another attempt would repeat.
            return PermanentProviderError(f"Anthropic client error: {exc}", provider=self.name)
        log.error("unexpected error from the Anthropic client", exc_info=exc)
        return PermanentProviderError(f"Anthropic call failed: {exc!r}", provider=self.name)


def _messages(request: CompletionRequest) -> list[MessageParam]:
    messages: list[MessageParam] = []
    for m in request.messages:
        if m.role == "user":
            messages.append({"role": "user", "content": m.content})
        else:
            messages.append({"role": "assistant", "content": m.content})
    return messages


def _error_fields(body: object) -> tuple[str, str]:
    """``error.type`` and ``error.message`` of an Anthropic error body, ``""`` where absent."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    error_type, message = error.get("type"), error.get("message")
    return (
        error_type if isinstance(error_type, str) else "",
        message if isinstance(message, str) else "",
    )


def _is_transport_error(exc: BaseException) -> bool:
    """An httpx (or httpx2) ``TransportError``, matched by name so we need no direct dependency."""
    return any(
        cls.__name__ == "TransportError" and cls.__module__.startswith(("httpx", "httpcore"))
        for cls in type(exc).__mro__
    )
