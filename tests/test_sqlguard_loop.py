"""Guarding a statement never holds the event loop: the parse runs in a worker thread.

A 90,000-character statement once froze ``/healthz`` for seconds because the guard parsed it on the
loop. Now a statement over :data:`MAX_SQL_CHARS` is refused before it is parsed, and one under it is
parsed off the loop, on both async paths: :meth:`DataSource.run` (the offline planner) and the LLM
grounding (guard, then run).

How the tests know, without timing anything: every guard call, once it has parsed, waits until a
heartbeat task on the loop has answered it. On a worker thread the heartbeat answers at its next
beat; on the loop's own thread the heartbeat could never run, and the call fails after a long
safety wait instead of passing.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import streamforge.data.source as source_module
from streamforge.config import Settings
from streamforge.data.source import DataSource
from streamforge.data.sqlguard import MAX_SQL_CHARS, SQLRejected
from streamforge.planner.factory import build_planner_service
from tests.fakes.bedrock import FakeBedrock, text
from tests.fixtures import dbs

sample_path = dbs.sample_path
_SAFETY_WAIT = 60.0  # seconds; only a guard that blocks the loop ever waits this long


class LoopWitness:
    """Wraps the guard so each call proves the loop ran while it was in progress."""

    def __init__(self) -> None:
        self._pending: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()
        self.calls: list[tuple[int, int]] = []  # (thread, statement length) per guard call

    def wrap(self, real: Callable[..., str]) -> Callable[..., str]:
        def guarded(sql: str, *args: Any, **kwargs: Any) -> str:
            try:
                return real(sql, *args, **kwargs)
            finally:
                self.calls.append((threading.get_ident(), len(sql)))
                answered = threading.Event()
                self._pending.put(answered)
                if not answered.wait(_SAFETY_WAIT):
                    raise AssertionError("the event loop did not run while the statement was guarded")

        return guarded

    async def beat(self) -> None:
        while True:
            while not self._pending.empty():
                self._pending.get().set()
            await asyncio.sleep(0.001)


@pytest.fixture
async def witness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LoopWitness]:
    seen = LoopWitness()
    monkeypatch.setattr(source_module, "guard_sql", seen.wrap(source_module.guard_sql))
    heartbeat = asyncio.create_task(seen.beat())
    try:
        yield seen
    finally:
        heartbeat.cancel()


def _big_select() -> str:
    """A legitimate statement just under the cap (the slow kind: thousands of literals to parse)."""
    ids = ", ".join(str(i) for i in range(1, 3500))
    sql = f"SELECT COUNT(*) AS n FROM orders WHERE order_id IN ({ids})"
    assert MAX_SQL_CHARS // 2 < len(sql) < MAX_SQL_CHARS
    return sql


def _too_big() -> str:
    return "SELECT region FROM orders WHERE " + "revenue = 1 OR " * 6000 + "revenue = 2"  # 90k


async def test_data_source_run_guards_off_the_loop(witness: LoopWitness, sample_path: Path) -> None:
    source = DataSource(sample_path)
    try:
        result = await source.run(_big_select())
        assert result.rows == [(3499,)]
        with pytest.raises(SQLRejected, match="the limit is 20,000"):
            await source.run(_too_big())
    finally:
        source.close()
    loop_thread = threading.get_ident()
    lengths = [n for _, n in witness.calls]  # the schema's own introspection statements too
    assert len(_big_select()) in lengths and len(_too_big()) in lengths
    assert all(thread != loop_thread for thread, _ in witness.calls)


def _card(sql: str) -> str:
    component = {"type": "SimpleComponent", "data": {"title": "Orders", "value": 0, "sql": sql}}
    return "$$$" + json.dumps([component]) + "$$$"


async def test_llm_sql_is_guarded_off_the_loop(
    witness: LoopWitness, fake_bedrock: FakeBedrock, data_dir: Path
) -> None:
    """The model's statement, huge first and then merely big, through the planner service."""
    fake_bedrock.push(text(_card(_too_big())), text(_card(_big_select())))
    settings = Settings(
        provider="bedrock",
        bedrock_endpoint_url=fake_bedrock.url,
        data_dir=data_dir,
        llm_stream=False,
        offline_last_resort=False,
        retry_backoff_base=0.01,
        cache_ttl=0,
        _env_file=None,
    )  # type: ignore[call-arg]
    service = await build_planner_service(settings)
    try:
        result = await service.generate_layout("how many orders")
    finally:
        await service.aclose()
    assert fake_bedrock.calls == 2  # the huge statement was refused, the repair was used
    repair = json.dumps(fake_bedrock.requests[1].body["messages"][-1]["content"])
    # refused (the reason is in our log); the model is told it was refused, not the guard's rule
    assert "refused: only one read-only SELECT" in repair and "the limit is 20,000" not in repair
    assert not result.fallback and result.components[0]["data"]["value"] == 3499
    loop_thread = threading.get_ident()
    assert witness.calls and all(thread != loop_thread for thread, _ in witness.calls)
    assert len(_too_big()) in [n for _, n in witness.calls]  # refused by the guard, off the loop too
