"""The legacy pattern mode: detection, progressive updates, the help card."""

from __future__ import annotations

from typing import Any

import pytest

from streamforge import patterns
from streamforge.components import Limits, validate_component


@pytest.mark.parametrize(
    "message, kinds",
    [
        ("show me sales table", [("table", "line")]),
        ("show me chart", [("chart", "line")]),
        ("line chart", [("chart", "line")]),
        ("bar chart of orders by month", [("chart", "bar")]),
        ("pie chart of users", [("chart", "pie")]),
        ("scatter plot of traffic", [("chart", "scatter")]),
        ("area chart", [("chart", "area")]),
        ("list all users", []),
        ("show me sales trends", []),
        ("a bar of chocolate", []),
        ("revenue kpi card", [("card", "line")]),
        ("metric for users", [("card", "line")]),
        ("a table and a bar chart and a kpi", [("table", "line"), ("chart", "bar"), ("card", "line")]),
        ("revenue by region", []),
        ("hello", []),
    ],
)
def test_detect(message: str, kinds: list[tuple[str, str]]) -> None:
    assert [(a.kind, a.chart_type) for a in patterns.detect(message)] == kinds


async def collect(message: str, limits: Limits | None = None) -> list[dict[str, Any]]:
    return [f async for f in patterns.stream(message, limits or Limits(), 0.0)]


async def test_progressive_table_keeps_its_id_and_ends_complete() -> None:
    frames = await collect("show me sales table")
    assert len(frames) > 2
    assert {f["id"] for f in frames} == {frames[0]["id"]}
    assert frames[0]["data"]["rows"] == [] and frames[0]["data"]["columns"]
    counts = [len(f["data"]["rows"]) for f in frames]
    assert counts == sorted(counts) and counts[-1] == 10
    assert all(f.get("partial") for f in frames[:-1]) and "partial" not in frames[-1]
    for frame in frames:
        assert validate_component(frame) is not None
        assert frame["data"]["sample"] is True and frame["data"]["source"] is None


@pytest.mark.parametrize("chart_type", ["line", "bar", "area", "pie", "scatter"])
async def test_progressive_chart_of_each_type(chart_type: str) -> None:
    frames = await collect(f"{chart_type} chart of sales")
    assert {f["id"] for f in frames} == {frames[0]["id"]}
    last = frames[-1]["data"]
    assert last["chart_type"] == chart_type
    assert all(len(s["values"]) > 0 for s in last["series"])
    assert frames[0]["data"]["series"][0]["values"] == []


async def test_several_components_at_once_and_limits_respected() -> None:
    frames = await collect("table, line chart, bar chart and kpi card", Limits(max_components=3, max_rows=4))
    ids = list(dict.fromkeys(f["id"] for f in frames))
    assert len(ids) == 3
    assert all(len(f["data"].get("rows", [])) <= 4 for f in frames)


async def test_unmatched_request_gets_help_card() -> None:
    frames = await collect("hello there")
    assert len(frames) == 1 and frames[0]["type"] == "SimpleComponent"
    assert "What you can ask" in frames[0]["data"]["title"]
