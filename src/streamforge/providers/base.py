"""What every LLM provider is: a translator between our request and one vendor's wire format.

A provider does no caching, retrying or validation (the planner service does those, once, for every
provider). It raises :class:`TransientProviderError` for what is worth retrying (throttling, 5xx,
timeouts, dropped connections) and :class:`PermanentProviderError` for what is not (bad credentials,
a rejected request, an unknown model), so the retry policy never has to know a vendor's error codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable


class ProviderError(Exception):
    """A provider call failed; ``transient`` says whether trying again may help."""

    transient: bool = False

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class TransientProviderError(ProviderError):
    """Throttling, a 5xx, a timeout or a dropped connection: worth another attempt."""

    transient = True


class PermanentProviderError(ProviderError):
    """Bad credentials, a rejected request, an unknown model: the same call will fail again."""

    transient = False


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    """One planning call: a system prompt, the conversation, and how long the answer may be."""

    system: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int = 4096
    temperature: float = 0.0
    json_schema: dict[str, object] | None = None  # for providers with structured output


@runtime_checkable
class Provider(Protocol):
    """One vendor. ``complete`` returns the whole text; ``stream`` yields it in pieces as it comes."""

    name: str
    model_id: str

    async def complete(self, request: CompletionRequest) -> str: ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
