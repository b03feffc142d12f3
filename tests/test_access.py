"""API keys, rate limits, CORS, security headers, request ids and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from streamforge.app import create_app
from streamforge.config import Settings


async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://localhost")
    async with app.router.lifespan_context(app), http:
        yield http


@pytest.fixture
async def keyed(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=data_dir,
        pattern_delay=0,
        state_url="memory://",
        api_keys="alpha-key, beta-key",
        _env_file=None,
    )  # type: ignore[call-arg]
    async for client in client_for(settings):
        yield client


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, answering the Host the shared client sends ('testserver' or 'localhost')."""
    return settings.model_copy(update={"allowed_hosts": "testserver,localhost"})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_keys_guard_the_api_but_not_the_page(keyed: httpx.AsyncClient) -> None:
    assert (await keyed.get("/healthz")).status_code == 200
    assert (await keyed.get("/")).status_code == 200
    for headers in ({}, bearer("wrong"), {"Authorization": "Basic alpha-key"}):
        response = await keyed.post("/chat", json={"message": "kpi card"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert "alpha-key" not in response.text
    assert (await keyed.get("/metrics")).status_code == 401
    ok = await keyed.post("/chat", json={"message": "kpi card"}, headers=bearer("alpha-key"))
    assert ok.status_code == 200


async def test_a_session_belongs_to_its_key(keyed: httpx.AsyncClient) -> None:
    first = await keyed.post("/chat", json={"message": "kpi card"}, headers=bearer("alpha-key"))
    sid = first.headers["x-session-id"]
    assert (await keyed.get(f"/sessions/{sid}", headers=bearer("alpha-key"))).status_code == 200
    assert (await keyed.get(f"/sessions/{sid}", headers=bearer("beta-key"))).status_code == 404
    other = await keyed.post(
        "/chat", json={"message": "kpi card", "session_id": sid}, headers=bearer("beta-key")
    )
    assert other.status_code == 404
    assert (await keyed.delete(f"/sessions/{sid}", headers=bearer("beta-key"))).status_code == 404


async def test_rate_limit_answers_429_with_retry_after(data_dir: Path) -> None:
    settings = Settings(
        data_dir=data_dir, pattern_delay=0, state_url="memory://", rate_limit="3/minute", _env_file=None
    )  # type: ignore[call-arg]
    async for client in client_for(settings):
        statuses = [(await client.post("/chat", json={"message": "kpi card"})).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]  # the 2nd and 3rd are cache hits or pattern answers: they count
        limited = await client.post("/chat", json={"message": "kpi card"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        assert (await client.get("/healthz")).status_code == 200  # health is never limited


async def test_security_headers_and_request_id(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "http" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert len(page.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-Id": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    evil = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith junk" * 10})
    assert evil.headers["x-request-id"] != "bad id\twith junk" * 10


async def test_cors_is_off_by_default_and_configurable(client: httpx.AsyncClient, data_dir: Path) -> None:
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    response = await client.options("/chat", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    settings = Settings(
        data_dir=data_dir, state_url="memory://", cors_origins="https://example.org", _env_file=None
    )  # type: ignore[call-arg]
    async for cors in client_for(settings):
        response = await cors.options("/chat", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://example.org"


async def test_metrics_count_requests_plans_and_cache_hits(client: httpx.AsyncClient) -> None:
    for _ in range(2):
        await client.post("/chat", json={"message": "revenue by region"})
    text = (await client.get("/metrics")).text
    assert 'streamforge_requests_total{route="/chat",status="200"} 2.0' in text
    assert "streamforge_cache_hits_total 1.0" in text
    assert 'streamforge_plans_total{from_cache="false",provider="offline"} 1.0' in text
    assert "streamforge_request_seconds_bucket" in text
