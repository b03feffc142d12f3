"""Dependencies that die: a private Redis the test starts, freezes and stops; PostgreSQL behind a proxy.

Redis is a real ``redis-server`` on a free port of 127.0.0.1 (``--save ""``): "hung" is the process
stopped with SIGSTOP (the kernel still accepts connections, nothing answers), "down" is the process
gone. PostgreSQL is the test server behind a TCP proxy on 127.0.0.1: "hung" is the proxy accepting and
forwarding nothing, "down" is the proxy closed. Every case must end in a valid stream or a JSON error
within a generous bound, ``/readyz`` must name what is down, and every turn whose ``end`` frame said
``"saved": true`` must be there afterwards. Waits are on readiness, never on a tuned sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from streamforge import protocol
from streamforge.app import create_app
from streamforge.config import Settings
from tests.conftest import free_port, start_server

BOUND = 20.0  # seconds: generous, for a loaded machine; the timeouts below are 0.5-1 s


# -- the dependencies ----------------------------------------------------------------------------------


class PrivateRedis:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._tmp = tmp
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self._tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class Proxy:
    """A TCP proxy on 127.0.0.1 that can forward, accept and hang, or be gone."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.hung = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=BOUND)

    def up(self) -> None:
        self.hung = False
        self._run(self._start())

    def hang(self) -> None:
        self.hung = True  # new connections are accepted and never answered; open ones stop forwarding

    def down(self) -> None:
        self._run(self._stop())

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.hung:
            await reader.read()  # hold it open, answer nothing, until the client or down() closes it
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while chunk := await reader.read(65536):
                if self.hung:
                    continue  # swallowed: the other side waits for ever
                writer.write(chunk)
                await writer.drain()
        writer.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    url = sa.engine.make_url(postgres_url)
    proxy = Proxy(url.port or 5432)
    proxy.up()
    try:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    finally:
        proxy.close()


def app_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        data_dir=data_dir,
        pattern_delay=0,
        redis_timeout=0.5,
        state_timeout=1.0,
        dependency_breaker_threshold=2,
        dependency_breaker_cooldown=0.3,
        state_save_attempts=2,
        _env_file=None,
        **extra,
    )


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, finally_: Callable[[], None] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    try:
        async with asyncio.timeout(BOUND):  # start-up itself is bounded
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", timeout=BOUND
            ) as http:
                yield http
        finally:
            if finally_ is not None:
                finally_()  # release what a hung dependency holds before the app waits on it
            await lifespan.__aexit__(None, None, None)
    finally:
        if finally_ is not None:
            finally_()


async def ask(http: httpx.AsyncClient, message: str, session_id: str | None = None) -> httpx.Response:
    body: dict[str, str] = {"message": message}
    if session_id:
        body["session_id"] = session_id
    async with asyncio.timeout(BOUND):
        return await http.post("/chat", json=body)


def frames_of(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    frames = protocol.decode_text(response.text)
    assert frames and frames[-1]["type"] == "end", frames
    return frames


async def wait_until(check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {BOUND} s")


async def readiness(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(BOUND):
        response = await http.get("/readyz")
    return response.status_code, response.json()


# -- Redis ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["down", "hung"])
async def test_redis_down_or_hung_degrades_to_this_process(
    private_redis: PrivateRedis, data_dir: Path, fault: str
) -> None:
    settings = app_settings(
        data_dir, state_url="memory://", cache_url=private_redis.url, rate_limit="6/minute"
    )
    async with serving(settings, private_redis.thaw) as http:
        assert (await readiness(http))[0] == 200
        frames_of(await ask(http, "revenue by region"))  # planned, cached in Redis
        private_redis.stop() if fault == "down" else private_redis.freeze()

        status, body = await readiness(http)
        assert status == 503 and body["down"] == ["redis"]
        assert body["dependencies"]["redis"]["status"] == "down"
        assert (await http.get("/healthz")).status_code == 200  # liveness is not readiness

        for message in ["revenue by region", "show me sales table", "orders by month"]:
            frames = frames_of(await ask(http, message))  # the answer still streams
            assert frames[-1]["saved"] is True
        # The limit still holds, counted in this process: 6 per minute, 4 used since Redis went away
        # (plus the one before, counted in Redis), so the 7th request since the outage is refused.
        statuses = [(await ask(http, "show me sales table")).status_code for _ in range(4)]
        assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
        limited = await ask(http, "kpi card")
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"

        if fault == "hung":
            private_redis.thaw()

            async def ready() -> bool:
                return (await readiness(http))[0] == 200

            await wait_until(ready, "/readyz back to 200 after Redis answers again")

            # ... and the breakers close: the limit is counted in Redis again (one request there so
            # far, so this one is allowed although this process has used up its own window).
            import redis

            shared = redis.Redis(port=private_redis.port, socket_timeout=BOUND)
            counted = sum(shared.llen(k) for k in shared.scan_iter("LIMITS*"))

            async def counted_in_redis() -> bool:
                response = await ask(http, "show me sales table")
                return (
                    response.status_code == 200
                    and sum(shared.llen(k) for k in shared.scan_iter("LIMITS*")) > counted
                )

            await wait_until(counted_in_redis, "rate limits counted in Redis again")
            shared.close()


# -- PostgreSQL (the conversation store) -------------------------------------------------------------------


async def test_store_hung_at_start_up_still_starts_and_says_what_is_not_saved(
    pg_proxy: tuple[Proxy, str], data_dir: Path
) -> None:
    proxy, url = pg_proxy
    proxy.hang()
    settings = app_settings(data_dir, state_url=url)
    async with serving(settings, proxy.down) as http:  # start-up is bounded (asserted inside)
        status, body = await readiness(http)
        assert status == 503 and body["down"] == ["state_store"]

        frames = frames_of(await ask(http, "show me sales table"))  # a new conversation still answers
        end = frames[-1]
        assert end["saved"] is False  # ... and says it was not saved

        follow_up = await ask(http, "now a bar chart", session_id=end["session_id"])
        assert follow_up.status_code == 503
        assert follow_up.json()["error"]["code"] == "state_unavailable"
        assert "retry-after" in follow_up.headers
        async with asyncio.timeout(BOUND):
            lookup = await http.get(f"/sessions/{end['session_id']}")
        assert lookup.status_code == 503 and lookup.json()["error"]["code"] == "state_unavailable"


@pytest.mark.parametrize("fault", ["down", "hung"])
async def test_store_outage_loses_nothing_that_was_acknowledged(
    pg_proxy: tuple[Proxy, str], data_dir: Path, fault: str
) -> None:
    proxy, url = pg_proxy
    settings = app_settings(data_dir, state_url=url)
    acknowledged: dict[str, list[str]] = {}  # session -> the messages whose end frame said saved

    def note(frames: list[dict[str, Any]], message: str) -> None:
        end = frames[-1]
        if end["saved"]:
            acknowledged.setdefault(end["session_id"], []).append(message)

    async with serving(settings, proxy.down) as http:
        assert (await readiness(http))[0] == 200
        first = frames_of(await ask(http, "show me sales table"))
        assert first[-1]["saved"] is True
        note(first, "show me sales table")
        sid = first[-1]["session_id"]

        proxy.down() if fault == "down" else proxy.hang()
        status, body = await readiness(http)
        assert status == 503 and body["down"] == ["state_store"]
        for message in ["kpi card", "line chart"]:
            frames = frames_of(await ask(http, message))
            note(frames, message)
        follow_up = await ask(http, "now a bar chart", session_id=sid)
        assert follow_up.status_code == 503 and follow_up.json()["error"]["code"] == "state_unavailable"

        proxy.down()  # a hung proxy's connections are dropped too
        proxy.up()

        async def ready() -> bool:
            return (await readiness(http))[0] == 200

        await wait_until(ready, "/readyz back to 200 after the store answers again")

        async def saves_again() -> bool:
            response = await ask(http, "now a bar chart", session_id=sid)
            if response.status_code == 503:  # the store's breaker has not tried it again yet
                assert response.json()["error"]["code"] == "state_unavailable"
                return False
            frames = frames_of(response)
            note(frames, "now a bar chart")
            return bool(frames[-1]["saved"])

        await wait_until(saves_again, "turns saved again")

        for session_id, messages in acknowledged.items():
            async with asyncio.timeout(BOUND):
                stored = (await http.get(f"/sessions/{session_id}")).json()
            kept = iter(m["message"] for m in stored["messages"])
            assert all(message in kept for message in messages), (messages, stored["messages"])


def test_a_server_whose_store_hangs_starts_and_answers(
    pg_proxy: tuple[Proxy, str], data_dir: Path, tmp_path: Path
) -> None:
    """The real process: start-up used to wait for ever on a store that accepts and never answers."""
    proxy, url = pg_proxy
    proxy.hang()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        {
            "STREAMFORGE_STATE_URL": url,
            "STREAMFORGE_STATE_TIMEOUT": "1",
            "STREAMFORGE_DATA_DIR": str(data_dir),
            "STREAMFORGE_PATTERN_DELAY": "0",
        }
    )
    try:
        with start_server(port, env, tmp_path / "server.log", timeout=BOUND) as base:
            ready = httpx.get(f"{base}/readyz", timeout=BOUND)
            assert ready.status_code == 503 and ready.json()["down"] == ["state_store"]
            response = httpx.post(f"{base}/chat", json={"message": "show me sales table"}, timeout=BOUND)
            assert frames_of(response)[-1]["saved"] is False
    finally:
        proxy.down()
