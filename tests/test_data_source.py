"""DataSource: read-only at the connection, one guarded path, limits, introspection on two schemas."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import duckdb
import pytest

from streamforge.config import Settings
from streamforge.data.sample import SAMPLE_FILENAME
from streamforge.data.source import DataSource, QueryError
from streamforge.data.sqlguard import SQLRejected
from tests.fixtures import dbs

# Shared fixtures (see tests/fixtures/dbs.py).
hr_csv_source = dbs.hr_csv_source
hr_source = dbs.hr_source
sample_path = dbs.sample_path
sample_source = dbs.sample_source


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_run_is_async_and_returns_plain_values(sample_source: DataSource) -> None:
    result = asyncio.run(
        sample_source.run("SELECT order_date, revenue FROM orders ORDER BY order_id LIMIT 2")
    )
    assert result.columns == ["order_date", "revenue"]
    assert result.rows[0][0] == "2024-01-01" and isinstance(result.rows[0][1], float)


def test_writes_are_refused_by_the_guard_and_by_the_connection(
    sample_path: Path, sample_source: DataSource
) -> None:
    before = _count(sample_path, "orders")
    with pytest.raises(SQLRejected):
        sample_source.run_sync("DELETE FROM orders")
    # Past the guard, the connection itself is read-only (mode=ro).
    with pytest.raises(QueryError):
        sample_source._backend.execute("DELETE FROM orders", 10, 5.0)
    with pytest.raises(QueryError):
        sample_source._backend.execute("CREATE TABLE pwned (x INT)", 10, 5.0)
    assert _count(sample_path, "orders") == before
    assert "pwned" not in sample_source.tables


def test_row_limit_and_timeout(sample_path: Path) -> None:
    source = DataSource(sample_path, row_limit=7, timeout=0.2)
    assert len(source.run_sync("SELECT * FROM orders").rows) == 7
    # The guard refuses WITH RECURSIVE (no size bound), so the slow statement is a plain cross join.
    slow = "SELECT COUNT(*) FROM orders AS a CROSS JOIN orders AS b CROSS JOIN orders AS c"
    with pytest.raises(QueryError):
        source.run_sync(slow)
    source.close()


def test_sample_schema_is_classified(sample_source: DataSource) -> None:
    schema = sample_source.schema
    kinds = {c.name: c.kind for c in schema.tables["orders"].columns.values()}
    assert kinds == {
        "order_id": "identifier",
        "user_id": "identifier",
        "product_id": "identifier",
        "order_date": "temporal",
        "region": "dimension",
        "channel": "dimension",
        "status": "dimension",
        "quantity": "measure",
        "discount": "measure",
        "revenue": "measure",
    }
    users = schema.tables["users"]
    assert users.label == "name" and users.columns["email"].kind == "text"
    assert users.columns["is_active"].kind == "dimension" and users.columns["is_active"].boolean
    assert schema.tables["sessions"].columns["started_at"].kind == "temporal"
    assert schema.tables["orders"].columns["order_date"].max_value == "2025-12-31"
    assert set(schema.tables["orders"].columns["region"].values) == {
        "North America",
        "Europe",
        "APAC",
        "LATAM",
    }
    links = {(fk.table, fk.column, fk.ref_table) for fk in schema.foreign_keys}
    assert {
        ("orders", "user_id", "users"),
        ("orders", "product_id", "products"),
        ("sessions", "user_id", "users"),
    } <= links
    assert [fk.table for fk in schema.join_path("sessions", "products") or []] == [
        "sessions",
        "orders",
        "orders",
    ]


@pytest.mark.parametrize("fixture", ["hr_source", "hr_csv_source"])
def test_second_schema_without_declared_keys(fixture: str, request: pytest.FixtureRequest) -> None:
    source: DataSource = request.getfixturevalue(fixture)
    schema = source.schema
    employees = schema.tables["employees"]
    assert employees.columns["salary"].kind == "measure"
    assert employees.columns["hire_date"].kind == "temporal"
    assert employees.columns["job_title"].kind == "dimension"
    assert employees.columns["dept_id"].kind == "identifier"
    assert employees.label == "full_name"
    links = {(fk.table, fk.column, fk.ref_table, fk.ref_column, fk.declared) for fk in schema.foreign_keys}
    assert ("employees", "dept_id", "departments", "id", False) in links
    assert ("reviews", "employee_id", "employees", "employee_id", False) in links


def test_csv_folder_is_queryable_and_cannot_be_written_or_escape(
    hr_csv_source: DataSource, tmp_path: Path
) -> None:
    assert hr_csv_source.dialect == "duckdb"
    assert hr_csv_source.run_sync("SELECT COUNT(*) FROM employees").rows == [(300,)]
    with pytest.raises(SQLRejected):
        hr_csv_source.run_sync("DELETE FROM employees")
    # External access is off once the files are loaded, even past the guard.
    with pytest.raises(QueryError):
        hr_csv_source._backend.execute(f"COPY employees TO '{tmp_path / 'out.csv'}'", 10, 5.0)
    assert not (tmp_path / "out.csv").exists()


def test_duckdb_file_opens_read_only(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, amount DOUBLE, day DATE)")
    conn.execute("INSERT INTO t VALUES (1, 2.5, DATE '2024-01-01'), (2, 3.5, DATE '2024-02-01')")
    conn.close()
    source = DataSource(f"duckdb:///{path}")
    assert source.run_sync("SELECT SUM(amount) FROM t").rows == [(6.0,)]
    with pytest.raises(QueryError):
        source._backend.execute("DELETE FROM t", 10, 5.0)
    assert source.schema.tables["t"].columns["day"].kind == "temporal"
    source.close()


def test_from_settings_builds_the_sample_under_data_dir(tmp_path: Path, sample_path: Path) -> None:
    shutil.copy(sample_path, tmp_path / SAMPLE_FILENAME)  # skip the build; the path is what matters
    source = DataSource.from_settings(Settings(data_dir=tmp_path, sql_row_limit=3, sql_timeout=2.0))
    assert source.row_limit == 3 and source.timeout == 2.0
    assert source.identity == DataSource(tmp_path / SAMPLE_FILENAME).identity
    assert source.identity != DataSource(sample_path).identity
    source.close()


def test_identity_hides_passwords() -> None:
    from streamforge.data.source import _identity

    a = _identity("postgresql+psycopg://u:secret@h/db")
    assert "secret" not in a and a == _identity("postgresql+psycopg://u:other@h/db")
