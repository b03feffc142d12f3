"""Shared fixtures: settings isolated from the developer's environment, an app client, a live server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from streamforge.app import create_app
from streamforge.config import Settings

ROOT = Path(__file__).resolve().parents[1]
# In CI (.ci/run sets it) a test whose server is missing fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("STREAMFORGE_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("STREAMFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
POSTGRES_URL = os.environ.get("STREAMFORGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Fixtures of the fake remote services (each a real server on 127.0.0.1).
pytest_plugins = ["tests.fakes.bedrock", "tests.fakes.anthropic", "tests.fakes.openai"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STREAMFORGE_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("STREAMFORGE_"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sample database for the whole run (it is deterministic, so sharing it is safe)."""
    return tmp_path_factory.mktemp("streamforge-data")


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(pattern_delay=0.0, data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def live_server(data_dir: Path) -> Iterator[str]:
    """A real ``streamforge serve`` subprocess on a free port, shared by the tests that need sockets."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update({"STREAMFORGE_PATTERN_DELAY": "0.05", "STREAMFORGE_DATA_DIR": str(data_dir)})
    with start_server(port, env, data_dir / f"server-{port}.log") as base:
        yield base


@contextlib.contextmanager
def start_server(
    port: int, env: dict[str, str], log: Path, *extra: str, timeout: float = 30.0
) -> Iterator[str]:
    """``streamforge serve`` in a subprocess (its log in a file, so a full pipe never stalls it)."""
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamforge", "serve", "--port", str(port), *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/healthz", timeout=timeout, process=process)
            yield base
        except Exception:
            sys.stderr.write(log.read_text()[-3000:])
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error}); .ci/run starts it"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    """A real Redis (database 14, emptied first), or a skip outside CI."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        client.close()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture
def postgres_url() -> str:
    """A real PostgreSQL (the `test` database, our tables dropped first), or a skip outside CI."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS streamforge_sessions"))
        engine.dispose()
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    return POSTGRES_URL
