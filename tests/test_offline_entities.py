"""Intent and entity extraction, as tables: message -> what the planner understood."""

from __future__ import annotations

from datetime import date

import pytest

from streamforge.data.source import DataSource
from streamforge.offline.entities import Col, Cond, understand
from streamforge.offline.intent import detect
from streamforge.offline.match import Vocabulary
from streamforge.offline.periods import find_periods, previous, resolve
from tests.fixtures import dbs

# Shared fixtures (see tests/fixtures/dbs.py).
hr_source = dbs.hr_source
sample_path = dbs.sample_path
sample_source = dbs.sample_source


@pytest.mark.parametrize(
    ("message", "intent", "overview", "chart"),
    [
        ("revenue trend", "trend", False, None),
        ("monthly orders", "trend", False, None),
        ("orders per week", "trend", False, None),
        ("compare revenue 2024 vs 2025", "comparison", False, None),
        ("top 5 products by revenue", "ranking", False, None),
        ("which region sells the least", "ranking", False, None),
        ("share of revenue by channel", "share", False, None),
        ("breakdown of users by plan", "share", False, None),
        ("distribution of order values", "distribution", False, None),
        ("relationship between price and quantity", "relationship", False, None),
        ("scatter plot of price vs quantity", "relationship", False, "scatter"),
        ("list recent orders", "list", False, None),
        ("most recent orders", "list", False, None),
        ("how many users do we have", "single", False, None),
        ("dashboard overview", "none", True, None),
        ("summarize performance", "none", True, None),
        ("revenue as an area chart over time", "trend", False, "area"),
        ("pie chart of revenue by category", "share", False, "pie"),
        ("sales by area", "none", False, None),
    ],
)
def test_intent_table(message: str, intent: str, overview: bool, chart: str | None) -> None:
    info = detect(message)
    assert (info.intent, info.overview, info.chart_type) == (intent, overview, chart)


@pytest.mark.parametrize(
    ("message", "grain", "top", "descending"),
    [
        ("daily active users", "day", None, None),
        ("revenue by quarter", "quarter", None, None),
        ("top ten customers", None, 10, True),
        ("bottom 3 regions by revenue", None, 3, False),
        ("revenue in 2024", None, None, None),  # a year is a period, never a top-N
    ],
)
def test_grain_and_top_n(message: str, grain: str | None, top: int | None, descending: bool | None) -> None:
    info = detect(message)
    assert (info.grain, info.top_n, info.descending) == (grain, top, descending)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("total revenue in q4 2025", ["2025-Q4"]),
        ("compare q1 vs q2", ["2025-Q1", "2025-Q2"]),
        ("2024 vs 2025", ["2024", "2025"]),
        ("sales in march", ["2025-03"]),
        ("orders in january 2024", ["2024-01"]),
        ("last month", ["2025-11"]),
        ("this year", ["2025"]),
        ("what may happen", []),
    ],
)
def test_periods_resolve_on_the_data_calendar(text: str, labels: list[str]) -> None:
    periods = resolve(find_periods(text), date(2024, 1, 1), date(2025, 12, 31))
    assert [p.label for p in periods] == labels


def test_previous_period_is_the_calendar_unit_before() -> None:
    (q4,) = resolve(find_periods("q4 2025"), date(2024, 1, 1), date(2025, 12, 31))
    assert previous(q4).label == "2025-Q3"
    (jan,) = resolve(find_periods("january 2025"), date(2024, 1, 1), date(2025, 12, 31))
    assert previous(jan).label == "2024-12"


@pytest.mark.parametrize(
    ("message", "metric", "dims", "conds"),
    [
        ("revenue by region", ("orders", "revenue", "sum"), [("orders", "region")], []),
        ("sales by region", ("orders", "revenue", "sum"), [("orders", "region")], []),
        ("users by region", ("users", None, "count"), [("users", "region")], []),
        ("top 5 products by revenue", ("orders", "revenue", "sum"), [("products", "name")], []),
        ("revenue per customer", ("orders", "revenue", "sum"), [("users", "name")], []),
        ("revenue by product category", ("orders", "revenue", "sum"), [("products", "category")], []),
        (
            "average session duration by feature",
            ("sessions", "duration_seconds", "avg"),
            [("sessions", "feature")],
            [],
        ),
        ("average price by category", ("products", "price", "avg"), [("products", "category")], []),
        ("how many orders in Europe", ("orders", None, "count"), [], [("region", "=", "Europe")]),
        (
            "mobile revenue by status",
            ("orders", "revenue", "sum"),
            [("orders", "status")],
            [("channel", "=", "mobile")],
        ),
        ("how many active users", ("users", None, "count"), [], [("is_active", "=", True)]),
        ("orders over 500", ("orders", None, "count"), [], [("revenue", ">", 500)]),
        ("revnue by regon", ("orders", "revenue", "sum"), [("orders", "region")], []),
        ("free users by country", ("users", None, "count"), [("users", "country")], [("plan", "=", "free")]),
    ],
)
def test_entity_table_on_the_sample(
    sample_source: DataSource,
    message: str,
    metric: tuple[str, str | None, str],
    dims: list[tuple[str, str]],
    conds: list[tuple[str, str, object]],
) -> None:
    schema = sample_source.schema
    req = understand(message, schema, Vocabulary.build(schema))
    assert (req.metric.table, req.metric.column, req.metric.aggregate) == metric
    assert req.dims == [Col(t, c) for t, c in dims]
    assert [(c.col.name, c.op, c.value) for c in req.conds] == conds


def test_active_users_over_time_count_people_in_the_activity_table(sample_source: DataSource) -> None:
    schema = sample_source.schema
    req = understand("daily active users over time", schema, Vocabulary.build(schema))
    assert (req.metric.table, req.metric.column, req.metric.aggregate, req.metric.distinct) == (
        "sessions",
        "user_id",
        "count",
        True,
    )
    assert req.time == Col("sessions", "started_at")


def test_values_compared_become_the_grouping(sample_source: DataSource) -> None:
    schema = sample_source.schema
    req = understand("revenue in Europe vs APAC", schema, Vocabulary.build(schema))
    assert req.compare_values == [Cond(Col("orders", "region"), "in", ["Europe", "APAC"])]


def test_unknown_words_are_kept_for_the_answer(sample_source: DataSource) -> None:
    schema = sample_source.schema
    req = understand("revenue by planet", schema, Vocabulary.build(schema))
    assert req.unmatched == ["planet"]


@pytest.mark.parametrize(
    ("message", "metric", "dims"),
    [
        ("average salary by department", ("employees", "salary", "avg"), [("departments", "name")]),
        ("headcount by location", ("employees", None, "count"), [("departments", "location")]),
        ("staff per job title", ("employees", None, "count"), [("employees", "job_title")]),
        ("average rating by work mode", ("reviews", "rating", "avg"), [("employees", "work_mode")]),
        (
            "total overtime hours by department",
            ("reviews", "overtime_hours", "sum"),
            [("departments", "name")],
        ),
    ],
)
def test_entity_table_on_a_second_schema(
    hr_source: DataSource, message: str, metric: tuple[str, str | None, str], dims: list[tuple[str, str]]
) -> None:
    schema = hr_source.schema
    req = understand(message, schema, Vocabulary.build(schema))
    assert (req.metric.table, req.metric.column, req.metric.aggregate) == metric
    assert req.dims == [Col(t, c) for t, c in dims]
