"""Issue 5 behaviour through the real aioboto3 client and two fake Bedrock servers: token-by-token
streaming, failover on errors and timeouts, the circuit breaker, and a stream that breaks half-way."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from streamforge.components import Limits
from streamforge.config import Settings
from streamforge.planner.breaker import CircuitBreaker
from streamforge.planner.cache import MemoryCache
from streamforge.planner.llm import LLMPlanner
from streamforge.planner.service import LayoutResult, PlannerService
from streamforge.providers.bedrock import BedrockProvider
from tests.fakes.bedrock import FakeBedrock, error, stream, text


def component(i: int) -> dict[str, Any]:
    return {
        "type": "ChartComponent",
        "data": {
            "title": f"Chart {i}",
            "chart_type": "bar",
            "x_axis": ["a", "b", "c"],
            "series": [{"label": "s", "values": [i, i + 1, i + 2]}],
        },
    }


PLAN = "$$$" + json.dumps([component(1), component(2), component(3)]) + "$$$"


@pytest.fixture
def second_bedrock(aws_env: None) -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        yield fake


def settings_for(fake: FakeBedrock, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "provider": "bedrock",
        "bedrock_endpoint_url": fake.url,
        "retry_backoff_base": 0.01,
        "retry_backoff_max": 0.02,
        "provider_timeout": 5.0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


def service(
    *fakes: FakeBedrock, threshold: int = 3, cooldown: float = 30.0, **overrides: Any
) -> PlannerService:
    limits = Limits()
    planners = [
        LLMPlanner(BedrockProvider(settings_for(f, **overrides)), settings_for(f, **overrides), limits)
        for f in fakes
    ]
    return PlannerService(
        planners,
        MemoryCache(ttl=0, max_entries=10),
        limits,  # type: ignore[arg-type]
        breaker_threshold=threshold,
        breaker_cooldown=cooldown,
    )


async def timed(svc: PlannerService, message: str) -> tuple[list[tuple[float, dict[str, Any]]], LayoutResult]:
    started = time.perf_counter()
    frames: list[tuple[float, dict[str, Any]]] = []
    async for event in svc.stream_layout(message):
        if isinstance(event, LayoutResult):
            return frames, event
        frames.append((time.perf_counter() - started, event))
    raise AssertionError("no LayoutResult")


async def test_components_stream_out_early_and_in_order(fake_bedrock: FakeBedrock) -> None:
    chunks = [PLAN[i : i + 16] for i in range(0, len(PLAN), 16)]
    fake_bedrock.push(stream(chunks, chunk_delay=0.02))
    svc = service(fake_bedrock)
    try:
        frames, result = await timed(svc, "three charts")
    finally:
        await svc.aclose()
    assert [f["data"]["title"] for _, f in frames] == ["Chart 1", "Chart 2", "Chart 3"]
    assert result.components == [f for _, f in frames]
    assert fake_bedrock.requests[0].operation == "stream"
    # The first component left while most of the answer was still being written.
    assert frames[0][0] < frames[-1][0] - 10 * 0.02


async def test_stream_broken_half_way_keeps_what_it_sent_and_fails_over(
    fake_bedrock: FakeBedrock, second_bedrock: FakeBedrock
) -> None:
    second = PLAN.index('{"type"', 10)  # where the second component starts
    fake_bedrock.push(stream([PLAN[:second], PLAN[second : second + 30]], stream_error="throttlingException"))
    second_bedrock.push(text("$$$" + json.dumps([component(7), component(8)]) + "$$$"))
    svc = service(fake_bedrock, second_bedrock)
    try:
        frames, result = await timed(svc, "three charts")
    finally:
        await svc.aclose()
    titles = [f["data"]["title"] for _, f in frames]
    assert titles == ["Chart 1", "Chart 7", "Chart 8"]
    assert fake_bedrock.calls == 1  # text had arrived: no retry of a half-sent answer
    assert result.provider == "bedrock+bedrock" and result.errors
    assert not result.fallback


async def test_failover_on_permanent_error(fake_bedrock: FakeBedrock, second_bedrock: FakeBedrock) -> None:
    fake_bedrock.push(error(403, "AccessDeniedException"))
    second_bedrock.push(text(PLAN))
    svc = service(fake_bedrock, second_bedrock, llm_stream=False)
    try:
        result = await svc.generate_layout("charts")
    finally:
        await svc.aclose()
    assert (fake_bedrock.calls, second_bedrock.calls) == (1, 1)
    assert len(result.components) == 3 and "refused" in result.errors[0]


async def test_failover_on_timeout(fake_bedrock: FakeBedrock, second_bedrock: FakeBedrock) -> None:
    fake_bedrock.default = text(PLAN, delay=3.0)
    second_bedrock.push(text(PLAN))
    svc = service(fake_bedrock, second_bedrock, llm_stream=False, provider_timeout=0.3, provider_retries=1)
    try:
        result = await svc.generate_layout("charts")
    finally:
        await svc.aclose()
    # One attempt and one retry, each cut at the timeout. On a loaded machine the first attempt can
    # time out while the client is still being created, before its request reaches the fake.
    assert 1 <= fake_bedrock.calls <= 2
    assert second_bedrock.calls == 1 and len(result.components) == 3
    assert "busy or unreachable" in result.errors[0]


async def test_total_failure_gives_fallback_components(fake_bedrock: FakeBedrock) -> None:
    fake_bedrock.default = error(500, "InternalServerException")
    svc = service(fake_bedrock, provider_retries=1)
    try:
        result = await svc.generate_layout("show me a table of sales")
    finally:
        await svc.aclose()
    assert result.fallback and result.provider == "fallback"
    assert result.components[0]["data"]["title"] == "The planner is unavailable"
    assert "bedrock" in result.components[0]["data"]["description"]


async def test_circuit_breaker_opens_then_half_opens(
    fake_bedrock: FakeBedrock, second_bedrock: FakeBedrock
) -> None:
    fake_bedrock.default = error(403, "AccessDeniedException")
    second_bedrock.default = text(PLAN)
    svc = service(fake_bedrock, second_bedrock, threshold=2, cooldown=0.4, llm_stream=False)
    try:
        for _ in range(2):
            await svc.generate_layout("charts")
        assert svc.breakers[0].state == "open"
        result = await svc.generate_layout("charts")
        assert fake_bedrock.calls == 2  # skipped while open
        assert "paused" in result.errors[0]
        await asyncio.sleep(0.45)
        assert svc.breakers[0].state == "half-open"
        fake_bedrock.default = text(PLAN)
        await svc.generate_layout("charts")
        assert fake_bedrock.calls == 3 and svc.breakers[0].state == "closed"
    finally:
        await svc.aclose()


def test_breaker_states_with_a_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()
