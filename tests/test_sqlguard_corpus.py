"""The guard against a corpus of hostile statements, per dialect, and the dashboard SQL it must let by.

Every hostile statement is refused with a reason that names the problem (the function, the table, the
construct), through the real :class:`DataSource` of each engine: the sample database in SQLite, the
same tables as a CSV folder in DuckDB, and in PostgreSQL as a superuser (a guard that lets anything by
there has no second chance). The engines' state is checked afterwards: the SQLite file is byte-identical,
PostgreSQL's rows, large objects and other sessions are untouched. Legitimate dashboard
statements (aggregates, time buckets, CASE, window functions, CTEs, casts) pass and run on each engine.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streamforge.data.source import DataSource
from streamforge.data.sqlguard import MAX_SQL_CHARS, SQLRejected, guard_sql
from tests.conftest import POSTGRES_URL, REQUIRE_SERVICES
from tests.fixtures import dbs
from tests.fixtures.csvdir import write_csv_tables

sample_path = dbs.sample_path

TABLES = ("orders", "users", "products", "sessions")
DIALECTS = ("sqlite", "duckdb", "postgres")
_PG_SCHEMA = "streamforge_guard_test"
_PG_DDL = {
    "users": "user_id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT, region TEXT, plan TEXT, "
    "signup_date DATE, is_active BOOLEAN",
    "products": "product_id INTEGER PRIMARY KEY, name TEXT, category TEXT, price DOUBLE PRECISION",
    "orders": "order_id INTEGER PRIMARY KEY, user_id INTEGER, product_id INTEGER, order_date DATE, "
    "region TEXT, channel TEXT, status TEXT, quantity INTEGER, discount DOUBLE PRECISION, "
    "revenue DOUBLE PRECISION",
    "sessions": "session_id INTEGER PRIMARY KEY, user_id INTEGER, started_at TIMESTAMP, feature TEXT, "
    "duration_seconds INTEGER",
}

# --------------------------------------------------------------------------------------------------
# The hostile corpus: (dialects, statement, words the refusal must contain). "*" is every dialect.

_SYSTEM_TABLES = {
    "sqlite": ["sqlite_master", "sqlite_schema", "sqlite_temp_master", "pragma_database_list"],
    "duckdb": ["duckdb_databases", "duckdb_settings", "duckdb_tables", "sqlite_master", "pg_tables"],
    "postgres": ["pg_shadow", "pg_authid", "pg_settings", "pg_stat_activity", "pg_user", "pg_roles"],
}

HOSTILE: list[tuple[str, str, str]] = [
    # 1. SQL, table names and file paths inside strings (PostgreSQL); settings; other sessions.
    ("postgres", "SELECT query_to_xml('SELECT * FROM pg_shadow', true, true, '')", "query_to_xml"),
    ("postgres", "SELECT table_to_xml('secrets', true, true, '')", "table_to_xml"),
    ("postgres", "SELECT schema_to_xml('public', true, true, '')", "schema_to_xml"),
    (
        "postgres",
        "SELECT query_to_xml_and_xmlschema('SELECT 1', true, true, '')",
        "query_to_xml_and_xmlschema",
    ),
    ("postgres", "SELECT database_to_xml(true, true, '')", "database_to_xml"),
    ("postgres", "SELECT * FROM ts_stat('SELECT to_tsvector(passwd) FROM pg_shadow')", "ts_stat"),
    ("postgres", "SELECT word FROM orders, ts_stat('SELECT 1') AS s", "ts_stat"),
    ("postgres", "SELECT xpath('/x', query_to_xml('SELECT 1', true, true, ''))", "xpath"),
    ("postgres", "SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    ("postgres", "SELECT pg_read_binary_file('/etc/passwd')", "pg_read_binary_file"),
    ("postgres", "SELECT convert_from(pg_read_binary_file('/etc/passwd'), 'UTF8')", "convert_from"),
    ("postgres", "SELECT * FROM pg_ls_dir('.')", "pg_ls_dir"),
    ("postgres", "SELECT pg_stat_file('postgresql.conf')", "pg_stat_file"),
    ("postgres", "SELECT lo_import('/etc/passwd')", "lo_import"),
    ("postgres", "SELECT lo_export(1, '/tmp/x')", "lo_export"),
    ("postgres", "SELECT lo_get(1)", "lo_get"),
    ("postgres", "SELECT lo_from_bytea(0, 'x')", "lo_from_bytea"),
    ("postgres", "SELECT set_config('statement_timeout', '0', false)", "set_config"),
    ("postgres", "SELECT current_setting('data_directory')", "current_setting"),
    ("postgres", "SELECT pg_terminate_backend(pid) FROM orders", "pg_terminate_backend"),
    ("postgres", "SELECT pg_cancel_backend(1)", "pg_cancel_backend"),
    ("postgres", "SELECT pg_reload_conf()", "pg_reload_conf"),
    ("postgres", "SELECT pg_sleep(100)", "pg_sleep"),
    ("postgres", "SELECT pg_advisory_lock(1)", "pg_advisory_lock"),
    ("postgres", "SELECT pg_notify('c', 'x')", "pg_notify"),
    ("postgres", "SELECT pg_backend_pid()", "pg_backend_pid"),
    ("postgres", "SELECT txid_current()", "txid_current"),
    ("postgres", "SELECT nextval('orders_order_id_seq')", "nextval"),
    ("postgres", "SELECT dblink('dbname=test', 'DELETE FROM orders')", "dblink"),
    ("postgres", "SELECT inet_server_addr()", "inet_server_addr"),
    ("postgres", "SELECT current_database()", "current_database"),
    ("postgres", "SELECT current_user", "current_user"),
    ("postgres", "SELECT session_user", "session_user"),
    ("postgres", "SELECT has_table_privilege('pg_authid', 'SELECT')", "has_table_privilege"),
    ("postgres", "SELECT to_regclass('pg_shadow')", "to_regclass"),
    ("postgres", "SELECT row_to_json(o) FROM orders o", "row_to_json"),
    ("postgres", "SELECT pg_catalog.pg_read_file('/etc/passwd')", "pg_catalog.pg_read_file"),
    ("postgres", "SELECT pg_catalog.lower(region) FROM orders", "schema-qualified function"),
    ("postgres", "SELECT public.evil(region) FROM orders", "schema-qualified function"),
    ("postgres", "SELECT 'pg_shadow'::regclass", "REGCLASS"),
    ("postgres", "SELECT 'pg_read_file'::regproc", "REGPROC"),
    ("postgres", "SELECT '<a/>'::xml", "XML"),
    ("postgres", "SELECT region::evil_type FROM orders", "evil_type"),
    ("postgres", "SELECT revenue FROM orders WHERE revenue OPERATOR(public.===) 1", "OPERATOR"),
    ("postgres", "SELECT region FROM orders WHERE region ~ '(a+)+$'", "REGEXP"),
    ("postgres", "SELECT * FROM orders, LATERAL pg_ls_dir('.') AS f", "table-valued function pg_ls_dir()"),
    ("postgres", "SELECT * FROM orders CROSS JOIN LATERAL (SELECT 1) AS x", "LATERAL"),
    ("postgres", "SELECT * FROM ROWS FROM (generate_series(1, 3)) AS g", "generate_series"),
    ("postgres", "SELECT (SELECT setting FROM pg_settings LIMIT 1)", "pg_settings"),
    ("postgres", "SELECT * FROM pg_catalog.pg_authid", "pg_catalog.pg_authid"),
    ("postgres", "SELECT * FROM information_schema.tables", "information_schema.tables"),
    ("postgres", "SELECT * FROM orders WHERE user_id IN (SELECT usesysid FROM pg_user)", "pg_user"),
    ("postgres", "SELECT * FROM orders FOR UPDATE", "LOCK"),
    ("postgres", "DO $$ BEGIN PERFORM pg_sleep(10); END $$", "only SELECT"),
    ("postgres", "COPY orders TO PROGRAM 'id'", "only SELECT"),
    ("postgres", "SET statement_timeout = 0", "only SELECT"),
    ("postgres", "BEGIN READ WRITE", "only SELECT"),
    ("postgres", "SELECT * INTO copy_of_orders FROM orders", "INTO"),
    ("postgres", "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", "DELETE"),
    ("postgres", "SELECT * FROM orders TABLESAMPLE SYSTEM (10)", "TABLESAMPLE"),
    ("postgres", "SELECT ARRAY(SELECT revenue FROM orders)", "array"),
    ("postgres", "SELECT $1", "not allowed"),
    # SQLite: files, extensions, the database's own catalogue.
    ("sqlite", "SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("sqlite", "SELECT readfile('/etc/passwd')", "readfile"),
    ("sqlite", "SELECT writefile('/tmp/x', 'y')", "writefile"),
    ("sqlite", "SELECT edit('x', 'vi')", "edit"),
    ("sqlite", "SELECT fts3_tokenizer('simple')", "fts3_tokenizer"),
    ("sqlite", "SELECT sqlite_version()", "sqlite_version"),
    ("sqlite", "SELECT sqlite_offset(revenue) FROM orders", "sqlite_offset"),
    ("sqlite", "SELECT * FROM pragma_table_info('orders')", "pragma_table_info"),
    ("sqlite", "SELECT * FROM pragma_database_list()", "pragma_database_list"),
    ("sqlite", "SELECT file FROM pragma_database_list", "pragma_database_list"),
    ("sqlite", "SELECT * FROM orders, json_each('[1,2]')", "json_each"),
    ("sqlite", "SELECT * FROM generate_series(1, 1000000000)", "generate_series"),
    ("sqlite", "SELECT * FROM dbstat", "dbstat"),
    ("sqlite", "SELECT * FROM temp.sqlite_master", "temp.sqlite_master"),
    ("sqlite", "SELECT * FROM main.sqlite_master", "main.sqlite_master"),
    ("sqlite", "SELECT * FROM main.orders", "main.orders"),
    ("sqlite", "SELECT likelihood(revenue > 1, 0.5) FROM orders", "likelihood"),
    ("sqlite", "SELECT quote(region) FROM orders", "quote"),
    ("sqlite", "ATTACH DATABASE '/tmp/evil.db' AS evil", "only SELECT"),
    ("sqlite", "VACUUM INTO '/tmp/copy.db'", "only SELECT"),
    ("sqlite", "PRAGMA writable_schema = 1", "only SELECT"),
    ("sqlite", "SELECT * FROM orders INDEXED BY sqlite_autoindex_orders_1", "not allowed"),
    # SQLite reads `x IN name` as a subquery over the table: a boolean oracle on any table.
    ("sqlite", "SELECT COUNT(*) FROM orders WHERE 'users' IN sqlite_master", "IN sqlite_master"),
    (
        "sqlite",
        "SELECT COUNT(*) FROM orders WHERE ('table', 'users', 'users', 2, 'CREATE TABLE users') "
        "IN sqlite_master",
        "IN sqlite_master` is not allowed",
    ),
    ("sqlite", "SELECT COUNT(*) FROM orders WHERE 'hunter2' IN secrets", "IN secrets"),
    ("sqlite", "SELECT COUNT(*) FROM orders WHERE 'x' IN main.secrets", "IN main.secrets"),
    ("sqlite", "SELECT COUNT(*) FROM orders WHERE 'file' IN pragma_database_list", "IN pragma_database_list"),
    ("sqlite", "SELECT COUNT(*) FROM orders WHERE 'main' IN pragma_database_list()", "pragma_database_list"),
    # DuckDB: files, settings, the environment, catalogue functions.
    ("duckdb", "SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("duckdb", "SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv"),
    ("duckdb", "SELECT * FROM read_text('/etc/passwd')", "read_text"),
    ("duckdb", "SELECT * FROM read_blob('/etc/passwd')", "read_blob"),
    ("duckdb", "SELECT * FROM read_parquet('/tmp/x.parquet')", "read_parquet"),
    ("duckdb", "SELECT * FROM read_json('/tmp/x.json')", "read_json"),
    ("duckdb", "SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv"),
    ("duckdb", "SELECT * FROM glob('/*')", "glob"),
    ("duckdb", "SELECT * FROM '/etc/passwd'", "/etc/passwd"),
    ("duckdb", "SELECT * FROM 'orders.csv'", "orders.csv"),
    ("duckdb", "SELECT * FROM query('SELECT * FROM duckdb_settings()')", "query"),
    ("duckdb", "SELECT * FROM query_table('orders')", "query_table"),
    ("duckdb", "SELECT * FROM duckdb_databases()", "duckdb_databases"),
    ("duckdb", "SELECT * FROM duckdb_settings()", "duckdb_settings"),
    ("duckdb", "SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
    ("duckdb", "SELECT * FROM duckdb_tables", "duckdb_tables"),
    ("duckdb", "SELECT * FROM pragma_version()", "pragma_version"),
    ("duckdb", "SELECT * FROM information_schema.tables", "information_schema.tables"),
    ("duckdb", "SELECT * FROM sqlite_master", "sqlite_master"),
    ("duckdb", "SELECT getenv('HOME')", "getenv"),
    ("duckdb", "SELECT getvariable('x')", "getvariable"),
    ("duckdb", "SELECT current_setting('threads')", "current_setting"),
    ("duckdb", "SELECT version()", "version"),
    ("duckdb", "SELECT COLUMNS('.*') FROM orders", "columns"),
    ("duckdb", "SELECT region.upper() FROM orders", "schema-qualified function"),
    ("duckdb", "SELECT [1, 2, 3]", "array"),
    ("duckdb", "SELECT list_transform([1], x -> x + 1)", "list_transform"),
    ("duckdb", "SELECT * FROM orders USING SAMPLE 10", "TABLESAMPLE"),
    ("duckdb", "PIVOT orders ON region USING SUM(revenue)", "only SELECT"),
    ("duckdb", "INSTALL httpfs", "only SELECT"),
    ("duckdb", "LOAD httpfs", "only SELECT"),
    ("duckdb", "SET enable_external_access = true", "only SELECT"),
    ("duckdb", "COPY orders TO '/tmp/orders.csv'", "only SELECT"),
    ("duckdb", "EXPORT DATABASE '/tmp/db'", "not valid SQL"),
    ("duckdb", "SUMMARIZE orders", "only SELECT"),
    ("duckdb", "CALL pragma_version()", "only SELECT"),
    # 3 (what the guard can see of it): a large value from a small statement.
    ("sqlite", "SELECT printf('%.*c', 500000000, 'x')", "printf"),
    ("sqlite", "SELECT format('%.*c', 500000000, 'x')", "format"),
    ("sqlite", "SELECT zeroblob(1000000000)", "zeroblob"),
    ("sqlite", "SELECT randomblob(1000000000)", "randomblob"),
    ("sqlite", "SELECT hex(randomblob(100))", "hex"),
    ("sqlite", "SELECT group_concat(a.region) FROM orders a, orders b", "group_concat"),
    ("duckdb", "SELECT unnest(range(100000000))", "unnest"),
    ("duckdb", "SELECT * FROM range(100000000)", "range"),
    ("duckdb", "SELECT * FROM generate_series(1, 100000000)", "generate_series"),
    ("duckdb", "SELECT * FROM unnest(range(100000000))", "unnest"),
    ("duckdb", "SELECT repeat('x', 1000000000)", "repeat"),
    ("duckdb", "SELECT list(revenue) FROM orders", "array_agg"),
    ("duckdb", "SELECT string_agg(region, ',') FROM orders", "agg"),
    ("duckdb", "SELECT printf('%1000000000d', 1)", "printf"),
    ("postgres", "SELECT repeat('x', 1000000000)", "repeat"),
    ("postgres", "SELECT format('%1000000000s', 'x')", "format"),
    ("postgres", "SELECT generate_series(1, 1000000000)", "generate_series"),
    ("postgres", "SELECT * FROM generate_series(1, 1000000000)", "generate_series"),
    ("postgres", "SELECT unnest(ARRAY[1, 2])", "unnest"),
    ("postgres", "SELECT string_agg(region, ',') FROM orders", "string_agg"),
    ("postgres", "SELECT array_agg(region) FROM orders", "array_agg"),
    ("postgres", "SELECT space(1000000000)", "repeat"),  # sqlglot reads space(n) as repeat(' ', n)
    ("*", "SELECT lpad('x', 1000000000, 'y')", "lpad() needs a literal length"),
    ("*", "SELECT rpad(region, revenue, 'y') FROM orders", "rpad() needs a literal length"),
    (
        "*",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n",
        "WITH RECURSIVE",
    ),
    # SQLite runs a self-referencing CTE as recursive even without the keyword.
    (
        "*",
        "WITH n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n",
        "unknown table 'n'",
    ),
    # 2. Tables: CTEs resolved by scope; no CTE named like a system or schema table.
    ("*", "SELECT * FROM secrets", "unknown table 'secrets'"),
    ("*", "SELECT * FROM orders JOIN secrets ON true", "unknown table 'secrets'"),
    ("*", "SELECT * FROM orders WHERE user_id IN (SELECT user_id FROM secrets)", "unknown table 'secrets'"),
    ("*", "SELECT (SELECT MAX(x) FROM secrets) FROM orders", "unknown table 'secrets'"),
    ("*", "SELECT * FROM orders UNION SELECT * FROM secrets", "unknown table 'secrets'"),
    (
        "*",
        "SELECT * FROM (WITH secrets AS (SELECT 1 AS x) SELECT * FROM secrets) AS a CROSS JOIN secrets",
        "unknown table 'secrets'",
    ),
    (
        "*",
        "SELECT * FROM orders WHERE EXISTS (WITH secrets AS (SELECT 1 AS x) SELECT x FROM secrets) "
        "AND user_id IN (SELECT x FROM secrets)",
        "unknown table 'secrets'",
    ),
    (
        "*",
        "WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1 AS x) SELECT * FROM a",
        "unknown table 'secrets'",
    ),
    (
        "*",
        "(WITH secrets AS (SELECT 1 AS x) SELECT x FROM secrets) UNION SELECT x FROM secrets",
        "unknown table 'secrets'",
    ),
    ("*", "WITH orders AS (SELECT * FROM secrets) SELECT * FROM orders", "named like the table 'orders'"),
    ("*", "WITH Users AS (SELECT 1 AS x) SELECT * FROM users", "named like the table"),
    ("*", "WITH t AS (SELECT 1), t AS (SELECT 2) SELECT * FROM t", "same name"),
    ("postgres", 'WITH "Secrets" AS (SELECT 1 AS x) SELECT * FROM Secrets', "unknown table 'secrets'"),
    ("postgres", 'WITH secrets AS (SELECT 1 AS x) SELECT * FROM "Secrets"', "unknown table 'Secrets'"),
    (
        "postgres",
        'WITH "Secrets" AS (SELECT 1 AS x) SELECT * FROM Secrets /* sqlglot.meta case_sensitive */',
        "unknown table 'secrets'",
    ),
    # 4. The statement itself: size, nesting, count.
    ("*", "SELECT 1 FROM orders WHERE " + " OR ".join(["revenue = 1"] * 2000), "the limit is 20,000"),
    ("*", "SELECT " + "(" * 600 + "1" + ")" * 600, "nested too deeply"),
    ("*", "SELECT 1; SELECT 2", "exactly one statement"),
    ("*", "SELECT 1 /* ; */ ; DELETE FROM users", "exactly one statement"),
    ("*", "DELETE FROM orders", "only SELECT"),
    ("*", "UPDATE orders SET revenue = 0", "only SELECT"),
    ("*", "DROP TABLE orders", "only SELECT"),
    ("*", "CREATE TABLE x AS SELECT * FROM orders", "only SELECT"),
    ("*", "not sql at all (", "not valid SQL"),
]
for _dialect, _names in _SYSTEM_TABLES.items():
    for _name in _names:
        HOSTILE += [
            (_dialect, f"SELECT * FROM {_name}", f"system table '{_name}'"),
            (_dialect, f"WITH {_name} AS (SELECT 1 AS x) SELECT * FROM {_name}", f"system table '{_name}'"),
            (
                _dialect,
                f"SELECT * FROM (WITH {_name} AS (SELECT 1 AS x) SELECT * FROM {_name}) AS a "
                f"CROSS JOIN {_name}",
                f"system table '{_name}'",
            ),
            (
                _dialect,
                f"SELECT * FROM orders WHERE user_id IN "
                f"(WITH {_name} AS (SELECT 1 AS x) SELECT x FROM {_name})",
                f"system table '{_name}'",
            ),
        ]

CORPUS = [
    (dialect, sql, reason)
    for dialects, sql, reason in HOSTILE
    for dialect in (DIALECTS if dialects == "*" else (dialects,))
]


# --------------------------------------------------------------------------------------------------
# Statements a dashboard needs: they pass the guard and run.

LEGIT_ALL = [
    "SELECT region, SUM(revenue) AS total FROM orders GROUP BY region ORDER BY total DESC",
    "SELECT COUNT(*) FROM orders",
    "SELECT COUNT(DISTINCT user_id) AS buyers FROM orders WHERE status = 'completed'",
    "SELECT p.category, AVG(o.revenue) AS avg_revenue FROM orders AS o "
    "JOIN products AS p ON p.product_id = o.product_id GROUP BY p.category",
    "WITH spend AS (SELECT user_id, SUM(revenue) AS r FROM orders GROUP BY user_id) "
    "SELECT u.plan, AVG(spend.r) FROM spend JOIN users AS u ON u.user_id = spend.user_id GROUP BY u.plan",
    "WITH a AS (SELECT region, revenue FROM orders), b AS (SELECT region, SUM(revenue) AS s FROM a "
    "GROUP BY region) SELECT * FROM b WHERE s > (SELECT AVG(s) FROM b)",
    "WITH big AS (SELECT user_id FROM orders WHERE revenue > 500) "
    "SELECT COUNT(*) FROM users WHERE user_id IN (SELECT user_id FROM big)",
    "SELECT region, revenue, ROW_NUMBER() OVER (PARTITION BY region ORDER BY revenue DESC) AS rn FROM orders",
    "SELECT region, total, RANK() OVER (ORDER BY total DESC), LAG(total) OVER (ORDER BY region), "
    "SUM(total) OVER (ORDER BY region ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
    "FROM (SELECT region, SUM(revenue) AS total FROM orders GROUP BY region) AS s",
    "SELECT status, COUNT(*), ROUND(AVG(discount), 2), MIN(revenue), MAX(revenue) FROM orders "
    "GROUP BY status",
    "SELECT CASE WHEN revenue > 100 THEN 'big' WHEN revenue > 10 THEN 'medium' ELSE 'small' END AS size, "
    "COUNT(*) FROM orders GROUP BY 1",
    "SELECT COALESCE(channel, 'unknown') AS channel, NULLIF(quantity, 0) FROM orders",
    "SELECT UPPER(region), LOWER(channel), LENGTH(status), SUBSTR(region, 1, 3), TRIM(channel), "
    "REPLACE(region, ' ', '_'), region || '/' || channel FROM orders",
    "SELECT CAST(quantity AS REAL) / 2, ABS(discount), quantity % 3, -revenue, ROUND(revenue) FROM orders",
    "SELECT * FROM orders WHERE user_id IN (SELECT user_id FROM users WHERE region = 'Europe')",
    "SELECT region, SUM(revenue) FROM orders GROUP BY region HAVING SUM(revenue) > 0",
    "SELECT user_id FROM orders UNION SELECT user_id FROM users",
    "SELECT user_id FROM orders INTERSECT SELECT user_id FROM users",
    "SELECT user_id FROM users EXCEPT SELECT user_id FROM orders",
    "SELECT o.order_id FROM orders AS o WHERE EXISTS (SELECT 1 FROM users AS u WHERE u.user_id = o.user_id)",
    "SELECT * FROM orders WHERE revenue BETWEEN 10 AND 20 AND region LIKE 'E%' AND channel IS NOT NULL",
    "SELECT * FROM orders WHERE region IN ('Europe', 'APAC') AND NOT status = 'cancelled' ORDER BY revenue "
    "DESC LIMIT 10 OFFSET 5",
    "SELECT COUNT(*) FILTER (WHERE status = 'completed') FROM orders",
    "SELECT AVG(CASE WHEN status = 'refunded' THEN 1.0 ELSE 0 END) * 100 AS refund_rate FROM orders",
    "SELECT feature, AVG(duration_seconds), MAX(started_at) FROM sessions GROUP BY feature",
    "SELECT name, price FROM products ORDER BY price DESC LIMIT 5",
]
LEGIT: dict[str, list[str]] = {
    "sqlite": [
        "SELECT strftime('%Y-%m', order_date) AS month, SUM(revenue) FROM orders GROUP BY month",
        "SELECT strftime('%Y-%m-%d', order_date, 'weekday 0', '-6 days') AS week, COUNT(*) FROM orders "
        "GROUP BY week",
        "SELECT strftime('%Y', order_date) || '-Q' || "
        "((CAST(strftime('%m', order_date) AS INTEGER) + 2) / 3) AS quarter, SUM(revenue) "
        "FROM orders GROUP BY quarter",
        "SELECT julianday('2025-01-01') - julianday(order_date) AS age_days FROM orders",
        "SELECT date(order_date, '+7 days'), datetime(started_at), time(started_at) FROM orders JOIN "
        "sessions ON sessions.user_id = orders.user_id LIMIT 5",
        "SELECT total(revenue), ifnull(channel, '-'), iif(revenue > 100, 'big', 'small'), "
        "instr(region, 'A'), max(quantity, 2), min(quantity, 2) FROM orders "
        "GROUP BY channel, region, quantity",
        "SELECT typeof(revenue), date('now') FROM orders LIMIT 1",
    ],
    "duckdb": [
        "SELECT strftime(order_date, '%Y-%m') AS month, SUM(revenue) FROM orders GROUP BY month",
        "SELECT strftime(date_trunc('week', order_date), '%Y-%m-%d') AS week, COUNT(*) FROM orders "
        "GROUP BY 1",
        "SELECT strftime(order_date, '%Y') || '-Q' || CAST(quarter(order_date) AS VARCHAR), SUM(revenue) "
        "FROM orders GROUP BY 1",
        "SELECT date_trunc('month', order_date), date_part('year', order_date), year(order_date), "
        "month(order_date), dayname(order_date), date_diff('day', order_date, DATE '2025-01-01') FROM orders",
        "SELECT median(revenue), quantile_cont(revenue, 0.9), stddev(revenue), corr(quantity, revenue), "
        "arg_max(region, revenue), approx_count_distinct(user_id), bool_and(revenue > 0) FROM orders",
        "SELECT region, revenue FROM orders QUALIFY ROW_NUMBER() OVER (PARTITION BY region "
        "ORDER BY revenue DESC) <= 3",
        "SELECT TRY_CAST(o.region AS INTEGER), o.order_date::DATE + INTERVAL 1 DAY, epoch(s.started_at), "
        "age(TIMESTAMP '2025-01-01', s.started_at) FROM orders AS o JOIN sessions AS s USING (user_id) "
        "LIMIT 5",
        "SELECT o.region ILIKE 'eu%', starts_with(o.region, 'E'), contains(o.region, 'p'), "
        "left(o.region, 2), concat(o.region, o.channel), split_part(u.email, '@', 2) "
        "FROM orders AS o JOIN users AS u USING (user_id)",
        "SELECT region, channel, SUM(revenue) FROM orders GROUP BY ROLLUP (region, channel)",
        "SELECT lpad(CAST(quantity AS TEXT), 3, '0') FROM orders",
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, label)",
    ],
    "postgres": [
        "SELECT to_char(order_date, 'YYYY-MM') AS month, SUM(revenue) FROM orders GROUP BY 1",
        "SELECT to_char(date_trunc('week', order_date), 'YYYY-MM-DD') AS week, COUNT(*) FROM orders "
        "GROUP BY 1",
        "SELECT to_char(order_date, 'YYYY-\"Q\"Q'), SUM(revenue) FROM orders GROUP BY 1",
        "SELECT EXTRACT(YEAR FROM order_date), date_part('dow', order_date), order_date::timestamp, "
        "age(DATE '2025-01-01', order_date), make_date(2024, 1, 1), now() - INTERVAL '30 days' FROM orders",
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY revenue), stddev(revenue), "
        "corr(quantity, revenue), bool_and(revenue > 0), every(quantity > 0) FROM orders",
        "SELECT initcap(o.region), split_part(u.email, '@', 2), strpos(u.email, '@'), btrim(u.name), "
        "CAST(o.revenue AS NUMERIC(10, 2)), o.revenue::int FROM orders AS o JOIN users AS u USING (user_id)",
        "SELECT region, channel, SUM(revenue) FROM orders GROUP BY ROLLUP (region, channel)",
        "SELECT lpad(CAST(quantity AS TEXT), 3, '0') FROM orders",
        "SELECT DISTINCT ON (region) region, revenue FROM orders ORDER BY region, revenue DESC",
        "SELECT region, SUM(revenue) FROM orders WHERE order_date >= DATE '2024-06-01' "
        "AND order_date < CURRENT_DATE GROUP BY region",
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, label)",
    ],
}
# psycopg reads a % in the statement as a placeholder (the backend passes no parameters), so on
# PostgreSQL a LIKE pattern or a modulo passes the guard and then fails in the driver: a backend bug,
# marked here so the test says so and turns red once it is fixed.
_PG_PERCENT = pytest.mark.xfail(reason="psycopg takes % for a placeholder", strict=True)
LEGIT_CASES = [
    pytest.param(d, sql, marks=_PG_PERCENT) if d == "postgres" and "%" in sql else (d, sql)
    for d in DIALECTS
    for sql in LEGIT_ALL + LEGIT[d]
]


# --------------------------------------------------------------------------------------------------
# The three engines, with the same tables.


@pytest.fixture(scope="module")
def sqlite_source(sample_path: Path) -> Iterator[DataSource]:
    source = DataSource(sample_path)
    yield source
    source.close()


@pytest.fixture(scope="module")
def duckdb_source(sample_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataSource]:
    lite = sqlite3.connect(sample_path)
    tables = {}
    for table in TABLES:
        cur = lite.execute(f"SELECT * FROM {table}")
        tables[table] = ([d[0] for d in cur.description], cur.fetchall())
    lite.close()
    source = DataSource(write_csv_tables(tmp_path_factory.mktemp("guard-csv"), tables))
    yield source
    source.close()


@pytest.fixture(scope="module")
def postgres_source(sample_path: Path) -> Iterator[DataSource]:
    try:
        conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"postgres is not running: {exc}")
        pytest.skip(f"postgres is not running: {exc}")
    lite = sqlite3.connect(sample_path)
    with conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {_PG_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {_PG_SCHEMA}")
        for table, ddl in _PG_DDL.items():
            conn.execute(f"CREATE TABLE {_PG_SCHEMA}.{table} ({ddl})")
            rows = lite.execute(f"SELECT * FROM {table}").fetchall()
            if table == "users":
                rows = [(*r[:7], bool(r[7])) for r in rows]
            with conn.cursor().copy(f"COPY {_PG_SCHEMA}.{table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    lite.close()
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    source = DataSource(f"{url}?options=-csearch_path%3D{_PG_SCHEMA}")
    yield source
    source.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {_PG_SCHEMA} CASCADE")


def _source(request: pytest.FixtureRequest, dialect: str) -> DataSource:
    source: DataSource = request.getfixturevalue(f"{dialect}_source")
    assert source.dialect == dialect
    return source


# --------------------------------------------------------------------------------------------------


def test_the_corpus_is_large_and_covers_every_dialect() -> None:
    assert len(CORPUS) >= 200
    for dialect in DIALECTS:
        assert sum(d == dialect for d, _, _ in CORPUS) >= 60


@pytest.mark.parametrize(("dialect", "sql", "reason"), CORPUS)
def test_hostile_statement_is_refused_with_a_reason(dialect: str, sql: str, reason: str) -> None:
    with pytest.raises(SQLRejected) as info:
        guard_sql(sql, TABLES, dialect, 100)
    assert reason.lower() in info.value.reason.lower(), info.value.reason


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_hostile_statement_reaches_the_database(
    request: pytest.FixtureRequest, dialect: str, sample_path: Path
) -> None:
    """The corpus through each engine's real DataSource (PostgreSQL as a superuser): all refused, and the
    engine is as it was: same file, same rows, no large object, the other session alive."""
    source = _source(request, dialect)
    before_file = hashlib.sha256(sample_path.read_bytes()).hexdigest()
    watcher = psycopg.connect(POSTGRES_URL, autocommit=True) if dialect == "postgres" else None
    try:
        if watcher is not None:
            state = _pg_state(watcher)
        counts = {t: source.run_sync(f"SELECT COUNT(*) FROM {t}").rows for t in TABLES}
        for d, sql, _ in CORPUS:
            if d == dialect:
                with pytest.raises(SQLRejected):
                    source.run_sync(sql)
        assert {t: source.run_sync(f"SELECT COUNT(*) FROM {t}").rows for t in TABLES} == counts
        if watcher is not None:
            assert _pg_state(watcher) == state  # the watcher's own session survived to answer
    finally:
        if watcher is not None:
            watcher.close()
    assert hashlib.sha256(sample_path.read_bytes()).hexdigest() == before_file


def _pg_state(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    row = conn.execute("SELECT (SELECT COUNT(*) FROM pg_largeobject_metadata), pg_backend_pid()").fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize(("dialect", "sql"), LEGIT_CASES)
def test_dashboard_statement_passes_and_runs(request: pytest.FixtureRequest, dialect: str, sql: str) -> None:
    source = _source(request, dialect)
    guarded = source.guard(sql)
    assert source.guard(guarded) == guarded  # what the guard renders passes it again, unchanged
    result = source.run_sync(sql)
    assert result.columns and len(result.rows) <= source.row_limit


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_length_cap_is_checked_before_parsing(monkeypatch: pytest.MonkeyPatch, dialect: str) -> None:
    import streamforge.data.sqlguard as sqlguard

    def no_parse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("parsed a statement over the cap")

    long = "SELECT 1 FROM orders WHERE " + "revenue = 1 OR " * (MAX_SQL_CHARS // 15) + "revenue = 2"
    assert len(long) > MAX_SQL_CHARS
    monkeypatch.setattr(sqlguard.sqlglot, "parse", no_parse)
    with pytest.raises(SQLRejected, match="limit is 20,000"):
        guard_sql(long, TABLES, dialect, 100)


def test_a_statement_just_under_the_cap_passes(sqlite_source: DataSource) -> None:
    ids = ", ".join(str(i) for i in range(1, 3500))
    sql = f"SELECT COUNT(*) FROM orders WHERE order_id IN ({ids})"
    assert len(sql) < MAX_SQL_CHARS
    assert sqlite_source.run_sync(sql).rows == [(3499,)]
