"""The sample data in PostgreSQL: introspected, planned against, read-only. Runs whenever postgres is up."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streamforge.components import Limits, validate_component
from streamforge.data.source import DataSource, QueryError
from streamforge.offline.planner import OfflinePlanner
from tests.conftest import REQUIRE_SERVICES
from tests.fakes.bedrock import FakeBedrock, text
from tests.fixtures import dbs

DSN = "postgresql://postgres@127.0.0.1:5432/test"
URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dstreamforge_test"
_DDL = {
    "users": "user_id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT, region TEXT, plan TEXT, "
    "signup_date DATE, is_active BOOLEAN",
    "products": "product_id INTEGER PRIMARY KEY, name TEXT, category TEXT, price DOUBLE PRECISION",
    "orders": "order_id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(user_id), "
    "product_id INTEGER REFERENCES products(product_id), order_date DATE, region TEXT, channel TEXT, "
    "status TEXT, quantity INTEGER, discount DOUBLE PRECISION, revenue DOUBLE PRECISION",
    "sessions": "session_id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(user_id), "
    "started_at TIMESTAMP, feature TEXT, duration_seconds INTEGER",
}

# Shared fixtures (see tests/fixtures/dbs.py).
sample_path = dbs.sample_path


@pytest.fixture(scope="module")
def pg_source(sample_path: Path) -> Iterator[DataSource]:
    try:
        conn = psycopg.connect(DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_SERVICES:  # in CI (.ci/run starts it) a missing server fails the test
            pytest.fail(f"postgres is not running: {exc}")
        pytest.skip(f"postgres is not running: {exc}")
    lite = sqlite3.connect(sample_path)
    with conn:
        conn.execute("DROP SCHEMA IF EXISTS streamforge_test CASCADE")
        conn.execute("CREATE SCHEMA streamforge_test")
        conn.execute("SET search_path TO streamforge_test")
        for table, ddl in _DDL.items():
            conn.execute(f"CREATE TABLE streamforge_test.{table} ({ddl})")
            rows = lite.execute(f"SELECT * FROM {table}").fetchall()
            if table == "users":
                rows = [(*r[:7], bool(r[7])) for r in rows]
            with conn.cursor().copy(f"COPY streamforge_test.{table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    lite.close()
    source = DataSource(URL)
    yield source
    source.close()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS streamforge_test CASCADE")


def test_postgres_schema_and_read_only(pg_source: DataSource) -> None:
    assert pg_source.dialect == "postgres"
    orders = pg_source.schema.tables["orders"]
    assert orders.columns["order_date"].kind == "temporal" and orders.columns["revenue"].kind == "measure"
    assert pg_source.schema.tables["users"].columns["is_active"].boolean
    with pytest.raises(QueryError):
        pg_source._backend.execute("DELETE FROM orders", 10, 5.0)
    assert pg_source.run_sync("SELECT COUNT(*) FROM orders").rows == [(30000,)]


def test_planner_answers_from_postgres(pg_source: DataSource, sample_path: Path) -> None:
    planner = OfflinePlanner(pg_source, Limits())
    lite = DataSource(sample_path)
    lite_planner = OfflinePlanner(lite, Limits())
    for message in (
        "show me sales trends",
        "revenue by region",
        "compare Q1 vs Q2 revenue",
        "total revenue in Q4 2025",
        "new signups per week in 2025",
        "daily active users over time",
        "revenue by quarter",
        "dashboard overview",
    ):
        components = asyncio.run(planner.plan(message))
        assert components and all(validate_component(c) is not None for c in components), message
        same = asyncio.run(lite_planner.plan(message))
        # Same data, same answer, whatever the engine: the figures agree.
        assert [c["data"].get("series") or c["data"].get("value") for c in components] == [
            c["data"].get("series") or c["data"].get("value") for c in same
        ], message
    lite.close()


async def test_an_llm_plan_runs_its_sql_on_postgres(pg_source: DataSource, fake_bedrock: FakeBedrock) -> None:
    """STREAMFORGE_DATABASE_URL=postgresql://... for an LLM planner: its SQL is guarded and run there."""
    from streamforge.config import Settings
    from streamforge.planner.factory import build_planner_service

    sql = "SELECT region, SUM(revenue) AS total FROM orders GROUP BY region ORDER BY total DESC"
    plan = [
        {
            "type": "ChartComponent",
            "data": {
                "title": "Revenue by region",
                "chart_type": "bar",
                "x_axis": ["a"],
                "series": [{"label": "x", "values": [1]}],
                "sql": sql,
            },
        }
    ]
    fake_bedrock.push(text("$$$" + json.dumps(plan) + "$$$"))
    settings = Settings(
        provider="bedrock",
        bedrock_endpoint_url=fake_bedrock.url,
        database_url=URL,
        allow_writable_role=True,  # the CI server's trust-auth superuser (tests/test_data_wall.py)
        llm_stream=False,
        offline_last_resort=False,
        _env_file=None,
    )  # type: ignore[call-arg]
    service = await build_planner_service(settings)
    try:
        result = await service.generate_layout("revenue by region")
    finally:
        await service.aclose()
    chart = result.components[0]
    expected = await pg_source.run(sql)
    assert chart["data"]["x_axis"] == [row[0] for row in expected.rows]
    assert chart["data"]["series"][0]["values"] == [row[1] for row in expected.rows]
    assert chart["data"]["source"]["x"] == "region" and chart["data"]["source"]["y"] == "revenue"
