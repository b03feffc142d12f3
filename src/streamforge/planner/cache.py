"""The planner cache: an interface, and the in-process backend.

The key is a SHA-256 over everything that changes the answer: the normalised message, the provider
chain and model, the data source and any conversation context. Values are the validated components
of a plan (ids are made fresh on every hit, so two dashboards never share an id). The interface is
async so a shared backend (Redis, for several workers) can slot in without touching the service.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any, Protocol

from cachetools import TTLCache

CachedPlan = dict[str, Any]


def normalise(message: str) -> str:
    """Strip, lower-case and collapse whitespace: "Show  me Sales" and "show me sales" share an entry."""
    return re.sub(r"\s+", " ", message.strip().lower())


def cache_key(message: str, *, planner: str, model_id: str, source: str, context: object = None) -> str:
    parts = {
        "message": normalise(message),
        "planner": planner,
        "model": model_id,
        "source": source,
        "context": context,
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class PlanCache(Protocol):
    async def get(self, key: str) -> CachedPlan | None: ...

    async def set(self, key: str, value: CachedPlan) -> None: ...

    async def clear(self) -> None: ...

    async def aclose(self) -> None: ...

    async def acquire(self, key: str, ttl: float) -> bool:
        """Claim the right to plan ``key`` across processes (False: another process is planning it)."""
        ...

    async def release(self, key: str) -> None: ...

    async def wait_for(self, key: str, within: float) -> CachedPlan | None:
        """Wait for another process's plan of ``key``; None when it gave up or the wait timed out."""
        ...


class MemoryCache:
    """A bounded TTL cache in this process; the default, needing no server."""

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        self._entries: TTLCache[str, CachedPlan] = TTLCache(maxsize=max_entries, ttl=max(ttl, 1e-9))
        self._enabled = ttl > 0

    async def get(self, key: str) -> CachedPlan | None:
        return self._entries.get(key) if self._enabled else None

    async def set(self, key: str, value: CachedPlan) -> None:
        if self._enabled:
            self._entries[key] = value

    async def clear(self) -> None:
        self._entries.clear()

    async def aclose(self) -> None:
        self._entries.clear()

    # One process: the service's in-process single-flight already covers it.
    async def acquire(self, key: str, ttl: float) -> bool:
        return True

    async def release(self, key: str) -> None:
        return None

    async def wait_for(self, key: str, within: float) -> CachedPlan | None:
        return await self.get(key)

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """The cache shared by every worker, and the lock that makes their single-flight one flight.

    Plans are JSON under ``streamforge:plan:<key>`` with the TTL; the lock is ``SET NX PX`` on
    ``streamforge:lock:<key>``, so it expires by itself if its holder dies. A process that loses the
    race polls for the winner's plan (cheap: the wait is one plan long) and plans itself only if the
    winner gave up without one.
    """

    _POLL = 0.02

    def __init__(self, url: str, *, ttl: float) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, decode_responses=False)
        self._ttl = ttl
        self._prefix = "streamforge:"

    async def get(self, key: str) -> CachedPlan | None:
        raw = await self._redis.get(f"{self._prefix}plan:{key}")
        return json.loads(raw) if raw else None

    async def set(self, key: str, value: CachedPlan) -> None:
        if self._ttl > 0:
            blob = json.dumps(value, separators=(",", ":"))
            await self._redis.set(f"{self._prefix}plan:{key}", blob, px=max(1, int(self._ttl * 1000)))

    async def clear(self) -> None:
        async for name in self._redis.scan_iter(match=f"{self._prefix}plan:*", count=500):
            await self._redis.delete(name)

    async def acquire(self, key: str, ttl: float) -> bool:
        return bool(await self._redis.set(f"{self._prefix}lock:{key}", b"1", nx=True, px=int(ttl * 1000)))

    async def release(self, key: str) -> None:
        await self._redis.delete(f"{self._prefix}lock:{key}")

    async def wait_for(self, key: str, within: float) -> CachedPlan | None:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            plan = await self.get(key)
            if plan is not None:
                return plan
            if not await self._redis.exists(f"{self._prefix}lock:{key}"):
                return await self.get(key)
            await asyncio.sleep(self._POLL)
        return None

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_cache(url: str, *, ttl: float, max_entries: int) -> PlanCache:
    """The cache named by ``STREAMFORGE_CACHE_URL``: ``memory://`` (default) or ``redis://...``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme in ("memory", ""):
        return MemoryCache(ttl=ttl, max_entries=max_entries)
    if scheme in ("redis", "rediss", "unix"):
        return RedisCache(url, ttl=ttl)
    raise ValueError(f"unsupported STREAMFORGE_CACHE_URL scheme {scheme!r} (use memory:// or redis://)")
