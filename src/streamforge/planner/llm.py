"""An LLM as a planner: prompt, one provider call with retries, parse.

The retry policy lives here and only here (providers have their own retries turned off): transient
errors are retried with exponential backoff and jitter, each attempt under its own timeout; a
permanent error goes straight up so the service can fail over. The parsed components are returned
raw: the service validates everything, whichever planner produced it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from streamforge.components import Limits
from streamforge.config import Settings
from streamforge.planner.base import RawComponent
from streamforge.planner.parse import parse_components
from streamforge.planner.prompt import build_system_prompt, build_user_message
from streamforge.providers.base import (
    ChatMessage,
    CompletionRequest,
    PermanentProviderError,
    Provider,
    TransientProviderError,
)

log = logging.getLogger(__name__)


class UnusableAnswer(PermanentProviderError):
    """The model answered, but nothing in the answer could be read as components."""


class LLMPlanner:
    """Plans with one provider; ``name`` and ``model_id`` are the provider's."""

    def __init__(
        self, provider: Provider, settings: Settings, limits: Limits, schema_text: str | None = None
    ) -> None:
        self.provider = provider
        self.name = provider.name
        self.model_id = provider.model_id
        self._settings = settings
        self._limits = limits
        self._schema_text = schema_text

    def request_for(self, message: str, context: dict[str, Any] | None) -> CompletionRequest:
        return CompletionRequest(
            system=build_system_prompt(self._limits, self._schema_text),
            messages=(ChatMessage("user", build_user_message(message, context)),),
            max_tokens=self._settings.max_tokens,
        )

    async def _attempt(self, request: CompletionRequest) -> str:
        try:
            async with asyncio.timeout(self._settings.provider_timeout):
                return await self.provider.complete(request)
        except TimeoutError as exc:
            raise TransientProviderError(
                f"no answer within {self._settings.provider_timeout:g} s", provider=self.name
            ) from exc

    async def complete(self, request: CompletionRequest) -> str:
        """Call the provider, retrying transient failures (3 retries by default)."""
        settings = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.provider_retries + 1),
            wait=wait_random_exponential(
                multiplier=settings.retry_backoff_base, max=settings.retry_backoff_max
            ),
            retry=retry_if_exception_type(TransientProviderError),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "provider %s attempt %d failed (%s); retrying",
                self.name,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(request)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def plan(self, message: str, context: dict[str, Any] | None = None) -> list[RawComponent]:
        text = await self.complete(self.request_for(message, context))
        components = parse_components(text)
        if not components:
            raise UnusableAnswer(
                f"the answer had no readable components ({len(text)} characters)", provider=self.name
            )
        return components

    async def aclose(self) -> None:
        await self.provider.aclose()
