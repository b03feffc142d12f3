"""OpenAI's chat completions, and every server that copies them, through the official ``openai`` SDK.

The same wire format is served by OpenAI, vLLM, Ollama (``/v1``), llama.cpp's ``llama-server``,
LM Studio and most gateways, so one provider covers them: ``settings.openai_base_url`` picks the
server. Local servers usually need no key, but the SDK insists on one, so with a ``base_url`` and no
key a placeholder (``"not-needed"``) is sent; against OpenAI itself the key comes from the ``api_key``
argument or, as the SDK does by default, ``OPENAI_API_KEY``.

One client lives for the provider's lifetime (it owns the connection pool). It is built on first use,
so a missing key is a :class:`PermanentProviderError` at call time (the planner can fail over from it)
rather than an exception while the app starts. The SDK's retries are off (``max_retries=0``): tenacity
in the planner is the one retry policy (decisions.md).

Only the lowest common denominator of these servers is used: ``max_tokens`` (not OpenAI's newer
``max_completion_tokens``, which vLLM, Ollama and llama.cpp may not know) and, unless
``settings.openai_structured`` is set, no ``response_format``: many compatible servers reject
``json_schema`` (decisions.md: off by default). When it is on and the request carries a schema, the
schema (root ``{"components": [...]}``, built by the caller) is sent non-strict, since strict mode
forbids the optional fields our components have.

``settings.model_id`` defaults to a Bedrock model id, which no OpenAI-compatible server knows; while it
has that shape, :data:`DEFAULT_MODEL` is used instead.

This module only translates: our :class:`CompletionRequest` to a chat-completions call, the answer to
text, and the SDK's errors to :class:`TransientProviderError` (worth retrying) or
:class:`PermanentProviderError` (not).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import openai
from openai import AsyncOpenAI, omit
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat

from streamforge.config import Settings
from streamforge.providers.base import (
    CompletionRequest,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "NO_KEY", "SCHEMA_NAME", "OpenAICompatProvider"]

DEFAULT_MODEL = "gpt-4o-mini"
# Sent as the key to servers that need none (the SDK refuses to run without one).
NO_KEY = "not-needed"
# The name the structured-output schema travels under (OpenAI requires one).
SCHEMA_NAME = "dashboard"

# A Bedrock model id: an optional cross-region prefix, then a Bedrock vendor.
_BEDROCK_MODEL_ID = re.compile(r"^(?:[a-z]{2,6}\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21)\.")

# Statuses worth another attempt: request timeout, rate limit, every 5xx.
_TRANSIENT_STATUSES = frozenset({408, 429})
# A 429 that will not go away by waiting: the account is out of credit.
_PERMANENT_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


def resolve_model(model_id: str) -> str:
    """The model to ask for: ``model_id``, unless it is a Bedrock id."""
    return DEFAULT_MODEL if _BEDROCK_MODEL_ID.match(model_id) else model_id


class OpenAICompatProvider:
    """OpenAI, or any server speaking its chat-completions wire format (vLLM, Ollama, llama.cpp, ...)."""

    name = "openai"

    def __init__(self, settings: Settings, *, api_key: str | None = None) -> None:
        self.model_id: str = resolve_model(settings.model_id)
        self._base_url = settings.openai_base_url
        self._structured = settings.openai_structured
        self._api_key = api_key
        self._timeout = settings.provider_timeout
        self._client: AsyncOpenAI | None = None

    async def complete(self, request: CompletionRequest) -> str:
        """The whole answer's text: the first choice's message content."""
        client = self._get_client()
        try:
            completion = await client.chat.completions.create(
                model=self.model_id,
                messages=_messages(request),
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                response_format=self._response_format(request),
            )
        except Exception as exc:
            raise self._map_error(exc) from exc
        if not completion.choices:
            raise PermanentProviderError("the server returned no choices", provider=self.name)
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            log.warning("OpenAI answer hit max_tokens (%d); it is probably cut off", request.max_tokens)
        if choice.message.content is None and choice.message.refusal:
            raise PermanentProviderError(f"the model refused: {choice.message.refusal}", provider=self.name)
        return choice.message.content or ""

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        """The answer's text as it is generated: each chunk's ``choices[0].delta.content``."""
        client = self._get_client()
        try:
            chunks = await client.chat.completions.create(
                model=self.model_id,
                messages=_messages(request),
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                response_format=self._response_format(request),
                stream=True,
            )
        except Exception as exc:
            raise self._map_error(exc) from exc
        iterator = aiter(chunks)
        try:
            while True:
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise self._map_error(exc) from exc
                if not chunk.choices:  # a usage-only chunk
                    continue
                choice = chunk.choices[0]
                if choice.delta.content:
                    yield choice.delta.content
                if choice.finish_reason == "length":
                    log.warning(
                        "OpenAI answer hit max_tokens (%d); it is probably cut off", request.max_tokens
                    )
        finally:
            # Stop reading the HTTP body if the consumer left early (client disconnect, cancellation).
            await chunks.close()

    async def aclose(self) -> None:
        """Close the client (and its connection pool); a later call would open a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # -- internals ---------------------------------------------------------------------------------

    def _get_client(self) -> AsyncOpenAI:
        # No await between the check and the assignment, so concurrent first calls still make one.
        if self._client is None:
            try:
                try:
                    self._client = self._new_client(self._api_key)
                except openai.OpenAIError:
                    # No key given nor in OPENAI_API_KEY (the SDK reads it, we do not): fine for a
                    # local server, which only needs the SDK to send something.
                    if self._api_key is not None or self._base_url is None:
                        raise
                    self._client = self._new_client(NO_KEY)
            except Exception as exc:
                raise self._map_error(exc) from exc
        return self._client

    def _new_client(self, api_key: str | None) -> AsyncOpenAI:
        return AsyncOpenAI(api_key=api_key, base_url=self._base_url, max_retries=0, timeout=self._timeout)

    def _response_format(self, request: CompletionRequest) -> ResponseFormat | openai.Omit:
        if not self._structured or request.json_schema is None:
            return omit
        return {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "schema": request.json_schema, "strict": False},
        }

    def _map_error(self, exc: BaseException) -> ProviderError:
        """The SDK's error, as one of ours: transient when another attempt may succeed."""
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            code = exc.code or ""
            text = f"OpenAI {code or exc.type or type(exc).__name__} ({status}): {exc.message}"
            if code in _PERMANENT_CODES:
                return PermanentProviderError(text, provider=self.name, status=status)
            if status >= 500 or status in _TRANSIENT_STATUSES:
                return TransientProviderError(text, provider=self.name, status=status)
            return PermanentProviderError(text, provider=self.name, status=status)
        if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
            return TransientProviderError(
                f"connection to the OpenAI-compatible server failed: {exc}", provider=self.name
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return PermanentProviderError(f"OpenAI answer did not validate: {exc}", provider=self.name)
        if isinstance(exc, openai.APIError):
            # ``{"error": ...}`` inside a stream that started with 200. A server that gives up half-way
            # is usually overloaded or out of memory; only an error naming a 4xx is the request's fault.
            text = f"OpenAI stream error: {exc.message}"
            if _names_client_error(exc):
                return PermanentProviderError(text, provider=self.name)
            return TransientProviderError(text, provider=self.name)
        if _is_transport_error(exc) or isinstance(exc, TimeoutError | ConnectionError):
            # A body cut off mid-stream surfaces as the HTTP library's own error, unwrapped by the SDK.
            return TransientProviderError(f"OpenAI connection failed: {exc!r}", provider=self.name)
        if isinstance(exc, UnicodeDecodeError | json.JSONDecodeError):
            # A 200 whose body (or a stream event) is not UTF-8 JSON: the SDK lets the decoder's error
            # through. A garbled reply is a transport accident more often than a contract change.
            return TransientProviderError(
                f"OpenAI returned a body that is not JSON ({type(exc).__name__})", provider=self.name
            )
        if isinstance(exc, openai.OpenAIError):
            # Missing credentials and other client-side configuration problems.
            return PermanentProviderError(f"OpenAI client error: {exc}", provider=self.name)
        log.error("unexpected error from the OpenAI client", exc_info=exc)
        return PermanentProviderError(f"OpenAI call failed: {exc!r}", provider=self.name)


def _messages(request: CompletionRequest) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for m in request.messages:
        if m.role == "user":
            messages.append({"role": "user", "content": m.content})
        else:
            messages.append({"role": "assistant", "content": m.content})
    return messages


def _names_client_error(exc: openai.APIError) -> bool:
    """Whether an in-stream error's ``code`` or ``type`` names a 4xx (other than 408 and 429)."""
    code = exc.code or ""
    if code.isdigit():
        status = int(code)
        return 400 <= status < 500 and status not in _TRANSIENT_STATUSES
    return code in _PERMANENT_CODES or (exc.type or "") == "invalid_request_error"


def _is_transport_error(exc: BaseException) -> bool:
    """An httpx (or httpx2) ``TransportError``, matched by name so we need no direct dependency."""
    return any(
        cls.__name__ == "TransportError" and cls.__module__.startswith(("httpx", "httpcore"))
        for cls in type(exc).__mro__
    )
