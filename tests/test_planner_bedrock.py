"""The planner service with the Bedrock provider, end to end against the fake Bedrock Runtime.

Everything real except the remote service: settings -> factory -> PlannerService -> LLMPlanner ->
BedrockProvider -> aioboto3 -> HTTP -> the fake. The fake answers with text the test scripts, so "a
trend request yields a chart" means a scripted chart answer comes through parsed and validated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uuid_utils

from streamforge.config import Settings
from streamforge.planner.factory import build_planner_service
from streamforge.planner.service import LayoutResult, PlannerService
from tests.fakes.bedrock import FakeBedrock, aws_env, error, fake_bedrock, stream, text

__all__ = ["aws_env", "fake_bedrock"]  # fixtures, imported for pytest

MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"

CARD = {"type": "SimpleComponent", "data": {"title": "Total revenue", "value": 128450, "unit": "USD"}}
LINE = {
    "type": "ChartComponent",
    "data": {
        "title": "Monthly revenue",
        "chart_type": "line",
        "x_axis": ["Jan", "Feb", "Mar", "Apr"],
        "series": [{"label": "Revenue", "values": [12000, 13500, 12800, 15100]}],
    },
}
TABLE = {
    "type": "TableA",
    "data": {
        "title": "Top customers",
        "columns": ["Customer", "Orders", "Revenue"],
        "rows": [["Acme", 42, 18200.5], ["Globex", 37, 15110.0], ["Initech", 12, 4900.0]],
    },
}
BAR = {
    "type": "ChartComponent",
    "data": {
        "title": "Revenue by region",
        "chart_type": "bar",
        "x_axis": ["North", "South", "West"],
        "series": [{"label": "2024", "values": [410, 380, 295]}],
    },
}
PIE = {
    "type": "ChartComponent",
    "data": {
        "title": "Sales mix",
        "chart_type": "pie",
        "x_axis": ["Hardware", "Software", "Services"],
        "series": [{"label": "Share", "values": [45, 35, 20]}],
    },
}
SCATTER = {
    "type": "ChartComponent",
    "data": {
        "title": "Price vs units",
        "chart_type": "scatter",
        "series": [{"label": "Products", "values": [[9.5, 320], [14.0, 210], [22.0, 95]]}],
    },
}


def answer(*components: dict[str, Any]) -> str:
    """An answer in the format the prompt asks for, with a little prose around it."""
    return f"Here is your dashboard:\n$$$\n{json.dumps(list(components))}\n$$$\n"


def _settings(fake: FakeBedrock, data_dir: Path, **overrides: Any) -> Settings:
    """Bedrock alone: no data source (sample-data answers) and no offline planner behind it, so a
    Bedrock failure shows as the fallback cards."""
    values: dict[str, Any] = {
        "provider": "bedrock",
        "bedrock_endpoint_url": fake.url,
        "offline_last_resort": False,
        "llm_data": False,
        "data_dir": data_dir,
        "retry_backoff_base": 0.001,
        "retry_backoff_max": 0.01,
        "provider_timeout": 5.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(params=["stream", "invoke"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both Bedrock calls the planner may make: token streaming (the default) and one-shot."""
    return str(request.param)


@pytest.fixture
async def service(fake_bedrock: FakeBedrock, mode: str, data_dir: Path) -> AsyncIterator[PlannerService]:
    planner = await build_planner_service(_settings(fake_bedrock, data_dir, llm_stream=mode == "stream"))
    yield planner
    await planner.aclose()


def _types(result: LayoutResult) -> list[tuple[str, str | None]]:
    return [(c["type"], c["data"].get("chart_type")) for c in result.components]


def _is_uuid7(value: str) -> bool:
    return uuid_utils.UUID(value).version == 7


async def test_three_component_plan(fake_bedrock: FakeBedrock, service: PlannerService, mode: str) -> None:
    fake_bedrock.push(text(answer(CARD, LINE, TABLE), chunk_size=16))
    result = await service.generate_layout("dashboard of revenue: total, trend and top customers")
    assert _types(result) == [("SimpleComponent", None), ("ChartComponent", "line"), ("TableA", None)]
    assert result.provider == "bedrock"
    assert result.model_id == MODEL
    assert not result.from_cache and not result.fallback
    assert result.processing_time_ms > 0
    for component in result.components:
        assert _is_uuid7(component["id"])
        assert component["data"]["sample"] is True and component["data"]["source"] is None
    [seen] = fake_bedrock.requests
    assert seen.operation == mode
    assert seen.model_id == MODEL
    assert "Component types" in seen.body["system"]
    user_text = seen.body["messages"][0]["content"][0]["text"]
    assert (
        "<user_request>\ndashboard of revenue: total, trend and top customers\n</user_request>" in user_text
    )


async def test_trend_request_yields_a_line_chart(fake_bedrock: FakeBedrock, service: PlannerService) -> None:
    fake_bedrock.push(text(answer(LINE)))
    result = await service.generate_layout("show the revenue trend over the last months")
    assert _types(result) == [("ChartComponent", "line")]
    data = result.components[0]["data"]
    assert data["x_axis"] == ["Jan", "Feb", "Mar", "Apr"]
    assert data["series"][0]["values"] == [12000, 13500, 12800, 15100]


async def test_list_request_yields_a_table(fake_bedrock: FakeBedrock, service: PlannerService) -> None:
    fake_bedrock.push(text(answer(TABLE)))
    result = await service.generate_layout("list our top customers")
    assert _types(result) == [("TableA", None)]
    assert result.components[0]["data"]["rows"][0] == ["Acme", 42, 18200.5]


async def test_mixed_multi_component_answer(fake_bedrock: FakeBedrock, service: PlannerService) -> None:
    fake_bedrock.push(text(answer(CARD, BAR, PIE, SCATTER, TABLE), chunk_size=9))
    result = await service.generate_layout("a full sales dashboard")
    assert _types(result) == [
        ("SimpleComponent", None),
        ("ChartComponent", "bar"),
        ("ChartComponent", "pie"),
        ("ChartComponent", "scatter"),
        ("TableA", None),
    ]
    assert result.components[3]["data"]["series"][0]["values"][0] == [9.5, 320]


async def _frames(service: PlannerService, message: str) -> tuple[list[dict[str, Any]], LayoutResult]:
    """The component frames ``stream_layout`` sends (what ``/chat`` puts on the wire), and its summary."""
    frames: list[dict[str, Any]] = []
    async for event in service.stream_layout(message):
        if isinstance(event, LayoutResult):
            return frames, event
        frames.append(event)
    raise AssertionError("stream_layout ended without a LayoutResult")


async def test_cache_hit_has_fresh_ids_and_no_new_call(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    fake_bedrock.push(text(answer(CARD, LINE)))
    first = await service.generate_layout("revenue dashboard")
    frames, second = await _frames(service, "  Revenue   DASHBOARD ")  # normalised to the same key
    assert fake_bedrock.calls == 1
    assert not first.from_cache and second.from_cache
    assert second.processing_time_ms >= 0  # measured for hits too; no timing assertion
    assert {c["id"] for c in first.components}.isdisjoint(c["id"] for c in frames)
    assert all(_is_uuid7(c["id"]) for c in frames)
    strip = [{k: v for k, v in c["data"].items() if k != "timestamp"} for c in first.components]
    assert [{k: v for k, v in c["data"].items() if k != "timestamp"} for c in frames] == strip
    assert second.provider == "bedrock" and second.model_id == MODEL


async def test_generate_layout_of_a_cache_hit_has_fresh_ids(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    fake_bedrock.push(text(answer(CARD, LINE)))
    first = await service.generate_layout("revenue dashboard")
    second = await service.generate_layout("revenue dashboard")
    assert second.from_cache
    assert {c["id"] for c in first.components}.isdisjoint(c["id"] for c in second.components)


async def test_clear_cache_forces_a_new_call(fake_bedrock: FakeBedrock, service: PlannerService) -> None:
    fake_bedrock.push(text(answer(CARD)), text(answer(TABLE)))
    await service.generate_layout("revenue dashboard")
    await service.clear_cache()
    result = await service.generate_layout("revenue dashboard")
    assert not result.from_cache
    assert fake_bedrock.calls == 2
    assert _types(result) == [("TableA", None)]


@pytest.mark.parametrize(
    "wrapped",
    [
        "```json\n" + json.dumps([CARD, LINE], indent=2) + "\n```",
        "Sure! Here's the plan.\n```\n" + json.dumps({"components": [CARD, LINE]}) + "\n```\nAnything else?",
        # Damaged: trailing commas, a missing comma between objects, single quotes.
        "$$$[" + json.dumps(CARD)[:-1] + ",}," + json.dumps(LINE) + ",]$$$",
        "$$$[" + json.dumps(CARD) + " " + json.dumps(LINE) + "]$$$",
        "[" + json.dumps(CARD).replace('"', "'") + ", " + json.dumps(LINE) + "]",
    ],
    ids=["markdown-fence", "fence-components-root", "trailing-commas", "missing-comma", "single-quotes"],
)
async def test_wrapped_and_damaged_json_is_recovered(
    fake_bedrock: FakeBedrock, service: PlannerService, wrapped: str
) -> None:
    fake_bedrock.push(text(wrapped, chunk_size=11))
    result = await service.generate_layout("revenue dashboard")
    assert _types(result) == [("SimpleComponent", None), ("ChartComponent", "line")]
    assert not result.fallback


async def test_truncated_answer_keeps_the_complete_components(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    whole = answer(CARD, LINE, TABLE)
    cut = whole[: whole.index('"TableA"') + 15]
    fake_bedrock.push(text(cut, stop_reason="max_tokens"))
    result = await service.generate_layout("revenue dashboard")
    assert _types(result)[:2] == [("SimpleComponent", None), ("ChartComponent", "line")]


async def test_invalid_components_are_filtered(fake_bedrock: FakeBedrock, service: PlannerService) -> None:
    bad_pie = {**PIE, "data": {**PIE["data"], "series": [{"label": "Share", "values": [50, -10, 60]}]}}
    ragged = {"type": "TableA", "data": {"columns": ["a", "b"], "rows": [[1, 2], [3]]}}
    unknown = {"type": "Heatmap", "data": {"title": "?"}}
    no_value = {"type": "SimpleComponent", "data": {"title": "Missing value"}}
    mismatched = {
        **BAR,
        "data": {**BAR["data"], "series": [{"label": "x", "values": [1, 2]}]},  # 3 labels, 2 values
    }
    raw = [bad_pie, CARD, ragged, unknown, "not an object", no_value, mismatched, TABLE]
    fake_bedrock.push(text(f"$$${json.dumps(raw)}$$$"))
    result = await service.generate_layout("revenue dashboard")
    assert _types(result) == [("SimpleComponent", None), ("TableA", None)]
    assert not result.fallback


async def test_answer_with_no_valid_component_falls_back(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    fake_bedrock.default = text("I'm sorry, I can't draw that.")
    result = await service.generate_layout("revenue dashboard")
    assert result.fallback
    assert result.components and result.components[0]["type"] == "SimpleComponent"


async def test_throttled_twice_then_success_is_three_calls(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    fake_bedrock.push(
        error(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        error(429, "ThrottlingException"),
        text(answer(CARD, LINE)),
    )
    result = await service.generate_layout("revenue dashboard")
    assert fake_bedrock.calls == 3
    assert not result.fallback
    assert _types(result) == [("SimpleComponent", None), ("ChartComponent", "line")]


async def test_permanent_error_is_not_retried(fake_bedrock: FakeBedrock, service: PlannerService) -> None:
    fake_bedrock.push(error(403, "AccessDeniedException", "You don't have access to the model."))
    fake_bedrock.default = text(answer(CARD))  # would succeed, if it were (wrongly) retried
    result = await service.generate_layout("revenue dashboard")
    assert fake_bedrock.calls == 1
    assert result.fallback
    assert result.provider == "fallback"


async def test_total_failure_gives_fallback_components_and_is_not_cached(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    fake_bedrock.default = error(503, "ServiceUnavailableException", "Service unavailable")
    result = await service.generate_layout("revenue dashboard")
    assert fake_bedrock.calls == 4  # the first attempt and three retries
    assert result.fallback and result.provider == "fallback"
    assert result.components
    assert all(c["type"] == "SimpleComponent" and _is_uuid7(c["id"]) for c in result.components)
    assert result.errors and "bedrock" in result.errors[0]
    # A fallback is not cached: the next request asks Bedrock again.
    fake_bedrock.default = text(answer(CARD))
    again = await service.generate_layout("revenue dashboard")
    assert not again.fallback and not again.from_cache
    assert fake_bedrock.calls == 5


async def test_twenty_concurrent_identical_requests_make_one_call(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    fake_bedrock.push(text(answer(CARD, LINE, TABLE), delay=0.3))
    results = await asyncio.wait_for(
        asyncio.gather(*(service.generate_layout("revenue dashboard") for _ in range(20))), timeout=15
    )
    assert fake_bedrock.calls == 1
    assert all(len(r.components) == 3 and not r.fallback for r in results)
    assert all(r.components[0]["data"]["title"] == "Total revenue" for r in results)
    first_ids = [r.components[0]["id"] for r in results]
    assert len(set(first_ids)) == 20  # every dashboard gets its own ids


async def test_concurrent_identical_requests_get_their_own_ids(
    fake_bedrock: FakeBedrock, service: PlannerService
) -> None:
    fake_bedrock.push(text(answer(CARD, LINE, TABLE), delay=0.2))
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(_frames(service, "revenue dashboard") for _ in range(5))), timeout=15
    )
    assert fake_bedrock.calls == 1
    first_ids = [frames[0]["id"] for frames, _ in outcomes]
    assert len(set(first_ids)) == 5  # every dashboard on the wire gets its own ids


async def test_streamed_components_arrive_one_by_one(fake_bedrock: FakeBedrock, data_dir: Path) -> None:
    service = await build_planner_service(_settings(fake_bedrock, data_dir, llm_stream=True))
    body = answer(CARD, LINE, TABLE)
    # Split so the card is complete well before the table has been written.
    split = body.index('"TableA"')
    fake_bedrock.push(stream([body[:split], body[split:]], chunk_delay=0.2))
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[str, float]] = []
    try:
        started = loop.time()
        async for event in service.stream_layout("revenue dashboard"):
            if isinstance(event, dict):
                arrivals.append((event["type"], loop.time() - started))
    finally:
        await service.aclose()
    assert [t for t, _ in arrivals] == ["SimpleComponent", "ChartComponent", "TableA"]
    assert arrivals[0][1] < arrivals[2][1]  # the card did not wait for the table
