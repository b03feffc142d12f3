"""The guard accepts one read-only SELECT over known tables and refuses everything else."""

from __future__ import annotations

import pytest
from sqlglot import exp

from streamforge.data.sqlguard import SQLRejected, guard_sql

TABLES = {"orders", "users"}
DIALECTS = ["sqlite", "duckdb", "postgres"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM orders",
        "SELECT region, SUM(revenue) FROM orders GROUP BY region",
        "WITH t AS (SELECT * FROM orders) SELECT COUNT(*) FROM t",
        "SELECT user_id FROM orders UNION SELECT user_id FROM users",
        "SELECT o.revenue FROM orders o JOIN users u ON u.user_id = o.user_id WHERE u.region = 'Europe'",
        "SELECT * FROM orders WHERE user_id IN (SELECT user_id FROM users)",
    ],
)
def test_accepts_read_only_selects(sql: str, dialect: str) -> None:
    out = guard_sql(sql, TABLES, dialect, 100)
    assert out.upper().startswith(("SELECT", "WITH"))
    assert out.endswith("LIMIT 100")


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM orders", "only SELECT"),
        ("UPDATE orders SET revenue = 0", "only SELECT"),
        ("INSERT INTO orders VALUES (1)", "only SELECT"),
        ("DROP TABLE orders", "only SELECT"),
        ("CREATE TABLE x AS SELECT * FROM orders", "only SELECT"),
        ("PRAGMA table_info(orders)", "only SELECT"),
        ("SELECT 1 FROM orders; DROP TABLE orders", "exactly one statement"),
        ("SELECT * FROM orders -- comment\n; DELETE FROM orders", "exactly one statement"),
        ("SELECT * FROM secrets", "unknown table"),
        ("SELECT * FROM main.orders", "unknown table"),
        ("SELECT load_extension('evil')", "load_extension"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
        ("SELECT pg_sleep(100)", "pg_sleep"),
        ("SELECT * FROM 'data.csv'", "unknown table"),
        ("not sql at all (", "not valid SQL"),
    ],
)
def test_rejects_everything_else(sql: str, reason: str, dialect: str) -> None:
    with pytest.raises(SQLRejected) as info:
        guard_sql(sql, TABLES, dialect, 100)
    assert reason in info.value.reason or info.value.reason.startswith(("not valid", "only SELECT"))


def test_attach_and_select_into_are_refused() -> None:
    for sql in ("ATTACH DATABASE 'x.db' AS x", "SELECT * INTO copy FROM orders"):
        with pytest.raises(SQLRejected):
            guard_sql(sql, TABLES, "sqlite", 10)
    with pytest.raises(SQLRejected):
        guard_sql("SELECT * INTO copy FROM orders", TABLES, "postgres", 10)


def test_limit_is_added_and_capped_but_smaller_limits_stay() -> None:
    assert guard_sql("SELECT * FROM orders LIMIT 5", TABLES, "sqlite", 100).endswith("LIMIT 5")
    assert guard_sql("SELECT * FROM orders LIMIT 5000", TABLES, "sqlite", 100).endswith("LIMIT 100")


def test_comments_are_not_carried_into_the_statement_run() -> None:
    out = guard_sql("SELECT /* hi */ revenue FROM orders -- trailing", TABLES, "sqlite", 10)
    assert "--" not in out and "/*" not in out


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        # a CTE is visible in the main query, in its subqueries and in the CTEs after it
        "WITH t AS (SELECT * FROM orders) SELECT * FROM users WHERE user_id IN (SELECT user_id FROM t)",
        "WITH a AS (SELECT * FROM orders), b AS (SELECT user_id FROM a) SELECT COUNT(*) FROM b",
        "WITH t AS (SELECT user_id FROM orders) SELECT user_id FROM t UNION SELECT user_id FROM t",
        # a WITH inside a derived table serves that derived table
        "SELECT * FROM (WITH t AS (SELECT region FROM orders) SELECT region FROM t) AS s",
        "SELECT * FROM orders AS o WHERE EXISTS (WITH u AS (SELECT user_id FROM users) "
        "SELECT 1 FROM u WHERE u.user_id = o.user_id)",
    ],
)
def test_ctes_are_resolved_where_they_are_visible(sql: str, dialect: str) -> None:
    assert guard_sql(sql, TABLES, dialect, 100)


@pytest.mark.parametrize(
    ("dialect", "sql", "allowed"),
    [
        ("sqlite", "WITH T AS (SELECT * FROM orders) SELECT * FROM t", True),  # no case in SQLite
        ("sqlite", 'WITH "T" AS (SELECT * FROM orders) SELECT * FROM t', True),  # not even quoted
        ("duckdb", 'WITH "T" AS (SELECT * FROM orders) SELECT * FROM t', True),
        ("postgres", "WITH T AS (SELECT * FROM orders) SELECT * FROM t", True),  # unquoted folds
        ("postgres", 'WITH "T" AS (SELECT * FROM orders) SELECT * FROM t', False),  # quoted does not
        ("postgres", 'SELECT * FROM "ORDERS"', False),
        ("postgres", "SELECT * FROM ORDERS", True),
        ("sqlite", 'SELECT * FROM "ORDERS"', True),
    ],
)
def test_names_are_compared_as_the_engine_compares_them(dialect: str, sql: str, allowed: bool) -> None:
    if allowed:
        assert guard_sql(sql, TABLES, dialect, 10)
    else:
        with pytest.raises(SQLRejected, match="unknown table"):
            guard_sql(sql, TABLES, dialect, 10)


def test_a_mixed_case_postgres_table_must_be_quoted_as_it_is() -> None:
    assert guard_sql('SELECT * FROM "Orders"', {"Orders"}, "postgres", 10)
    with pytest.raises(SQLRejected, match="unknown table 'orders'"):
        guard_sql("SELECT * FROM Orders", {"Orders"}, "postgres", 10)


def test_identifiers_are_run_as_written() -> None:
    """Names are folded only to resolve them; the statement that runs keeps its own spelling."""
    out = guard_sql('SELECT "Region" AS "Where" FROM Orders', TABLES, "duckdb", 10)
    assert out == 'SELECT "Region" AS "Where" FROM Orders LIMIT 10'


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_offline_time_buckets_pass_on_every_dialect(dialect: str) -> None:
    from streamforge.offline.sqlbuild import bucket

    for grain in ("day", "week", "month", "quarter", "year"):
        label = bucket(exp.column("order_date", table="orders", quoted=True), grain, dialect)
        sql = exp.select(label).from_("orders").sql(dialect=dialect)
        assert guard_sql(sql, TABLES, dialect, 10)
