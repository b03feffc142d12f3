"""An LLM as a planner: prompt, one provider call with retries, parse.

The retry policy lives here and only here (providers have their own retries turned off): transient
errors are retried with exponential backoff and jitter, each attempt under its own timeout; a
permanent error goes straight up so the service can fail over. The parsed components are returned
raw: the service validates everything, whichever planner produced it.

Every answer is bounded, because a provider (or a proxy in front of it) can misbehave: in time (each
attempt by ``provider_timeout``; a stream by ``provider_timeout`` per piece and
``stream_total_timeout`` in all) and in length (``max_answer_chars``: an over-long answer is refused,
and a stream stops being read at that length, keeping the components it completed). The one-shot
parse of a whole answer runs in a worker thread: json-repair needs seconds of CPU for some malformed
texts of this length (deeply nested brackets), which must not stall the event loop, and so every
other client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from streamforge.components import Limits
from streamforge.config import Settings
from streamforge.data.source import DataSource
from streamforge.planner.base import RawComponent
from streamforge.planner.grounding import GroundingError, SQLGrounder, describe_schema
from streamforge.planner.parse import StreamingComponentParser, parse_components
from streamforge.planner.prompt import build_system_prompt, build_user_message
from streamforge.planner.schema import plan_schema
from streamforge.providers.base import (
    ChatMessage,
    CompletionRequest,
    PermanentProviderError,
    Provider,
    TransientProviderError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _each(items: list[RawComponent]) -> AsyncIterator[RawComponent]:
    for item in items:
        yield item


AnswerHook = Callable[[str, int], None]
"""Called with (provider name, characters of an answer read), e.g. to count tokens in metrics."""


class UnusableAnswer(PermanentProviderError):
    """The model answered, but nothing in the answer could be read as components."""


class AnswerTooLong(PermanentProviderError):
    """The answer passed ``max_answer_chars``: a runaway model or a broken server; asking again at
    temperature 0 would give the same."""


class LLMPlanner:
    """Plans with one provider; ``name`` and ``model_id`` are the provider's."""

    def __init__(
        self,
        provider: Provider,
        settings: Settings,
        limits: Limits,
        source: DataSource | None = None,
        on_answer: AnswerHook | None = None,
    ) -> None:
        self._on_answer = on_answer  # told the length of every answer read (for the metrics)
        self.provider = provider
        self.name = provider.name
        self.model_id = provider.model_id
        self._settings = settings
        self._limits = limits
        self._grounder = SQLGrounder(source, limits) if source is not None else None
        self._schema_text: str | None = None

    def _report(self, chars: int) -> None:
        if self._on_answer is not None:
            try:
                self._on_answer(self.name, chars)
            except Exception:
                log.exception("the answer hook failed")

    async def _prepare(self) -> None:
        """Describe the schema once (introspection touches the database, so off the event loop)."""
        if self._grounder is not None and self._schema_text is None:
            source = self._grounder.source  # ``source.schema`` itself introspects: read it in the thread
            self._schema_text = await asyncio.to_thread(lambda: describe_schema(source.schema))

    def request_for(self, message: str, context: dict[str, Any] | None) -> CompletionRequest:
        schema = None
        if self._settings.openai_structured:  # only OpenAI-compatible servers read it (local adds its own)
            previous = [
                c["id"] for c in (context or {}).get("previous") or [] if isinstance(c, dict) and "id" in c
            ]
            schema = plan_schema(self._limits, with_sql=self._grounder is not None, previous_ids=previous)
        return CompletionRequest(
            system=build_system_prompt(self._limits, self._schema_text),
            messages=(ChatMessage("user", build_user_message(message, context)),),
            max_tokens=self._settings.max_tokens,
            json_schema=schema,
        )

    async def _attempt(self, request: CompletionRequest) -> str:
        try:
            async with asyncio.timeout(self._settings.provider_timeout):
                return await self.provider.complete(request)
        except TimeoutError as exc:
            raise TransientProviderError(
                f"no answer within {self._settings.provider_timeout:g} s", provider=self.name
            ) from exc

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` with the retry policy: transient errors only, backoff with jitter."""
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
                return await call()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def complete(self, request: CompletionRequest) -> str:
        """Call the provider, retrying transient failures (3 retries by default)."""
        text = await self._retrying(lambda: self._attempt(request))
        self._report(len(text))
        if len(text) > self._settings.max_answer_chars:
            raise self._too_long(len(text))
        return text

    def _too_long(self, length: int) -> AnswerTooLong:
        return AnswerTooLong(
            f"the answer passed {self._settings.max_answer_chars} characters ({length} read)",
            provider=self.name,
        )

    async def plan(self, message: str, context: dict[str, Any] | None = None) -> list[RawComponent]:
        await self._prepare()
        request = self.request_for(message, context)
        text = await self.complete(request)
        components = await asyncio.to_thread(parse_components, text)
        if not components:
            raise UnusableAnswer(
                f"the answer had no readable components ({len(text)} characters)", provider=self.name
            )
        return [c async for c in self._grounded(_each(components), request)]

    async def _grounded(
        self, components: AsyncIterator[RawComponent], request: CompletionRequest
    ) -> AsyncIterator[RawComponent]:
        """Fill components from their SQL; the ones whose SQL failed get one repair call, together."""
        if self._grounder is None:
            async for component in components:
                yield component
            return
        failed: list[tuple[RawComponent, str]] = []
        async for component in components:
            try:
                yield await self._grounder.ground(component)
            except GroundingError as exc:
                log.warning("%s: component SQL failed (%s); will ask for a repair", self.name, exc)
                failed.append((component, exc.for_model))
        if not failed:
            return
        for component in await self._repair(request, failed):
            try:
                yield await self._grounder.ground(component)
            except GroundingError as exc:
                log.warning("%s: repaired component still failed (%s); dropped", self.name, exc)

    async def _repair(
        self, request: CompletionRequest, failed: list[tuple[RawComponent, str]]
    ) -> list[RawComponent]:
        problems = "\n".join(
            f"{i}. {json.dumps(c.get('data', {}).get('sql'))} failed: {why}"
            for i, (c, why) in enumerate(failed, 1)
        )
        repair = CompletionRequest(
            system=request.system,
            messages=(
                *request.messages,
                ChatMessage("assistant", "$$$" + json.dumps([c for c, _ in failed]) + "$$$"),
                ChatMessage(
                    "user",
                    "The SQL of these components could not be used:\n"
                    f"{problems}\n"
                    "Answer with corrected components only, in the same format. Use only the tables "
                    "and columns of the schema and a single read-only SELECT per component.",
                ),
            ),
            max_tokens=request.max_tokens,
            json_schema=request.json_schema,
        )
        try:
            return await asyncio.to_thread(parse_components, await self.complete(repair))
        except Exception as exc:
            log.warning("%s: the repair call failed (%s)", self.name, exc)
            return []

    async def plan_stream(
        self, message: str, context: dict[str, Any] | None = None
    ) -> AsyncIterator[RawComponent]:
        """Yield each component as soon as the growing answer holds it whole.

        Only opening the stream (up to its first piece of text) is retried: once text has arrived,
        a break is raised to the service, which keeps what was sent and asks the next planner for
        the rest. Each wait for a piece is bounded by ``provider_timeout``, the whole answer by
        ``stream_total_timeout`` and ``max_answer_chars``, so an answer that never ends still ends.
        """
        if not self._settings.llm_stream:
            for component in await self.plan(message, context):
                yield component
            return
        await self._prepare()
        request = self.request_for(message, context)
        async for component in self._grounded(self._streamed(request), request):
            yield component

    async def _streamed(self, request: CompletionRequest) -> AsyncIterator[RawComponent]:
        pieces, first = await self._retrying(lambda: self._open_stream(request))
        deadline = time.monotonic() + self._settings.stream_total_timeout
        limit = self._settings.max_answer_chars
        parser = StreamingComponentParser()
        found = length = 0
        try:
            chunk: str | None = first
            while chunk is not None:
                length += len(chunk)
                if length > limit:
                    raise self._too_long(length)
                for component in parser.feed(chunk):
                    found += 1
                    yield component
                chunk = await self._next_piece(pieces, deadline)
        finally:
            self._report(length)
            # Closing the provider's stream closes its HTTP response: nothing more is read or paid for.
            closer = getattr(pieces, "aclose", None)
            if closer is not None:
                await closer()
        # The whole text once more, off the event loop (see the module docstring): what the growing
        # array did not show, or everything when the answer was not an array we could follow.
        for component in await asyncio.to_thread(parser.close):
            found += 1
            yield component
        if not found:
            raise UnusableAnswer(
                f"the answer had no readable components ({len(parser.text)} characters)",
                provider=self.name,
            )

    async def _open_stream(self, request: CompletionRequest) -> tuple[AsyncIterator[str], str]:
        pieces = aiter(self.provider.stream(request))
        first = await self._next_piece(pieces, None)
        return pieces, first or ""

    async def _next_piece(self, pieces: AsyncIterator[str], deadline: float | None) -> str | None:
        """The next piece of text; None at the end. Waits ``provider_timeout`` at most, and never past
        ``deadline`` (the end of ``stream_total_timeout``)."""
        wait = self._settings.provider_timeout
        total = deadline is not None and deadline - time.monotonic() < wait
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(wait):
                return await anext(pieces)
        except StopAsyncIteration:
            return None
        except TimeoutError as exc:
            if total:
                raise TransientProviderError(
                    f"the answer did not end within {self._settings.stream_total_timeout:g} s",
                    provider=self.name,
                ) from exc
            raise TransientProviderError(
                f"no text for {self._settings.provider_timeout:g} s", provider=self.name
            ) from exc

    async def aclose(self) -> None:
        await self.provider.aclose()
