"""HTTP edges: deep bodies, huge heads, slow heads, guessed keys, forged addresses, foreign hosts, 422s."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from streamforge import protocol
from streamforge.api.edges import allowed_hosts, host_name
from streamforge.api.errors import clean_message
from streamforge.app import create_app
from streamforge.config import Settings
from tests.conftest import free_port, start_server

BOUND = 20.0


def make_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, pattern_delay=0, state_url="memory://", _env_file=None, **extra)  # type: ignore[call-arg]


async def client_for(settings: Settings, base: str = "http://localhost") -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=base) as http,
    ):
        yield http


@pytest.fixture
async def local(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for http in client_for(make_settings(data_dir)):
        yield http


def assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


# -- bodies --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1000, 20_000])
async def test_a_deeply_nested_body_is_a_4xx_json_error(local: httpx.AsyncClient, depth: int) -> None:
    body = '{"message": ' + "[" * depth + "]" * depth + "}"
    response = await local.post("/chat", content=body, headers={"Content-Type": "application/json"})
    assert_json_error(response, 400, "invalid_json")
    assert "nested" in response.json()["error"]["message"]
    assert (await local.get("/healthz")).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_only_json_bodies_are_read(local: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await local.post("/chat", content=b'{"message": "show me sales table"}', headers=headers)
    assert_json_error(response, 415, "unsupported_media_type")


async def test_json_with_a_charset_is_json(local: httpx.AsyncClient) -> None:
    response = await local.post(
        "/chat",
        content=b'{"message": "show me sales table"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert protocol.decode_text(response.text)[-1]["type"] == "end"


async def test_a_body_that_trickles_is_cut_off(data_dir: Path) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"message": '
        await asyncio.sleep(BOUND)  # never finishes within the body timeout
        yield b'"kpi card"}'

    async for http in client_for(make_settings(data_dir, body_timeout=0.3)):
        async with asyncio.timeout(BOUND / 2):
            response = await http.post(
                "/chat", content=trickle(), headers={"Content-Type": "application/json"}
            )
        assert_json_error(response, 408, "body_timeout")


def test_a_422_names_the_field_in_plain_words() -> None:
    class Body(BaseModel):
        message: str
        limit: int

    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"limit": "many"})
    messages = [clean_message({**e, "loc": ("body", *e["loc"])}) for e in caught.value.errors()]
    assert messages == ['"message" is required', '"limit" must be a whole number']
    assert not any("Input should" in m or "pydantic" in m for m in messages)


# -- Host ----------------------------------------------------------------------------------------------


async def test_a_foreign_host_is_refused_but_probes_answer(local: httpx.AsyncClient) -> None:
    for host in ["evil.example", "attacker.test:8001", "testserver"]:  # DNS rebinding, a test client
        response = await local.post("/chat", json={"message": "kpi card"}, headers={"Host": host})
        assert_json_error(response, 400, "host_not_allowed")
    assert (await local.get("/healthz", headers={"Host": "10.0.0.7:8001"})).status_code == 200
    for host in ["localhost:8001", "127.0.0.1", "[::1]:8001", "LOCALHOST."]:
        response = await local.post("/chat", json={"message": "kpi card"}, headers={"Host": host})
        assert response.status_code == 200, host


async def test_allowed_hosts_are_configurable(data_dir: Path) -> None:
    settings = make_settings(data_dir, allowed_hosts="dash.example.org")
    async for http in client_for(settings, "http://dash.example.org"):
        assert (await http.post("/chat", json={"message": "kpi card"})).status_code == 200
        refused = await http.post("/chat", json={"message": "kpi card"}, headers={"Host": "localhost"})
        assert_json_error(refused, 400, "host_not_allowed")
    assert allowed_hosts(make_settings(data_dir, allowed_hosts="*")) is None
    assert "dash.internal" in (allowed_hosts(make_settings(data_dir, host="dash.internal")) or ())
    assert allowed_hosts(make_settings(data_dir, host="0.0.0.0")) == {"localhost", "127.0.0.1", "[::1]"}
    assert host_name("[::1]:8001") == "[::1]" and host_name("Example.COM.:80") == "example.com"


# -- who is calling ------------------------------------------------------------------------------------


async def test_wrong_keys_are_rate_limited_per_address(data_dir: Path) -> None:
    settings = make_settings(data_dir, api_keys="right-key", auth_failure_limit="5/minute")
    async for http in client_for(settings):
        for i in range(5):
            wrong = await http.post(
                "/chat", json={"message": "kpi"}, headers={"Authorization": f"Bearer g{i}"}
            )
            assert_json_error(wrong, 401, "unauthorized")
        for key in ["g6", "right-key"]:  # refused before the key is looked at: no oracle for guesses
            refused = await http.post(
                "/chat", json={"message": "kpi"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert_json_error(refused, 429, "rate_limited")
            assert int(refused.headers["retry-after"]) >= 1
    async for http in client_for(settings):  # another server: right keys are not counted as failures
        for _ in range(8):
            ok = await http.post(
                "/chat", json={"message": "kpi card"}, headers={"Authorization": "Bearer right-key"}
            )
            assert ok.status_code == 200


async def test_forwarded_for_is_believed_only_from_trusted_proxies(data_dir: Path) -> None:
    forged = [{"X-Forwarded-For": f"203.0.113.{i}"} for i in range(5)]
    async for http in client_for(make_settings(data_dir, rate_limit="3/minute")):
        statuses = [
            (await http.post("/chat", json={"message": "kpi card"}, headers=h)).status_code for h in forged
        ]
        assert statuses == [200, 200, 200, 429, 429]  # one caller (127.0.0.1), whatever it claims
    trusting = make_settings(data_dir, rate_limit="3/minute", trusted_proxies="127.0.0.1/32, ::1")
    async for http in client_for(trusting):
        statuses = [
            (await http.post("/chat", json={"message": "kpi card"}, headers=h)).status_code for h in forged
        ]
        assert statuses == [200] * 5  # five clients behind our proxy
        chained = {"X-Forwarded-For": "198.51.100.1, 127.0.0.1"}  # the right-most untrusted hop counts
        statuses = [
            (await http.post("/chat", json={"message": "kpi card"}, headers=chained)).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]


# -- the real server: head size and slow heads ---------------------------------------------------------------


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("edges")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        {
            "STREAMFORGE_DATA_DIR": str(tmp),
            "STREAMFORGE_STATE_URL": "memory://",
            "STREAMFORGE_PATTERN_DELAY": "0",
            "STREAMFORGE_KEEP_ALIVE_TIMEOUT": "1",
            "STREAMFORGE_MAX_HEADER_BYTES": "16384",
            "STREAMFORGE_RATE_LIMIT": "1000/minute",
        }
    )
    with start_server(free_port(), env, tmp / "server.log", timeout=BOUND) as base:
        yield base


def _connect(base: str) -> socket.socket:
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    return sock


def test_an_oversized_head_is_refused_and_the_server_keeps_serving(edge_server: str) -> None:
    with _connect(edge_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (1024 * 1024))
        answer = b""
        with pytest.raises(OSError):  # the server answers and closes; the rest of our send fails
            while chunk := sock.recv(65536):
                answer += chunk
            sock.sendall(b"a" * (32 * 1024 * 1024))
        assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
    assert httpx.get(f"{edge_server}/healthz", timeout=BOUND).status_code == 200


def test_a_slow_head_is_cut_off(edge_server: str) -> None:
    sockets = [_connect(edge_server) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        started = time.monotonic()
        closed = 0
        for sock in sockets:
            try:
                while time.monotonic() - started < BOUND:
                    sock.sendall(b"X-a: b\r\n")  # a byte now and then keeps a naive server waiting
                    sock.settimeout(0.3)
                    try:
                        if sock.recv(1024) == b"":
                            break
                    except TimeoutError:
                        continue
            except OSError:
                pass  # reset: closed as well
            closed += 1
        assert closed == len(sockets)
        assert time.monotonic() - started < BOUND
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(f"{edge_server}/healthz", timeout=BOUND).status_code == 200


def test_the_real_server_ignores_forwarded_for_from_localhost(edge_server: str) -> None:
    """uvicorn's own proxy-header handling (which trusts 127.0.0.1) is off: the app decides."""
    response = httpx.post(
        f"{edge_server}/chat",
        json={"message": "kpi card"},
        headers={"X-Forwarded-For": "203.0.113.9", "Host": "evil.example"},
        timeout=BOUND,
    )
    assert_json_error(response, 400, "host_not_allowed")
    ok = httpx.post(f"{edge_server}/chat", json={"message": "kpi card"}, timeout=BOUND)
    assert ok.status_code == 200
