"""Build the planner service a :class:`Settings` describes: the chain, its data source, its cache.

An LLM provider plans in one of two modes (``STREAMFORGE_LLM_MODE``): ``generate`` (the model writes
the components and their SQL, :class:`~streamforge.planner.llm.LLMPlanner`) or ``choose`` (the
offline planner proposes grounded candidates and the model picks among them,
:class:`~streamforge.planner.choose.ChoosePlanner`). Unset, ``local`` chooses and the hosted
providers generate: a model small enough to run anywhere writes poor SQL but can pick. Choose mode
needs a data source, so it opens one even with ``llm_data`` off; the planners of one chain share a
single offline planner (one vocabulary built).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from streamforge.components import Limits
from streamforge.config import Settings
from streamforge.planner.base import Planner
from streamforge.planner.cache import build_cache
from streamforge.planner.service import PlannerService
from streamforge.providers.base import Provider

if TYPE_CHECKING:
    from streamforge.data.source import DataSource
    from streamforge.offline.planner import OfflinePlanner
    from streamforge.planner.llm import AnswerHook

KNOWN_PROVIDERS = ("offline", "bedrock", "anthropic", "openai", "local")
LLM_MODES = ("generate", "choose")


class ConfigError(ValueError):
    """The settings name something that does not exist; said at start-up, not at the first request."""


def llm_mode(name: str, settings: Settings) -> str:
    """How the LLM provider ``name`` plans: the setting, else ``choose`` for local, else ``generate``."""
    if settings.llm_mode is not None:
        return settings.llm_mode
    return "choose" if name == "local" else "generate"


def _provider(name: str, settings: Settings, limits: Limits) -> Provider:
    if name == "bedrock":
        from streamforge.providers.bedrock import BedrockProvider

        return BedrockProvider(settings)
    if name == "anthropic":
        from streamforge.providers.anthropic import AnthropicProvider

        return AnthropicProvider(settings)
    if name == "openai":
        from streamforge.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(settings)
    if name == "local":
        from streamforge.providers.local import LocalProvider

        return LocalProvider(settings, limits)
    raise ConfigError(f"unknown provider {name!r}; known providers: {', '.join(KNOWN_PROVIDERS)}")


class _Planners:
    """Builds the chain's planners; the offline planner is made once and shared (choose mode uses it)."""

    def __init__(
        self, settings: Settings, limits: Limits, source: DataSource | None, on_answer: AnswerHook | None
    ) -> None:
        self.on_answer = on_answer
        self.settings = settings
        self.limits = limits
        self.source = source
        self._offline: OfflinePlanner | None = None

    def offline(self) -> OfflinePlanner:
        from streamforge.offline.planner import OfflinePlanner

        if self._offline is None:
            assert self.source is not None
            self._offline = OfflinePlanner(self.source, self.limits)
        return self._offline

    def build(self, name: str) -> Planner:
        if name == "offline":
            return self.offline()
        provider = _provider(name, self.settings, self.limits)
        if llm_mode(name, self.settings) == "choose":
            from streamforge.planner.choose import ChoosePlanner

            return ChoosePlanner(provider, self.settings, self.limits, self.offline(), self.on_answer)
        from streamforge.planner.llm import LLMPlanner

        source = self.source if self.settings.llm_data else None
        return LLMPlanner(provider, self.settings, self.limits, source, self.on_answer)


def _open_source(settings: Settings) -> DataSource:
    from streamforge.data.source import DataSource

    return DataSource.from_settings(settings)


def chain_of(settings: Settings) -> list[str]:
    """The provider names to try, in order; the offline planner is the last resort unless disabled."""
    chain = list(dict.fromkeys(settings.provider_chain()))
    for name in chain:
        if name not in KNOWN_PROVIDERS:
            raise ConfigError(f"unknown provider {name!r}; known providers: {', '.join(KNOWN_PROVIDERS)}")
    if settings.offline_last_resort and "offline" not in chain:
        chain.append("offline")
    return chain


async def build_planner_service(settings: Settings, on_answer: AnswerHook | None = None) -> PlannerService:
    """The chain named by the settings; the data source is opened off the event loop.

    ``on_answer`` hears the length of every LLM answer read (the app counts it in its metrics).
    """
    chain = chain_of(settings)
    limits = Limits.from_settings(settings)
    choosing = any(name != "offline" and llm_mode(name, settings) == "choose" for name in chain)
    needs_source = "offline" in chain or settings.llm_data or choosing
    source = await asyncio.to_thread(_open_source, settings) if needs_source else None
    build = _Planners(settings, limits, source, on_answer)
    planners = [build.build(name) for name in chain]
    cache = build_cache(settings.cache_url, ttl=settings.cache_ttl, max_entries=settings.cache_max_entries)
    service = PlannerService(
        planners,
        cache,
        limits,
        source_identity=source.identity if source else "",
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown=settings.breaker_cooldown,
    )
    if source is not None:
        # The router asks whether a message names the data ("revenue by region as a pie chart"):
        # the offline planner's lexicon knows, built now, off the loop, so routing never waits on it.
        offline = build.offline()
        await offline.prepare()
        service.names_data = offline.names_data
    return service
