"""Generated SQL, checked by running it: the planner's figures equal hand-written queries."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from streamforge.data.source import DataSource
from streamforge.offline.entities import Col, Cond, Metric
from streamforge.offline.periods import Period
from streamforge.offline.sqlbuild import Query, aggregate_sql, kpi_sql, points_sql, rows_sql
from tests.fixtures import dbs

REVENUE = Metric("orders", "revenue", "sum")
Q1 = Period(date(2025, 1, 1), date(2025, 4, 1), "2025-Q1", "quarter")
Q2 = Period(date(2025, 4, 1), date(2025, 7, 1), "2025-Q2", "quarter")

# Shared fixtures (see tests/fixtures/dbs.py).
sample_path = dbs.sample_path
sample_source = dbs.sample_source


def _direct(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _close(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> bool:
    return len(a) == len(b) and all(
        all(abs(x - y) < 1e-6 if isinstance(x, float) else x == y for x, y in zip(ra, rb, strict=True))
        for ra, rb in zip(a, b, strict=True)
    )


def test_breakdown_with_join_and_filter(sample_source: DataSource, sample_path: Path) -> None:
    q = Query(
        "orders",
        [REVENUE],
        [Cond(Col("users", "plan"), "=", "pro")],
        x=Col("products", "category"),
        order="x",
    )
    got = sample_source.run_sync(aggregate_sql(sample_source.schema, "sqlite", q)).rows
    want = _direct(
        sample_path,
        "SELECT p.category, SUM(o.revenue) FROM orders o JOIN products p USING (product_id) "
        "JOIN users u USING (user_id) WHERE u.plan = 'pro' GROUP BY 1 ORDER BY 1",
    )
    assert _close(got, want)


@pytest.mark.parametrize(
    ("grain", "expr", "first"),
    [
        ("month", "substr(order_date, 1, 7)", "2024-01"),
        (
            "quarter",
            "substr(order_date, 1, 4) || '-Q' || ((CAST(substr(order_date, 6, 2) AS INT) + 2) / 3)",
            "2024-Q1",
        ),
        ("year", "substr(order_date, 1, 4)", "2024"),
        ("week", "date(order_date, 'weekday 0', '-6 days')", "2024-01-01"),
    ],
)
def test_time_buckets(
    sample_source: DataSource, sample_path: Path, grain: str, expr: str, first: str
) -> None:
    q = Query("orders", [REVENUE], x=Col("orders", "order_date"), grain=grain)
    got = sample_source.run_sync(aggregate_sql(sample_source.schema, "sqlite", q)).rows
    want = _direct(sample_path, f"SELECT {expr}, SUM(revenue) FROM orders GROUP BY 1 ORDER BY 1")
    assert got[0][0] == first and _close(got, want)


def test_fan_out_counts_distinct_rows(sample_source: DataSource, sample_path: Path) -> None:
    q = Query("users", [Metric("users", None, "count")], x=Col("products", "category"))
    got = sample_source.run_sync(aggregate_sql(sample_source.schema, "sqlite", q)).rows
    want = _direct(
        sample_path,
        "SELECT p.category, COUNT(DISTINCT u.user_id) FROM users u JOIN orders o USING (user_id) "
        "JOIN products p USING (product_id) GROUP BY 1 ORDER BY 1",
    )
    assert got == want


def test_period_comparison_and_kpi(sample_source: DataSource, sample_path: Path) -> None:
    schema = sample_source.schema
    time = Col("orders", "order_date")
    q = Query("orders", [REVENUE], time=time, periods=[Q1, Q2])
    got = dict(sample_source.run_sync(aggregate_sql(schema, "sqlite", q)).rows)
    q1 = _direct(
        sample_path, "SELECT SUM(revenue) FROM orders WHERE order_date BETWEEN '2025-01-01' AND '2025-03-31'"
    )[0][0]
    q2 = _direct(
        sample_path, "SELECT SUM(revenue) FROM orders WHERE order_date BETWEEN '2025-04-01' AND '2025-06-30'"
    )[0][0]
    assert got["2025-Q1"] == pytest.approx(q1) and got["2025-Q2"] == pytest.approx(q2)
    kpi = sample_source.run_sync(kpi_sql(schema, "sqlite", "orders", [REVENUE], [], time, Q2, Q1, True))
    row = dict(zip(kpi.columns, kpi.rows[0], strict=True))
    assert row["cur0"] == pytest.approx(q2) and row["prev0"] == pytest.approx(q1)


def test_top_series_keeps_the_largest_groups(sample_source: DataSource, sample_path: Path) -> None:
    q = Query(
        "orders",
        [REVENUE],
        x=Col("orders", "order_date"),
        grain="year",
        series=Col("users", "country"),
        top_series=3,
    )
    rows = sample_source.run_sync(aggregate_sql(sample_source.schema, "sqlite", q)).rows
    top = [
        c
        for (c,) in _direct(
            sample_path,
            "SELECT u.country FROM orders o JOIN users u USING (user_id) "
            "GROUP BY 1 ORDER BY SUM(o.revenue) DESC LIMIT 3",
        )
    ]
    assert {r[1] for r in rows} == set(top)


def test_rows_and_points(sample_source: DataSource) -> None:
    schema = sample_source.schema
    sql = rows_sql(
        schema,
        "sqlite",
        "orders",
        [Col("orders", "order_id"), Col("orders", "order_date")],
        [Cond(Col("orders", "channel"), "=", "partner")],
        None,
        None,
        [(Col("orders", "order_date"), True)],
        5,
    )
    rows = sample_source.run_sync(sql).rows
    assert len(rows) == 5 and rows[0][1] == "2025-12-31"
    sql = points_sql(
        schema,
        "sqlite",
        "orders",
        Col("products", "price"),
        Col("orders", "quantity"),
        [],
        None,
        None,
        600,
        50,
    )
    points = sample_source.run_sync(sql).rows
    assert 40 <= len(points) <= 50 and all(isinstance(p, float) and isinstance(q, int) for p, q in points)


def test_user_values_are_literals_never_sql(sample_source: DataSource) -> None:
    evil = "x' OR '1'='1"
    q = Query("orders", [REVENUE], [Cond(Col("orders", "region"), "=", evil)], x=Col("orders", "region"))
    sql = aggregate_sql(sample_source.schema, "sqlite", q)
    assert sample_source.run_sync(sql).rows == []
    assert "'x'' OR ''1''=''1'" in sql


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_other_dialects_render_and_pass_the_guard(sample_source: DataSource, dialect: str) -> None:
    from streamforge.data.sqlguard import guard_sql

    for grain in ("day", "week", "month", "quarter", "year"):
        q = Query(
            "orders",
            [REVENUE],
            x=Col("orders", "order_date"),
            grain=grain,
            series=Col("products", "category"),
        )
        guard_sql(aggregate_sql(sample_source.schema, dialect, q), sample_source.tables, dialect, 100)
