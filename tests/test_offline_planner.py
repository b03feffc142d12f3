"""The offline planner end to end: real figures, every chart type, valid components, never an error."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from streamforge.components import Limits, validate_component
from streamforge.data.source import DataSource
from streamforge.offline.planner import OfflinePlanner
from tests.fixtures import dbs

# Shared fixtures (see tests/fixtures/dbs.py).
hr_csv_source = dbs.hr_csv_source
hr_planner = dbs.hr_planner
hr_source = dbs.hr_source
sample_path = dbs.sample_path
sample_planner = dbs.sample_planner
sample_source = dbs.sample_source


def plan(planner: OfflinePlanner, message: str) -> list[dict[str, Any]]:
    components = asyncio.run(planner.plan(message))
    for c in components:
        assert validate_component(c, planner.limits) is not None, (message, c)
    assert 1 <= len(components) <= planner.limits.max_components
    return components


def charts(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["data"] for c in components if c["type"] == "ChartComponent"]


@pytest.mark.parametrize(
    ("message", "chart_type", "x", "y"),
    [
        ("revenue over time", "line", "order_date", "revenue"),
        ("revenue as an area chart over time", "area", "order_date", "revenue"),
        ("revenue by region", "bar", "region", "revenue"),
        ("share of revenue by channel", "pie", "channel", "revenue"),
        ("relationship between discount and revenue", "scatter", "discount", "revenue"),
    ],
)
def test_every_chart_type_from_real_data(
    sample_planner: OfflinePlanner, message: str, chart_type: str, x: str, y: str
) -> None:
    data = charts(plan(sample_planner, message))[0]
    assert data["chart_type"] == chart_type
    assert (data["source"]["x"], data["source"]["y"]) == (x, y)
    values = [v for s in data["series"] for v in s["values"]]
    assert values and any(v not in (0, None) for v in (p[1] if isinstance(p, list) else p for p in values))


def test_figures_are_the_database_figures(sample_planner: OfflinePlanner, sample_path: Path) -> None:
    conn = sqlite3.connect(sample_path)
    by_region = dict(
        conn.execute("SELECT region, ROUND(SUM(revenue), 2) FROM orders GROUP BY region").fetchall()
    )
    q4 = conn.execute(
        "SELECT ROUND(SUM(revenue), 2) FROM orders WHERE order_date >= '2025-10-01'"
    ).fetchone()[0]
    users = conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    conn.close()
    chart = charts(plan(sample_planner, "revenue by region"))[0]
    assert dict(zip(chart["x_axis"], chart["series"][0]["values"], strict=True)) == pytest.approx(by_region)
    card = plan(sample_planner, "total revenue in Q4 2025")[0]["data"]
    assert card["value"] == pytest.approx(q4) and card["delta"].endswith("vs 2025-Q3")
    assert card["source"]["filters"] == [
        {"column": "order_date", "op": ">=", "value": "2025-10-01"},
        {"column": "order_date", "op": "<", "value": "2026-01-01"},
    ]
    assert plan(sample_planner, "how many users do we have")[0]["data"]["value"] == users


def test_provenance_names_bare_columns_and_the_sql_runs(
    sample_planner: OfflinePlanner, sample_source: DataSource
) -> None:
    for message in ("revenue over time by region", "top 5 products by revenue", "new signups per month"):
        for component in plan(sample_planner, message):
            src = component["data"].get("source")
            if not src:
                continue
            assert set(src) >= {"sql", "table", "x", "y", "aggregate", "group"}
            for key in ("x", "group"):
                assert src[key] is None or ("(" not in src[key] and "." not in src[key])
            sample_source.run_sync(src["sql"])  # the statement as shown runs as is


def test_multi_series_trend_and_grain_fit_the_limits(sample_planner: OfflinePlanner) -> None:
    data = charts(plan(sample_planner, "revenue over time by region"))[0]
    assert data["source"]["group"] == "region" and data["source"]["grain"] == "month"
    assert {s["label"] for s in data["series"]} == {"North America", "Europe", "APAC", "LATAM"}
    assert len(data["x_axis"]) == 24
    daily = charts(plan(sample_planner, "daily orders"))[0]
    assert daily["source"]["grain"] == "day" and len(daily["x_axis"]) <= 50
    assert "latest 50 days" in daily["description"]
    q4 = charts(plan(sample_planner, "revenue trend in Q4 2025"))[0]
    assert q4["source"]["grain"] == "week"


def test_limits_are_respected_by_choice(sample_source: DataSource) -> None:
    planner = OfflinePlanner(sample_source, Limits(max_components=3, max_rows=5, max_points=10))
    comps = plan(planner, "dashboard overview")
    assert len(comps) == 3
    for data in charts(comps):
        assert len(data["x_axis"]) <= 10
    rows = plan(planner, "list all users")[0]["data"]["rows"]
    assert len(rows) == 5
    trend = charts(plan(planner, "revenue over time"))[0]
    assert trend["source"]["grain"] == "quarter" and len(trend["x_axis"]) == 8


def test_overview_has_cards_a_trend_a_breakdown_and_a_table(sample_planner: OfflinePlanner) -> None:
    comps = plan(sample_planner, "dashboard overview")
    assert 3 <= len(comps) <= 5
    assert comps[0]["type"] == "SimpleComponent" and comps[0]["data"]["delta"]
    assert {c["type"] for c in comps} == {"SimpleComponent", "ChartComponent", "TableA"}
    kinds = [d["chart_type"] for d in charts(comps)]
    assert "line" in kinds and "bar" in kinds


def test_pie_folds_long_tails_into_other(sample_planner: OfflinePlanner) -> None:
    pie = charts(plan(sample_planner, "share of users by country"))[0]
    assert pie["chart_type"] == "pie" and len(pie["x_axis"]) == 8 and pie["x_axis"][-1] == "Other"
    assert sum(pie["series"][0]["values"]) == 2000


@pytest.mark.parametrize(
    ("message", "first", "expect"),
    [
        ("list recent orders", "TableA", {"table": "orders"}),
        ("show me products", "TableA", {"table": "products"}),
        ("which country has the most users", "ChartComponent", {"x": "country"}),
        ("bottom 3 categories by revenue", "ChartComponent", {"x": "category"}),
        ("distribution of revenue", "ChartComponent", {"x": "revenue"}),
        ("compare Q1 vs Q2 revenue", "ChartComponent", {"x": "order_date", "grain": "quarter"}),
        ("revenue in Europe vs APAC", "ChartComponent", {"x": "region"}),
        ("revenue 2024 vs 2025 by channel", "ChartComponent", {"x": "channel", "group": "order_date"}),
        ("average order value", "SimpleComponent", {"y": "revenue", "aggregate": "avg"}),
        ("orders in Europe last month", "SimpleComponent", {"table": "orders"}),
        ("revenue by region table", "TableA", {"x": "region"}),
        ("weekly sessions in 2025", "ChartComponent", {"x": "started_at", "grain": "week"}),
    ],
)
def test_varied_requests(
    sample_planner: OfflinePlanner, message: str, first: str, expect: dict[str, Any]
) -> None:
    comps = plan(sample_planner, message)
    assert comps[0]["type"] == first
    src = comps[0]["data"]["source"]
    for key, value in expect.items():
        assert src[key] == value, (message, key, src)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "   ",
        "hello",
        "what's the weather in Paris?",
        "DROP TABLE users; --",
        "'; DELETE FROM orders; --",
        "x" * 2000,
        "🙂📈",
        "revenue by by by",
        "top 0 products",
        "top 1000 products by revenue",
        "compare",
        "show me chart",
        "revenue in 1999",
        "scatter plot",
        "pie chart",
        "Q5 2025 revenue",
    ],
)
def test_never_raises(sample_planner: OfflinePlanner, message: str) -> None:
    plan(sample_planner, message)


def test_unmatched_words_are_said_next_to_the_nearest_answer(sample_planner: OfflinePlanner) -> None:
    comps = plan(sample_planner, "revenue by planet")
    assert comps[-1]["data"]["title"] == "Not found in the data" and "planet" in comps[-1]["data"]["value"]
    assert comps[0]["data"]["source"]["y"] == "revenue"
    assert plan(sample_planner, "weather in Paris")[-1]["data"]["title"] == "Not found in the data"


@pytest.mark.parametrize(
    ("message", "first", "expect"),
    [
        ("average salary by department", "ChartComponent", {"x": "name", "y": "salary", "aggregate": "avg"}),
        ("headcount by location", "ChartComponent", {"x": "location"}),
        ("hires per year", "ChartComponent", {"x": "hire_date", "grain": "year"}),
        ("salary distribution", "ChartComponent", {"x": "salary", "aggregate": "count"}),
        ("top 5 employees by salary", "ChartComponent", {"x": "full_name", "y": "salary"}),
        ("average rating over time", "ChartComponent", {"x": "review_date", "y": "rating"}),
        ("share of employees by work mode", "ChartComponent", {"x": "work_mode"}),
        ("list engineers", "TableA", {"table": "employees"}),
        ("how many employees", "SimpleComponent", {"table": "employees"}),
        (
            "relationship between rating and overtime hours",
            "ChartComponent",
            {"x": "rating", "y": "overtime_hours"},
        ),
        ("overview", "SimpleComponent", {}),
    ],
)
def test_a_second_schema(
    hr_planner: OfflinePlanner, message: str, first: str, expect: dict[str, Any]
) -> None:
    comps = plan(hr_planner, message)
    assert comps[0]["type"] == first
    for key, value in expect.items():
        assert comps[0]["data"]["source"][key] == value, (message, key, comps[0]["data"]["source"])


def test_csv_folder_plans_like_sqlite(hr_csv_source: DataSource, hr_source: DataSource) -> None:
    csv_planner = OfflinePlanner(hr_csv_source, Limits())
    lite_planner = OfflinePlanner(hr_source, Limits())
    for message in ("average salary by department", "hires per quarter", "reviews in 2024 by month"):
        a, b = plan(csv_planner, message), plan(lite_planner, message)
        assert [c["data"].get("series") for c in a] == [c["data"].get("series") for c in b], message


# ---------------------------------------------------------------- rates and ratios


@pytest.mark.parametrize(
    ("message", "shape", "x", "y"),
    [
        ("refund rate", "card", None, "status"),
        ("percentage of active users", "card", None, "is_active"),
        ("what fraction of users are on the pro plan", "card", None, "plan"),
        ("share of cancelled orders per region", "bar", "region", "status"),
        ("percentage of active users by plan", "bar", "plan", "is_active"),
        ("cancellation rate over time", "line", "order_date", "status"),
    ],
)
def test_rates_are_percentages_of_rows(
    sample_planner: OfflinePlanner, sample_path: Path, message: str, shape: str, x: str | None, y: str
) -> None:
    first = plan(sample_planner, message)[0]
    data = first["data"]
    source = data["source"]
    assert (source["aggregate"], source["x"], source["y"]) == ("avg", x, y)
    assert "AVG(CASE WHEN" in source["sql"]
    conn = sqlite3.connect(sample_path)
    rows = conn.execute(source["sql"]).fetchall()  # the SQL as shown runs on the database
    assert rows
    if shape == "card":
        assert first["type"] == "SimpleComponent" and data["unit"] == "%"
        values = [data["value"]]
        assert abs(rows[0][0] - data["value"]) < 0.01
    else:
        assert first["type"] == "ChartComponent" and data["chart_type"] == shape
        values = [v for s in data["series"] for v in s["values"] if v is not None]
    assert values and all(0 <= v <= 100 for v in values)
    assert any(0 < v < 100 for v in values)


def test_rate_matches_the_share_counted_by_hand(sample_planner: OfflinePlanner, sample_path: Path) -> None:
    conn = sqlite3.connect(sample_path)
    by_region = dict(
        conn.execute(
            "SELECT region, 100.0 * SUM(status = 'cancelled') / COUNT(*) FROM orders GROUP BY region"
        ).fetchall()
    )
    data = charts(plan(sample_planner, "share of cancelled orders per region"))[0]
    shown = dict(zip(data["x_axis"], data["series"][0]["values"], strict=True))
    assert shown == {k: round(v, 2) for k, v in by_region.items()}


def test_rate_noun_finds_its_flag_on_another_schema(hr_planner: OfflinePlanner) -> None:
    data = charts(plan(hr_planner, "remote rate by department"))[0]
    assert data["chart_type"] == "bar" and data["source"]["y"] == "work_mode"
    assert all(0 <= v <= 100 for v in data["series"][0]["values"])


def test_a_rate_survives_a_follow_up(sample_planner: OfflinePlanner) -> None:
    from streamforge.offline.spec import from_component

    first = plan(sample_planner, "share of cancelled orders per region")[0]
    spec = from_component(first, sample_planner.source.schema, sample_planner.source.dialect)
    assert spec is not None and spec.metrics[0].rate and spec.metrics[0].rate_value == "cancelled"
