"""AWS Bedrock, through aioboto3's ``bedrock-runtime`` client and the Anthropic Messages body.

One client lives for the provider's lifetime: creating one loads the service model and resolves
credentials, which is far too slow to do per request. It is created on first use (under a lock, so
concurrent first calls make one) and closed by :meth:`BedrockProvider.aclose`.

botocore's own retries are off (``total_max_attempts=1``): tenacity in the planner is the one retry
policy, so "throttled twice, then success" is exactly three calls at the server (decisions.md).
Credentials come from the standard AWS chain (environment, profile, instance role); nothing here reads
them itself.

This module only translates: our :class:`CompletionRequest` to Bedrock's wire format, Bedrock's answer
to text, and botocore's errors to :class:`TransientProviderError` (worth retrying) or
:class:`PermanentProviderError` (not).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.eventstream import ParserError as EventStreamParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from streamforge.config import Settings
from streamforge.providers.base import (
    CompletionRequest,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

log = logging.getLogger(__name__)

__all__ = ["ANTHROPIC_VERSION", "BedrockProvider"]

ANTHROPIC_VERSION = "bedrock-2023-05-31"

# Error codes worth another attempt. Bedrock spells them in PascalCase on HTTP responses and in
# camelCase inside event streams, so they are compared case-insensitively.
_TRANSIENT_CODES = frozenset(
    code.lower()
    for code in (
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "InternalServerException",
        "InternalFailure",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "ModelStreamErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
    )
)
_PERMANENT_CODES = frozenset(
    code.lower()
    for code in (
        "AccessDeniedException",
        "ValidationException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ServiceQuotaExceededException",
        "ModelErrorException",
        "InvalidSignatureException",
        "ExpiredTokenException",
    )
)
# Concurrent requests share the one client; aiobotocore's default pool of 10 would queue them.
_MAX_POOL_CONNECTIONS = 50


class BedrockProvider:
    """Claude (or another Anthropic-format model) on AWS Bedrock."""

    name = "bedrock"

    def __init__(self, settings: Settings, session: aioboto3.Session | None = None) -> None:
        self.model_id: str = settings.model_id
        self._region = settings.aws_region
        self._endpoint_url = settings.bedrock_endpoint_url
        self._session = session if session is not None else aioboto3.Session()
        self._config = Config(
            retries={"total_max_attempts": 1},
            read_timeout=settings.provider_timeout,
            connect_timeout=min(settings.provider_timeout, 10.0),
            max_pool_connections=_MAX_POOL_CONNECTIONS,
        )
        self._client: Any = None
        self._client_cm: AbstractAsyncContextManager[Any] | None = None
        self._lock = asyncio.Lock()

    async def complete(self, request: CompletionRequest) -> str:
        """The whole answer's text: every text block of the response, concatenated."""
        client = await self._get_client()
        try:
            response = await client.invoke_model(
                modelId=self.model_id,
                body=json.dumps(self._body(request)),
                contentType="application/json",
                accept="application/json",
            )
            raw = await response["body"].read()
        except Exception as exc:
            raise self._map_error(exc) from exc
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            # A cut-off or garbled body is a transport accident more often than a contract change.
            raise TransientProviderError(
                f"Bedrock returned a body that is not JSON ({len(raw)} bytes)", provider=self.name
            ) from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("content"), list):
            raise PermanentProviderError(
                "Bedrock returned no content list; is the model an Anthropic one?", provider=self.name
            )
        if payload.get("stop_reason") == "max_tokens":
            log.warning("Bedrock answer hit max_tokens (%d); it is probably cut off", request.max_tokens)
        return "".join(
            block["text"]
            for block in payload["content"]
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        """The answer's text as Bedrock streams it: the ``text_delta`` of each content block delta."""
        client = await self._get_client()
        try:
            response = await client.invoke_model_with_response_stream(
                modelId=self.model_id,
                body=json.dumps(self._body(request)),
                contentType="application/json",
                accept="application/json",
            )
        except Exception as exc:
            raise self._map_error(exc) from exc
        events = response["body"]
        iterator = aiter(events)
        try:
            while True:
                try:
                    event = await anext(iterator)
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    raise self._map_error(exc) from exc
                text = _delta_text(event)
                if text:
                    yield text
        finally:
            # Stop reading the HTTP body if the consumer left early (client disconnect, cancellation).
            events.close()

    async def aclose(self) -> None:
        """Close the client (and its connection pool); a later call would open a new one."""
        async with self._lock:
            cm, self._client_cm, self._client = self._client_cm, None, None
            if cm is not None:
                await cm.__aexit__(None, None, None)

    # -- internals ---------------------------------------------------------------------------------

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                cm = self._session.client(
                    "bedrock-runtime",
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                )
                try:
                    self._client = await cm.__aenter__()
                except Exception as exc:
                    raise self._map_error(exc) from exc
                self._client_cm = cm
            return self._client

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "messages": [
                {"role": m.role, "content": [{"type": "text", "text": m.content}]} for m in request.messages
            ],
        }
        if request.system:
            body["system"] = request.system
        return body

    def _map_error(self, exc: BaseException) -> ProviderError:
        """botocore's error, as one of ours: transient when another attempt may succeed."""
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")) or str(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            text = f"Bedrock {code or 'error'} ({status}): {message}"
            lowered = code.lower()
            if lowered in _TRANSIENT_CODES:
                return TransientProviderError(text, provider=self.name, status=status)
            if lowered in _PERMANENT_CODES:
                return PermanentProviderError(text, provider=self.name, status=status)
            if isinstance(status, int) and (status >= 500 or status in (408, 429)):
                return TransientProviderError(text, provider=self.name, status=status)
            return PermanentProviderError(text, provider=self.name, status=status)
        if isinstance(exc, NoCredentialsError):
            return PermanentProviderError(f"no AWS credentials found: {exc}", provider=self.name)
        if isinstance(exc, HTTPClientError | BotoConnectionError):
            # Timeouts, refused or dropped connections, and a reply that is not HTTP at all (botocore
            # wraps the transport's own error in HTTPClientError): the network's fault, not ours.
            return TransientProviderError(f"Bedrock unreachable: {exc}", provider=self.name)
        if isinstance(exc, EventStreamParserError):
            # A garbled event stream (bad checksum or lengths): a transport accident, like a cut body.
            return TransientProviderError(f"Bedrock stream garbled: {exc}", provider=self.name)
        if isinstance(exc, TimeoutError | ConnectionError | OSError):
            return TransientProviderError(f"Bedrock connection failed: {exc!r}", provider=self.name)
        if type(exc).__module__.startswith("aiohttp"):
            # aiobotocore's transport: a dropped connection or a cut-off body (ServerDisconnectedError,
            # ClientPayloadError). Matched by module so we need not depend on aiohttp directly.
            return TransientProviderError(f"Bedrock connection failed: {exc!r}", provider=self.name)
        if isinstance(exc, BotoCoreError):
            # Other botocore failures are configuration or parsing problems; retrying repeats them.
            return PermanentProviderError(f"Bedrock client error: {exc}", provider=self.name)
        # Anything else is a bug on our side or in a library; retrying would only hide it.
        log.error("unexpected error from the Bedrock client", exc_info=exc)
        return PermanentProviderError(f"Bedrock call failed: {exc!r}", provider=self.name)


def _delta_text(event: object) -> str:
    """The text of one stream event, or ``""`` for events that carry none (start, stop, usage)."""
    if not isinstance(event, dict):
        return ""
    chunk = event.get("chunk")
    if not isinstance(chunk, dict) or "bytes" not in chunk:
        return ""
    try:
        data = json.loads(chunk["bytes"])
    except ValueError:
        log.warning("skipped a Bedrock stream chunk that is not JSON")
        return ""
    if not isinstance(data, dict) or data.get("type") != "content_block_delta":
        return ""
    delta = data.get("delta")
    if isinstance(delta, dict) and delta.get("type", "text_delta") == "text_delta":
        text = delta.get("text")
        return text if isinstance(text, str) else ""
    return ""
