"""Shared fixtures: settings isolated from the developer's environment, an app client, a live server."""

from __future__ import annotations

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
# Fixtures of the fake remote services (each a real server on 127.0.0.1).
pytest_plugins = ["tests.fakes.bedrock"]


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
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
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
    process = subprocess.Popen(
        [sys.executable, "-m", "streamforge", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", process=process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
