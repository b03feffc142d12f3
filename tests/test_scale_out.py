"""Two server processes share one Redis cache, one PostgreSQL conversation store and one planning lock.

Real parts only: two ``streamforge serve`` subprocesses on different ports, Redis and PostgreSQL on
127.0.0.1, and the fake Bedrock server (answering slowly, so concurrent requests overlap) as the one
LLM both processes call.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamforge import protocol
from streamforge.sessions import SqlSessionStore
from tests.conftest import free_port, start_server
from tests.fakes.bedrock import FakeBedrock, text

PLAN = (
    "$$$"
    + json.dumps(
        [
            {"type": "SimpleComponent", "data": {"title": "Revenue", "value": 12, "unit": "USD"}},
            {
                "type": "TableA",
                "data": {"title": "Regions", "columns": ["Region"], "rows": [["Europe"], ["APAC"]]},
            },
        ]
    )
    + "$$$"
)


@pytest.fixture
def two_servers(
    redis_url: str, postgres_url: str, fake_bedrock: FakeBedrock, data_dir: Path, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    fake_bedrock.default = text(PLAN, delay=0.5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        {
            "STREAMFORGE_PROVIDER": "bedrock",
            "STREAMFORGE_BEDROCK_ENDPOINT_URL": fake_bedrock.url,
            "STREAMFORGE_LLM_DATA": "false",
            "STREAMFORGE_CACHE_URL": redis_url,
            "STREAMFORGE_STATE_URL": postgres_url,
            "STREAMFORGE_DATA_DIR": str(data_dir),
            "STREAMFORGE_PATTERN_DELAY": "0",
        }
    )
    with (
        start_server(free_port(), env, tmp_path / "a.log") as a,
        start_server(free_port(), env, tmp_path / "b.log") as b,
    ):
        yield a, b


def ask(base: str, message: str, session_id: str | None = None) -> tuple[list[dict[str, object]], str]:
    body: dict[str, str] = {"message": message}
    if session_id:
        body["session_id"] = session_id
    response = httpx.post(f"{base}/chat", json=body, timeout=30)
    response.raise_for_status()
    return protocol.decode_text(response.text), response.headers["x-session-id"]


def test_a_plan_made_by_one_process_is_a_cache_hit_on_the_other(
    two_servers: tuple[str, str], fake_bedrock: FakeBedrock
) -> None:
    a, b = two_servers
    first, _ = ask(a, "revenue dashboard for the board")
    second, _ = ask(b, "Revenue dashboard   for the board")
    assert first[-1]["from_cache"] is False and second[-1]["from_cache"] is True
    assert fake_bedrock.calls == 1


def test_concurrent_identical_requests_across_both_make_one_call(
    two_servers: tuple[str, str], fake_bedrock: FakeBedrock
) -> None:
    a, b = two_servers
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda i: ask(a if i % 2 else b, "insights on revenue"), range(12)))
    assert fake_bedrock.calls == 1
    for frames, _ in results:
        assert [f["type"] for f in frames] == ["SimpleComponent", "TableA", "end"]
    all_ids = [f["id"] for frames, _ in results for f in frames if f["type"] != "end"]
    assert len(all_ids) == len(set(all_ids))  # every client got its own component ids


def test_a_conversation_continues_on_the_other_process(
    two_servers: tuple[str, str], postgres_url: str
) -> None:
    a, b = two_servers
    _, sid = ask(a, "show me sales table")
    frames, same = ask(b, "now a bar chart", session_id=sid)
    assert same == sid and frames[-1]["session_id"] == sid
    session = httpx.get(f"{a}/sessions/{sid}", timeout=10).json()
    assert [m["message"] for m in session["messages"]] == ["show me sales table", "now a bar chart"]


async def test_postgres_session_store(postgres_url: str) -> None:
    store = SqlSessionStore(postgres_url)
    try:
        session = await store.create(owner="k")
        session.components["x"] = {"type": "TableA"}
        await store.save(session)
        loaded = await store.get(session.id, owner="k")
        assert loaded is not None and loaded.components == {"x": {"type": "TableA"}}
        assert await store.delete(session.id, owner="k")
    finally:
        await store.aclose()
