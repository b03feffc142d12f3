"""Session stores: ids, persistence across a restart, ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamforge.sessions import (
    MemorySessionStore,
    SessionStore,
    SqlSessionStore,
    Turn,
    is_session_id,
    new_session_id,
)


def test_session_ids_are_unguessable_and_well_formed() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_session_id(i) and len(i) == 32 for i in ids)  # 24 random bytes = 192 bits
    assert not is_session_id("short") and not is_session_id("x" * 31 + "/")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> SessionStore:
    if request.param == "memory":
        return MemorySessionStore()
    return SqlSessionStore.for_sqlite_file(tmp_path / "state.db")


async def test_round_trip_and_owner_scoping(store: SessionStore) -> None:
    session = await store.create(owner="key-a")
    session.turns.append(Turn("show me sales table", "pattern", ["c1"]))
    session.components["c1"] = {"type": "TableA", "id": "c1", "data": {"columns": ["a"], "rows": []}}
    await store.save(session)
    loaded = await store.get(session.id, owner="key-a")
    assert loaded is not None and loaded.last_route == "pattern"
    assert loaded.components["c1"]["type"] == "TableA"
    assert await store.get(session.id, owner="key-b") is None
    assert await store.get(session.id) is None
    assert not await store.delete(session.id, owner="key-b")
    assert await store.delete(session.id, owner="key-a")
    assert await store.get(session.id, owner="key-a") is None
    await store.aclose()


async def test_sqlite_sessions_survive_a_restart(tmp_path: Path) -> None:
    first = SqlSessionStore.for_sqlite_file(tmp_path / "state.db")
    session = await first.create()
    session.turns.append(Turn("revenue by region", "planner", ["x"]))
    await first.save(session)
    await first.aclose()
    second = SqlSessionStore.for_sqlite_file(tmp_path / "state.db")
    loaded = await second.get(session.id)
    assert loaded is not None and [t.message for t in loaded.turns] == ["revenue by region"]
    await second.aclose()


async def test_memory_store_is_bounded() -> None:
    store = MemorySessionStore(max_sessions=50)
    sessions = [await store.create() for _ in range(200)]
    assert len(store) == 50
    assert await store.get(sessions[0].id) is None and await store.get(sessions[-1].id) is not None


async def test_sql_store_forgets_idle_sessions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = SqlSessionStore(url)
    session = await store.create()
    await store.save(session)
    await store.aclose()
    expiring = SqlSessionStore(url, ttl=1e-6)  # every session is idle for longer than that
    assert await expiring.get(session.id) is None
    await expiring.aclose()


async def test_sql_store_writes_a_session_with_its_first_turn(tmp_path: Path) -> None:
    store = SqlSessionStore.for_sqlite_file(tmp_path / "state.db")
    session = await store.create()
    assert await store.get(session.id) is None  # nothing written yet: one write per request
    await store.save(session)
    assert await store.get(session.id) is not None
    await store.aclose()
