"""A client that goes away mid-stream stops the work behind its request: the LLM call and the SQL.

A real uvicorn server runs in a thread of the test process on a free loopback port, so the test can
see what is still running inside it: the request's task on the server's event loop, and any worker
thread still executing a statement in :mod:`streamforge.data.source`. The LLM is the fake OpenAI
server of :mod:`tests.fakes.faults`, which records whether a client left before its answer ended.

Each test reads the first frame, closes the connection, and then waits (a bounded poll, never a
fixed sleep) for the work to stop; each also checks, before closing, that the work it expects to be
stopped is really running, so a pass is never vacuous. All three response formats are covered:
Starlette's ``StreamingResponse`` (text and NDJSON) and sse-starlette's ``EventSourceResponse`` each
watch for the disconnect themselves.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from streamforge import protocol
from streamforge.app import create_app
from streamforge.config import Settings
from streamforge.data.sample import ensure_sample_db
from streamforge.data.source import DataSource
from tests.conftest import free_port
from tests.fakes import faults
from tests.fakes.bedrock import stream
from tests.fakes.faults import FaultyOpenAI

faulty_openai = faults.faulty_openai

FORMATS: tuple[protocol.Format, ...] = ("text", "sse", "ndjson")
SLOW_SQL = "SELECT COUNT(*) AS n FROM orders a, orders b, orders c"  # 2.7e13 rows: hours in SQLite
FAST_SQL = "SELECT COUNT(*) AS n FROM orders"


def card(title: str, sql: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"title": title, "value": 1}
    if sql:
        data["sql"] = sql
    return {"type": "SimpleComponent", "data": data}


# -- what is still running -------------------------------------------------------------------------


def threads_running_sql() -> list[str]:
    """Names of the threads whose stack is inside a backend's ``execute`` of data/source.py."""
    names = {t.ident: t.name for t in threading.enumerate()}
    running = []
    for ident, frame in sys._current_frames().items():
        f: Any = frame
        while f is not None:
            code = f.f_code
            if code.co_name == "execute" and code.co_filename.endswith(str(Path("data", "source.py"))):
                running.append(names.get(ident, str(ident)))
                break
            f = f.f_back
    return running


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


class ThreadServer:
    """uvicorn serving ``app`` from a thread, with a way to look at its event loop's tasks."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="uvicorn-test", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(serve())

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        wait_until(lambda: self.server.started, 30, "the server started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    def requests_in_flight(self) -> list[str]:
        """The server's per-request tasks (uvicorn runs each request's ASGI app in one)."""

        async def look() -> list[str]:
            return [
                repr(t.get_coro())
                for t in asyncio.all_tasks()
                if not t.done() and getattr(t.get_coro(), "__name__", "") == "run_asgi"
            ]

        assert self.loop is not None
        future: Future[list[str]] = asyncio.run_coroutine_threadsafe(look(), self.loop)
        return future.result(timeout=5)


class FirstFrame:
    """Reads a response until its first component frame, and keeps the rest unread (the connection
    stays open until the ``with client.stream(...)`` block closes it).

    The chunk iterator is kept here on purpose: an httpx iterator dropped half-way closes the
    connection as it is collected, which would make the disconnect happen earlier than the test says.
    """

    def __init__(self, response: httpx.Response, fmt: protocol.Format) -> None:
        self._chunks = response.iter_text()
        self.frame = self._read(fmt)

    def _read(self, fmt: protocol.Format) -> dict[str, Any]:
        buffer = ""
        decoder = protocol.TextFrameDecoder()
        for chunk in self._chunks:
            if fmt == "text":
                frames = decoder.feed(chunk)
            else:
                buffer += chunk.replace("\r\n", "\n")  # sse-starlette ends lines with CRLF
                end = buffer.rfind("\n\n") + 2 if fmt == "sse" else buffer.rfind("\n") + 1
                frames = protocol.decode(buffer[:end], fmt)
            components = [f for f in frames if f.get("type") not in protocol.CONTROL_TYPES]
            if components:
                return components[0]
        raise AssertionError("the stream ended before its first component")


def settings_for(base: Settings, fake: FaultyOpenAI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "provider": "openai",
        "openai_base_url": fake.base_url,
        "llm_stream": True,
        "llm_data": False,
        "offline_last_resort": False,
        "state_url": "memory://",
        "provider_timeout": 10.0,
        "provider_retries": 0,
    }
    values.update(overrides)
    return base.model_copy(update=values)


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[[Settings], ThreadServer]]:
    servers: list[ThreadServer] = []

    def start(s: Settings) -> ThreadServer:
        server = ThreadServer(create_app(s)).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


# -- the LLM call -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_disconnect_aborts_the_llm_stream(
    fmt: protocol.Format,
    faulty_openai: FaultyOpenAI,
    settings: Settings,
    serve: Callable[[Settings], ThreadServer],
) -> None:
    first = "$$$[" + json.dumps(card("Revenue")) + ","
    rest = json.dumps(card("Later")) + "]$$$"
    pieces = [first] + [rest[i : i + 1] for i in range(len(rest))] * 3  # about 10 s at 0.03 s a piece
    faulty_openai.push(stream(pieces, chunk_delay=0.03))
    server = serve(settings_for(settings, faulty_openai))

    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{server.url}/chat",
            json={"message": "revenue"},
            headers={"accept": protocol.MEDIA_TYPES[fmt]},
        ) as response,
    ):
        first = FirstFrame(response, fmt)  # kept until the block ends: see FirstFrame
        assert first.frame["data"]["title"] == "Revenue"
        time.sleep(0.2)
        assert server.requests_in_flight()  # the answer is still being written
        assert not faulty_openai.streams[0].ended_at
    # Leaving the block closed the connection half-way through the body.
    outcome = faulty_openai.wait_stream_ended(0, timeout=5)
    assert outcome.client_left and not outcome.finished
    assert outcome.sent < len(pieces) // 2
    wait_until(lambda: not server.requests_in_flight(), 5, "the request's task ended")


def test_disconnect_releases_the_cross_worker_planning_lock(
    faulty_openai: FaultyOpenAI,
    settings: Settings,
    serve: Callable[[Settings], ThreadServer],
    redis_url: str,
) -> None:
    """The planning lock in Redis is released when its client leaves, not left to expire: until it
    goes, every other worker asking the same question waits for a plan that will never come."""
    import redis

    first = "$$$[" + json.dumps(card("Revenue")) + ","
    faulty_openai.push(stream([first] + ["   "] * 300, chunk_delay=0.03))
    server = serve(settings_for(settings, faulty_openai, cache_url=redis_url))
    store = redis.Redis.from_url(redis_url)
    try:
        with (
            httpx.Client(timeout=30) as client,
            client.stream("POST", f"{server.url}/chat", json={"message": "revenue"}) as response,
        ):
            first = FirstFrame(response, "text")
            assert first.frame["data"]["title"] == "Revenue"
            assert store.keys("streamforge:lock:*")
        wait_until(lambda: not server.requests_in_flight(), 5, "the request's task ended")
        wait_until(lambda: not store.keys("streamforge:lock:*"), 5, "the planning lock was released")
    finally:
        store.close()


# -- the SQL query ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_disconnect_interrupts_the_running_sql(
    fmt: protocol.Format,
    faulty_openai: FaultyOpenAI,
    settings: Settings,
    serve: Callable[[Settings], ThreadServer],
) -> None:
    """The LLM answers at once: a card over a quick query, then one over a query that would run for
    hours. The client leaves after the first card, while the second query runs."""
    answer = "$$$" + json.dumps([card("Orders", FAST_SQL), card("Forever", SLOW_SQL)]) + "$$$"
    faulty_openai.push(stream([answer]))
    server = serve(settings_for(settings, faulty_openai, llm_data=True, sql_timeout=120.0))

    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{server.url}/chat",
            json={"message": "orders"},
            headers={"accept": protocol.MEDIA_TYPES[fmt]},
        ) as response,
    ):
        first = FirstFrame(response, fmt)
        assert first.frame["data"]["title"] == "Orders"
        wait_until(lambda: bool(threads_running_sql()), 10, "the slow query started")
        time.sleep(0.2)
        assert threads_running_sql()  # the connection is open: nothing stops it yet
    wait_until(lambda: not threads_running_sql(), 5, "the slow query stopped")
    wait_until(lambda: not server.requests_in_flight(), 5, "the request's task ended")


async def _cancel_while_running(source: DataSource, sql: str) -> None:
    task = asyncio.create_task(source.run(sql))
    deadline = time.monotonic() + 10
    while not threads_running_sql():
        assert not task.done(), task  # it must be slow enough to still be running
        assert time.monotonic() < deadline, "the query never started"
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while threads_running_sql():
        assert time.monotonic() < deadline, "the statement kept running after its task was cancelled"
        await asyncio.sleep(0.02)


async def test_cancelling_a_query_stops_it_in_sqlite(data_dir: Path) -> None:
    source = DataSource(ensure_sample_db(data_dir), timeout=120.0)
    try:
        await _cancel_while_running(source, SLOW_SQL)
        assert (await source.run(FAST_SQL)).rows[0][0] > 0  # the source still works afterwards
    finally:
        source.close()


async def test_cancelling_a_query_stops_it_in_duckdb(tmp_path: Path) -> None:
    with (tmp_path / "numbers.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["n"])
        writer.writerows([i] for i in range(3000))
    source = DataSource(tmp_path, timeout=120.0)
    try:
        await _cancel_while_running(
            source, "SELECT SUM(a.n * b.n - c.n) AS s FROM numbers a, numbers b, numbers c"
        )
        assert (await source.run("SELECT COUNT(*) AS c FROM numbers")).rows == [(3000,)]
    finally:
        source.close()


async def test_cancelling_a_query_stops_it_in_postgres(postgres_url: str) -> None:
    """PostgreSQL gets a cancel request; ``pg_stat_activity`` shows the statement is gone."""
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("DROP SCHEMA IF EXISTS streamforge_cancel CASCADE")
        admin.execute("CREATE SCHEMA streamforge_cancel")
        admin.execute("CREATE TABLE streamforge_cancel.numbers AS SELECT generate_series(1, 3000) AS n")
        url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
        source = DataSource(f"{url}?options=-csearch_path%3Dstreamforge_cancel", timeout=120.0)

        def active() -> int:
            row = admin.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s",
                ("%numbers AS a CROSS JOIN%",),
            ).fetchone()
            return int(row[0]) if row else 0

        try:
            await _cancel_while_running(source, "SELECT COUNT(*) AS c FROM numbers a, numbers b, numbers c")
            deadline = time.monotonic() + 5
            while active():
                assert time.monotonic() < deadline, "the statement is still active in PostgreSQL"
                await asyncio.sleep(0.05)
            assert (await source.run("SELECT COUNT(*) AS c FROM numbers")).rows == [(3000,)]
        finally:
            source.close()
            admin.execute("DROP SCHEMA IF EXISTS streamforge_cancel CASCADE")
