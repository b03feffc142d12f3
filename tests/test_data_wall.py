"""The connection is a second wall: write and escape statements sent straight to each backend.

The guard is switched off here: every statement goes to the backend's own ``execute``, as a statement
the guard wrongly let by would. Each one must fail in the engine (or, for the few listed as able to
run, do nothing), and afterwards nothing has changed: the SQLite and DuckDB files hash the same, every
table has its rows, no file appeared, DuckDB's settings are as they were, and in PostgreSQL (as the
CI's superuser, allowed with ``allow_writable_role``, and as a SELECT-only role the test creates) no
large object, no marker file of ``COPY ... TO PROGRAM`` and the watcher's session is alive.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
from sqlalchemy.engine import make_url

from streamforge.config import Settings
from streamforge.data.source import DataSource, QueryError, WritableRoleError
from tests.conftest import POSTGRES_URL, REQUIRE_SERVICES
from tests.fixtures import dbs
from tests.fixtures.csvdir import write_csv_tables

sample_path = dbs.sample_path

TABLES = ("orders", "users", "products", "sessions")
MARKER = f"/tmp/streamforge-wall-{uuid.uuid4().hex}"  # what COPY ... TO PROGRAM would create

SQLITE_CORPUS = [
    "DELETE FROM orders",
    "DELETE FROM orders RETURNING *",
    "UPDATE orders SET revenue = 0",
    "INSERT INTO orders (order_id) VALUES (999999)",
    "INSERT INTO orders SELECT * FROM orders",
    "REPLACE INTO users (user_id) VALUES (1)",
    "WITH d AS (SELECT 1) DELETE FROM orders",
    "DROP TABLE orders",
    "CREATE TABLE pwned (x)",
    "CREATE TEMP TABLE pwned (x)",
    "CREATE TEMP VIEW v AS SELECT * FROM sqlite_master",
    "CREATE VIEW v AS SELECT 1",
    "CREATE INDEX i ON orders (region)",
    "CREATE TRIGGER t AFTER INSERT ON orders BEGIN DELETE FROM orders; END",
    "ALTER TABLE orders ADD COLUMN x",
    "ALTER TABLE orders RENAME TO o2",
    "ATTACH DATABASE '{tmp}/evil.db' AS evil",
    "ATTACH 'file:{tmp}/evil2.db?mode=rwc' AS evil",
    "ATTACH ':memory:' AS m",
    "DETACH DATABASE main",
    "VACUUM",
    "VACUUM INTO '{tmp}/copy.db'",
    "VACUUM main INTO 'file:{tmp}/copy2.db'",
    "REINDEX",
    "ANALYZE",
    "SAVEPOINT a",
    "PRAGMA writable_schema = 1",
    "PRAGMA user_version = 7",
    "PRAGMA journal_mode = WAL",
    "PRAGMA query_only = 0",
    "PRAGMA database_list",
    "PRAGMA table_info(orders)",
    "SELECT * FROM sqlite_master",
    "SELECT sql FROM sqlite_schema",
    "SELECT * FROM temp.sqlite_master",
    "SELECT * FROM main.sqlite_master",
    "SELECT COUNT(*) FROM orders WHERE 'users' IN sqlite_master",
    "WITH orders AS (SELECT * FROM sqlite_master) SELECT * FROM orders",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM pragma_table_info('orders')",
    "SELECT * FROM dbstat",
    "SELECT * FROM json_each('[1, 2]')",
    "SELECT load_extension('{tmp}/evil')",
    "SELECT printf('%.*c', 100000000, 'x')",
    "SELECT format('%.*c', 100000000, 'x')",
    "SELECT zeroblob(1000000000)",
    "SELECT randomblob(1000)",
    "SELECT sqlite_version()",
    "SELECT quote(region) FROM orders",
    "SELECT * FROM orders WHERE likelihood(revenue > 1, 0.5)",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n",
    "WITH n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n",
    "SELECT 1; DELETE FROM orders",
    "SELECT * FROM orders, sqlite_temp_master",
]

DUCKDB_CORPUS = [
    "DELETE FROM orders",
    "UPDATE orders SET revenue = 0",
    "INSERT INTO orders (order_id) VALUES (999999)",
    "INSERT INTO orders SELECT * FROM orders",
    "DROP TABLE orders",
    "CREATE TABLE pwned AS SELECT 1 AS x",
    "CREATE VIEW v AS SELECT 1",
    "CREATE SCHEMA s",
    "CREATE SEQUENCE q",
    "CREATE MACRO m() AS 1",
    "ALTER TABLE orders ADD COLUMN x INTEGER",
    "ALTER TABLE orders RENAME TO o2",
    "TRUNCATE orders",
    "SELECT 1; DELETE FROM orders",
    "BEGIN; DELETE FROM orders; COMMIT",
    "ATTACH '{tmp}/evil.duckdb' AS evil",
    "ATTACH '{tmp}/evil.sqlite' AS evil (TYPE sqlite)",
    "DETACH data",
    "COPY orders TO '{tmp}/out.csv'",
    "COPY (SELECT * FROM orders) TO '{tmp}/out.parquet' (FORMAT parquet)",
    "COPY orders FROM '/etc/passwd'",
    "EXPORT DATABASE '{tmp}/export'",
    "IMPORT DATABASE '{tmp}'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '{tmp}/evil.duckdb_extension'",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "SET memory_limit = '64GB'",
    "SET threads = 64",
    "SET max_temp_directory_size = '1TB'",
    "SET temp_directory = '{tmp}'",
    "RESET memory_limit",
    "SET profiling_output = '{tmp}/profile.json'",
    "PRAGMA memory_limit = '64GB'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('{folder}/orders.csv')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_json('/etc/hostname')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
]

# Runs on a read-only database and does nothing.
DUCKDB_MAY_RUN = ["CHECKPOINT", "VACUUM"]

PG_CORPUS = [
    "DELETE FROM orders",
    "UPDATE orders SET revenue = 0",
    "INSERT INTO orders (order_id) VALUES (-1)",
    "TRUNCATE orders",
    "DROP TABLE orders",
    "CREATE TABLE pwned (x int)",
    "CREATE TEMP TABLE pwned (x int)",
    "ALTER TABLE orders ADD COLUMN x int",
    "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
    "SELECT * INTO pwned FROM orders",
    "SELECT * FROM orders FOR UPDATE",
    "BEGIN READ WRITE; DELETE FROM orders; COMMIT",
    "COMMIT; DELETE FROM orders",
    "COMMIT; BEGIN READ WRITE; DELETE FROM orders; COMMIT",
    "ROLLBACK; SET default_transaction_read_only = off; DELETE FROM orders; COMMIT",
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET statement_timeout = 0",
    "SET transaction_read_only = off",
    "SELECT 1; DELETE FROM orders",
    "COPY orders TO PROGRAM 'touch " + MARKER + "'",
    "COPY (SELECT 1) TO '" + MARKER + "'",
    "COPY orders FROM PROGRAM 'id'",
    "DO $$ BEGIN DELETE FROM orders; END $$",
    "PREPARE p AS DELETE FROM orders",
    "VACUUM orders",
    "ANALYZE orders",
    "ALTER SYSTEM SET work_mem = '1GB'",
    "CREATE EXTENSION IF NOT EXISTS dblink",
    "LISTEN x",
    "NOTIFY x",
    "LOCK TABLE orders",
    "SELECT pg_reload_conf(); DELETE FROM orders",
]
# Statements PostgreSQL runs in a read-only transaction for a superuser: they may succeed, and must
# leave nothing behind (the transaction is rolled back: a session setting is undone, a large object
# never existed). That a superuser can do this much is why the service refuses one by default.
PG_MAY_RUN = [
    "SELECT lo_import('/etc/hostname')",
    "SELECT lo_from_bytea(0, 'x')",
    "SELECT lo_create(0)",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('statement_timeout', '0', false)",
]
# A SELECT-only role: what a superuser could do, refused by the role itself.
PG_READER_CORPUS = [
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "SELECT * FROM pg_authid",
    "SELECT * FROM pg_shadow",
    "SELECT pg_reload_conf()",
]
PG_READER_MAY_RUN = [
    *PG_MAY_RUN,
    # False with a warning, or an error: either way the watcher's session must survive.
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _send(source: DataSource, sql: str) -> None:
    """``sql`` straight at the backend, the guard off; it must fail in the engine."""
    with pytest.raises(QueryError):
        source._backend.execute(sql, 100, 10.0)


def test_the_wall_corpus_is_counted() -> None:
    # Counted in docs/security.md: keep them in step.
    assert len(SQLITE_CORPUS) == 54
    assert len(DUCKDB_CORPUS) + len(DUCKDB_MAY_RUN) == 45
    assert len(PG_CORPUS) + len(PG_MAY_RUN) == 38
    assert len(PG_READER_CORPUS) + len(PG_READER_MAY_RUN) == 11


# --------------------------------------------------------------------------------------------------
# SQLite


def test_sqlite_connection_refuses_every_write_and_escape(sample_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "db" / "shop.sqlite"
    path.parent.mkdir()
    shutil.copy(sample_path, path)
    source = DataSource(path)
    counts = {t: source._backend.execute(f"SELECT COUNT(*) FROM {t}", 1, 10.0).rows for t in TABLES}
    before = _tree(tmp_path)
    for sql in SQLITE_CORPUS:
        _send(source, sql.format(tmp=tmp_path))
    assert {t: source._backend.execute(f"SELECT COUNT(*) FROM {t}", 1, 10.0).rows for t in TABLES} == counts
    source.close()
    assert _tree(tmp_path) == before  # same file, byte for byte; no evil.db, no copy.db, no -wal
    lite = sqlite3.connect(path)
    try:
        assert lite.execute("PRAGMA user_version").fetchone() == (0,)
        names = {r[0] for r in lite.execute("SELECT name FROM sqlite_master")}
    finally:
        lite.close()
    assert "pwned" not in names and "v" not in names and "i" not in names


def test_sqlite_authorizer_refusal_names_the_function(sample_source: DataSource) -> None:
    with pytest.raises(QueryError, match="printf"):
        sample_source._backend.execute("SELECT printf('%d', 1)", 1, 10.0)
    with pytest.raises(QueryError, match="sqlite_master"):
        sample_source._backend.execute("SELECT name FROM sqlite_master", 1, 10.0)


sample_source = dbs.sample_source


# --------------------------------------------------------------------------------------------------
# DuckDB: a database file and a folder of CSV files


def _duck_tables(sample_path: Path) -> dict[str, tuple[list[str], list[tuple[object, ...]]]]:
    lite = sqlite3.connect(sample_path)
    tables = {}
    for table in TABLES:
        cur = lite.execute(f"SELECT * FROM {table}")
        tables[table] = ([d[0] for d in cur.description], cur.fetchall())
    lite.close()
    return tables


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_duckdb_connection_refuses_every_write_and_escape(
    kind: str, sample_path: Path, tmp_path: Path
) -> None:
    folder = write_csv_tables(tmp_path / "csv", _duck_tables(sample_path))
    if kind == "file":
        location = tmp_path / "shop.duckdb"
        conn = duckdb.connect(str(location))
        for table in TABLES:
            conn.execute(f"CREATE TABLE {table} AS SELECT * FROM read_csv_auto('{folder / table}.csv')")
        conn.close()
    else:
        location = folder
    source = DataSource(location)
    settings_sql = (
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('enable_external_access'), current_setting('lock_configuration')"
    )
    settings = source._backend.execute(settings_sql, 1, 10.0).rows
    assert settings[0][2:] == (False, True)
    counts = {t: source._backend.execute(f"SELECT COUNT(*) FROM {t}", 1, 10.0).rows for t in TABLES}
    before = _tree(tmp_path)
    for sql in DUCKDB_CORPUS:
        _send(source, sql.format(tmp=tmp_path, folder=folder))
    for sql in DUCKDB_MAY_RUN:
        source._backend.execute(sql, 100, 10.0)
    assert source._backend.execute(settings_sql, 1, 10.0).rows == settings
    assert {t: source._backend.execute(f"SELECT COUNT(*) FROM {t}", 1, 10.0).rows for t in TABLES} == counts
    assert source.tables == list(TABLES) or set(source.tables) == set(TABLES)
    source.close()
    assert _tree(tmp_path) == before


def test_duckdb_folder_copy_is_removed_on_close(sample_path: Path, tmp_path: Path) -> None:
    source = DataSource(write_csv_tables(tmp_path / "csv", _duck_tables(sample_path)))
    work = source._backend._work  # type: ignore[attr-defined]
    assert work.exists()
    source.close()
    assert not work.exists()


# --------------------------------------------------------------------------------------------------
# PostgreSQL: the CI's superuser (allowed explicitly) and a SELECT-only role

_SCHEMA = "streamforge_wall_test"
_READER = "streamforge_wall_reader"


def _url(user: str | None = None) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    if user is not None:
        url = url.set(username=user, password=None)
    text = url.render_as_string(hide_password=False)
    return f"{text}?options=-csearch_path%3D{_SCHEMA}"


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[None]:
    try:
        conn = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"postgres is not running: {exc}")
        pytest.skip(f"postgres is not running: {exc}")
    with conn:
        _drop(conn)
        conn.execute(f"CREATE SCHEMA {_SCHEMA}")
        for table in TABLES:
            conn.execute(
                f"CREATE TABLE {_SCHEMA}.{table} AS SELECT g AS order_id, "
                "g * 1.5 AS revenue, 'r' || (g % 4) AS region FROM generate_series(1, 500) AS g"
            )
        # The SELECT-only role of docs/security.md.
        conn.execute(f"CREATE ROLE {_READER} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {_SCHEMA} TO {_READER}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {_SCHEMA} TO {_READER}")
    yield
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        _drop(conn)


def _drop(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {_SCHEMA} CASCADE")
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (_READER,)).fetchone()
    if exists:
        conn.execute(f"DROP OWNED BY {_READER}")
        conn.execute(f"DROP ROLE {_READER}")


def _pg_state(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    row = conn.execute(
        "SELECT (SELECT COUNT(*) FROM pg_largeobject_metadata), pg_backend_pid(), "
        f"(SELECT COUNT(*) FROM pg_tables WHERE schemaname = '{_SCHEMA}'), "
        + ", ".join(f"(SELECT COUNT(*) FROM {_SCHEMA}.{t})" for t in TABLES)
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("role", ["superuser", "reader"])
def test_postgres_connection_refuses_every_write_and_escape(pg_schema: None, role: str) -> None:
    reader = role == "reader"
    # The superuser needs the explicit allow (the service refuses it by default, see below).
    source = DataSource(_url(_READER if reader else None), allow_writable_role=not reader)
    watcher = psycopg.connect(POSTGRES_URL, autocommit=True)
    try:
        state = _pg_state(watcher)
        corpus = PG_CORPUS + (PG_READER_CORPUS if reader else [])
        for sql in corpus:
            _send(source, sql)
        for sql in PG_READER_MAY_RUN if reader else PG_MAY_RUN:
            with contextlib.suppress(QueryError):
                source._backend.execute(sql, 100, 10.0)
        # A setting changed by a statement above died with its rolled-back transaction.
        _send(source, "DELETE FROM orders")
        assert source._backend.execute(
            "SELECT current_setting('default_transaction_read_only')", 1, 10.0
        ).rows == [("on",)]
        assert _pg_state(watcher) == state  # rows, tables, large objects; the watcher's session lives
    finally:
        watcher.close()
        source.close()
    assert not Path(MARKER).exists()


def test_postgres_refuses_a_writable_role_at_start(pg_schema: None, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(WritableRoleError, match="superuser"):
        DataSource(_url(), allow_writable_role=False)
    settings = Settings(database_url=_url(), _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(WritableRoleError, match="STREAMFORGE_ALLOW_WRITABLE_ROLE"):
        DataSource.from_settings(settings)
    allowed = Settings(database_url=_url(), allow_writable_role=True, _env_file=None)  # type: ignore[call-arg]
    with caplog.at_level(logging.WARNING, logger="streamforge.data.source"):
        source = DataSource.from_settings(allowed)
    source.close()
    assert any("can do more than read" in r.getMessage() for r in caplog.records)
    # The SELECT-only role starts without the setting, and without a warning about the role.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamforge.data.source"):
        reader = DataSource.from_settings(Settings(database_url=_url(_READER), _env_file=None))  # type: ignore[call-arg]
    assert reader.run_sync("SELECT COUNT(*) FROM orders").rows == [(500,)]
    reader.close()
    assert not any("can do more than read" in r.getMessage() for r in caplog.records)


def test_postgres_a_role_with_one_write_grant_is_refused(pg_schema: None) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"GRANT INSERT ON {_SCHEMA}.orders TO {_READER}")
    try:
        with pytest.raises(WritableRoleError, match="INSERT"):
            DataSource(_url(_READER), allow_writable_role=False)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"REVOKE INSERT ON {_SCHEMA}.orders FROM {_READER}")
