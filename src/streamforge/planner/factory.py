"""Build the planner service a :class:`Settings` describes: the chain, its data source, its cache."""

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

KNOWN_PROVIDERS = ("offline", "bedrock", "anthropic", "openai")


class ConfigError(ValueError):
    """The settings name something that does not exist; said at start-up, not at the first request."""


def _planner(name: str, settings: Settings, limits: Limits, source: DataSource | None) -> Planner:
    if name == "offline":
        from streamforge.offline.planner import OfflinePlanner

        assert source is not None
        return OfflinePlanner(source, limits)
    from streamforge.planner.llm import LLMPlanner

    provider: Provider
    if name == "bedrock":
        from streamforge.providers.bedrock import BedrockProvider

        provider = BedrockProvider(settings)
    elif name == "anthropic":
        from streamforge.providers.anthropic import AnthropicProvider

        provider = AnthropicProvider(settings)
    elif name == "openai":
        from streamforge.providers.openai_compat import OpenAICompatProvider

        provider = OpenAICompatProvider(settings)
    else:
        raise ConfigError(f"unknown provider {name!r}; known providers: {', '.join(KNOWN_PROVIDERS)}")
    return LLMPlanner(provider, settings, limits, source if settings.llm_data else None)


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


async def build_planner_service(settings: Settings) -> PlannerService:
    """The chain named by the settings; the data source is opened off the event loop."""
    chain = chain_of(settings)
    limits = Limits.from_settings(settings)
    needs_source = "offline" in chain or settings.llm_data
    source = await asyncio.to_thread(_open_source, settings) if needs_source else None
    planners = [_planner(name, settings, limits, source) for name in chain]
    cache = build_cache(settings.cache_url, ttl=settings.cache_ttl, max_entries=settings.cache_max_entries)
    return PlannerService(
        planners,
        cache,
        limits,
        source_identity=source.identity if source else "",
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown=settings.breaker_cooldown,
    )
