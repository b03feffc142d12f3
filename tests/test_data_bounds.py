"""Model SQL held to time and size bounds by the engine itself, the guard switched off.

Each statement here would run for minutes or allocate gigabytes; sent straight to the backend, it ends
in a :class:`QueryError` that names the bound. Time bounds are checked against a ceiling far above the
limit (the statement alone would take minutes), never against a budget tuned to a quiet machine.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from streamforge.config import Settings
from streamforge.data.source import Bounds, DataSource, QueryError, _Deadline, _fetch
from tests.conftest import POSTGRES_URL, REQUIRE_SERVICES
from tests.fixtures import dbs
from tests.fixtures.csvdir import write_csv_tables

sample_path = dbs.sample_path

CEILING = 30.0  # seconds: far above every limit below, far below what the statements would take
SLOW_SQLITE = "SELECT COUNT(*) FROM orders AS a CROSS JOIN orders AS b CROSS JOIN orders AS c"
# 10 ** 9 characters from a 150-character statement, with functions the guard allows
HUGE_SQLITE = "SELECT " + "replace(" * 9 + "'x'" + ", 'x', 'xxxxxxxxxx')" * 9
# 100,000 characters a row
WIDE_SQLITE = "SELECT " + "replace(" * 5 + "'x'" + ", 'x', 'xxxxxxxxxx')" * 5 + " FROM orders LIMIT 1000"


def _timed(run: Any) -> tuple[QueryError, float]:
    start = time.monotonic()
    with pytest.raises(QueryError) as info:
        run()
    return info.value, time.monotonic() - start


def test_fetch_stops_at_the_byte_budget_before_reading_the_rest() -> None:
    batches: list[int] = []

    def fetchmany(size: int) -> Sequence[tuple[Any, ...]]:
        batches.append(size)
        return [("x" * 1000,)] * size

    with pytest.raises(QueryError, match="larger than 10,000 bytes"):
        _fetch(fetchmany, 1_000_000, 10_000, _Deadline(60.0))
    assert len(batches) == 1  # one batch of 64 rows, not a million rows loaded whole


def test_settings_carry_the_bounds(tmp_path: Path, sample_path: Path) -> None:
    shutil.copy(sample_path, tmp_path / "sample.sqlite")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'sample.sqlite'}",
        sql_max_result_bytes=123_456,
        sql_memory_limit="100MB",
        sql_threads=1,
        sql_temp_limit="50MB",
        sql_work_mem="4MB",
        _env_file=None,
    )  # type: ignore[call-arg]
    source = DataSource.from_settings(settings)
    assert source.bounds == Bounds(123_456, "100MB", 1, "50MB", "4MB")
    source.close()
    with pytest.raises(ValueError):
        Settings(sql_memory_limit="lots", _env_file=None)  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------------
# SQLite: progress handler at the deadline, SQLITE_LIMIT_LENGTH, the byte budget


def test_sqlite_statement_stops_at_the_deadline(sample_path: Path) -> None:
    source = DataSource(sample_path, timeout=0.3)
    error, elapsed = _timed(lambda: source._backend.execute(SLOW_SQLITE, 10, 0.3))
    assert "time limit of 0.3 s" in str(error) and elapsed < CEILING
    source.close()


def test_sqlite_value_length_is_bounded(sample_path: Path) -> None:
    source = DataSource(sample_path, bounds=Bounds(max_result_bytes=1_000_000))
    with pytest.raises(QueryError, match="too big"):
        source._backend.execute(HUGE_SQLITE, 10, 60.0)
    # and through the guard, which lets replace() by: the engine is the bound
    with pytest.raises(QueryError, match="too big"):
        source.run_sync(HUGE_SQLITE)
    source.close()


def test_sqlite_answer_is_held_to_the_byte_budget(sample_path: Path) -> None:
    source = DataSource(sample_path, bounds=Bounds(max_result_bytes=1_000_000))
    with pytest.raises(QueryError, match="larger than 1,000,000 bytes"):
        source._backend.execute(WIDE_SQLITE, 1000, 60.0)
    assert len(source._backend.execute(WIDE_SQLITE, 5, 60.0).rows) == 5  # five rows fit
    source.close()


# --------------------------------------------------------------------------------------------------
# DuckDB: memory_limit, threads, max_temp_directory_size, interrupt at the deadline


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DataSource]:
    folder = write_csv_tables(tmp_path / "csv", {"t": (["i", "s"], [(i, "x" * 10) for i in range(100)])})
    source = DataSource(folder, bounds=Bounds(memory_limit="100MB", threads=1, temp_limit="50MB"))
    yield source
    source.close()


def test_duckdb_settings_are_the_bounds(duck: DataSource) -> None:
    rows = duck._backend.execute(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('max_temp_directory_size')",
        1,
        10.0,
    ).rows
    assert rows == [("95.3 MiB", 1, "47.6 MiB")]


def test_duckdb_statement_is_interrupted_at_the_deadline(duck: DataSource) -> None:
    # Not unnest(range(1e8)), the case: DuckDB builds that list in one step, outside
    # memory_limit and deaf to interrupt() (7 GB, about 20 s here); only the guard refuses it today.
    sql = "SELECT COUNT(*) FROM range(100000000) AS a, range(100000) AS b"
    error, elapsed = _timed(lambda: duck._backend.execute(sql, 10, 0.5))
    assert "time limit of 0.5 s" in str(error) and elapsed < CEILING


def test_duckdb_memory_and_spill_are_bounded(duck: DataSource) -> None:
    with pytest.raises(QueryError, match="Out of Memory"):
        duck._backend.execute("SELECT list(i) FROM range(100000000) AS r(i)", 10, 60.0)
    with pytest.raises(QueryError, match="Out of Memory"):  # spilling stops at max_temp_directory_size
        duck._backend.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT CAST(i AS VARCHAR) || 'xxxxxxxxxxxxxxxxx' "
            "FROM range(30000000) AS r(i))",
            10,
            60.0,
        )


def test_duckdb_answer_is_held_to_the_byte_budget(tmp_path: Path) -> None:
    folder = write_csv_tables(tmp_path / "csv", {"t": (["i"], [(i,) for i in range(10)])})
    source = DataSource(folder, bounds=Bounds(max_result_bytes=1_000_000))
    with pytest.raises(QueryError, match="larger than 1,000,000 bytes"):
        source._backend.execute("SELECT repeat('x', 100000) FROM range(1000)", 1000, 60.0)
    source.close()


# --------------------------------------------------------------------------------------------------
# PostgreSQL: statement_timeout, a cancel at the deadline, work_mem, temp_file_limit, the byte budget


def _pg_url() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def pg_up() -> None:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"postgres is not running: {exc}")
        pytest.skip(f"postgres is not running: {exc}")


def test_postgres_statement_timeout(pg_up: None) -> None:
    source = DataSource(_pg_url(), timeout=0.5)
    error, elapsed = _timed(lambda: source._backend.execute("SELECT pg_sleep(60)", 1, 60.0))
    assert "statement timeout" in str(error) and elapsed < CEILING
    source.close()


def test_postgres_deadline_cancels_what_statement_timeout_does_not(pg_up: None) -> None:
    # statement_timeout is per statement (each FETCH has its own) and a statement can reset it: the
    # service's own deadline sends a cancel request as well.
    source = DataSource(_pg_url(), timeout=60.0)
    sql = "SELECT set_config('statement_timeout', '0', false), pg_sleep(60)"
    error, elapsed = _timed(lambda: source._backend.execute(sql, 1, 0.5))
    assert "time limit of 0.5 s" in str(error) and elapsed < CEILING
    assert source._backend.execute("SELECT 1", 1, 10.0).rows == [(1,)]  # the connection is usable
    source.close()


def test_postgres_work_mem_and_temp_file_limit(pg_up: None) -> None:
    source = DataSource(_pg_url(), bounds=Bounds(work_mem="64kB", temp_limit="1MB"))
    rows = source._backend.execute(
        "SELECT current_setting('work_mem'), current_setting('temp_file_limit')", 1, 10.0
    ).rows
    assert rows == [("64kB", "1MB")]
    with pytest.raises(QueryError, match="temp_file_limit"):
        source._backend.execute(
            "SELECT COUNT(*) FROM (SELECT DISTINCT g::text || repeat('x', 100) "
            "FROM generate_series(1, 2000000) AS g) AS s",
            1,
            60.0,
        )
    source.close()


def test_postgres_answer_is_held_to_the_byte_budget(pg_up: None) -> None:
    source = DataSource(_pg_url(), bounds=Bounds(max_result_bytes=1_000_000))
    with pytest.raises(QueryError, match="larger than 1,000,000 bytes"):
        source._backend.execute("SELECT repeat('x', 100000) FROM generate_series(1, 1000)", 1000, 60.0)
    assert source._backend.execute("SELECT 1", 1, 10.0).rows == [(1,)]
    source.close()


# --------------------------------------------------------------------------------------------------
# A bounded pool of concurrent statements per source


def test_statements_run_in_a_bounded_pool(sample_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import threading

    source = DataSource(sample_path, concurrency=2, timeout=60.0)
    assert source.schema  # introspected first: its statements would hold the schema lock
    release = threading.Event()
    two_in = threading.Event()
    lock = threading.Lock()
    running: list[int] = [0, 0]  # now, most at once
    real = source._backend.execute

    def blocking(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            running[1] = max(running)
            if running[0] == 2:
                two_in.set()
        try:
            release.wait(CEILING)
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(source._backend, "execute", blocking)

    async def scenario() -> list[Any]:
        tasks = [asyncio.create_task(source.run("SELECT COUNT(*) FROM orders")) for _ in range(5)]
        # two statements are in the database; the other three wait for a slot
        assert await asyncio.to_thread(two_in.wait, CEILING)
        await asyncio.sleep(0.2)
        assert running[1] == 2
        release.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(scenario())
    assert [r.rows for r in results] == [[(30000,)]] * 5 and running[1] == 2
    source.close()


def test_a_statement_that_waited_past_its_time_for_a_slot_is_refused(
    sample_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    source = DataSource(sample_path, concurrency=1, timeout=0.2)
    assert source.schema
    started = threading.Event()
    release = threading.Event()
    real = source._backend.execute

    def blocking(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(CEILING)
        return real(*args, **kwargs)

    monkeypatch.setattr(source._backend, "execute", blocking)

    async def scenario() -> None:
        first = asyncio.create_task(source.run("SELECT COUNT(*) FROM orders"))
        assert await asyncio.to_thread(started.wait, CEILING)
        second = asyncio.create_task(source.run("SELECT COUNT(*) FROM users"))
        await asyncio.sleep(0.5)  # longer than the source's timeout: the second one's time is gone
        release.set()
        assert (await first).rows == [(30000,)]
        with pytest.raises(QueryError, match="busy"):
            await second

    asyncio.run(scenario())
    source.close()
