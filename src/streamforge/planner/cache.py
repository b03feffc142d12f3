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
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from cachetools import TTLCache

from streamforge.planner.breaker import CircuitBreaker

log = logging.getLogger(__name__)
T = TypeVar("T")

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

    Redis that dies or hangs costs at most ``timeout`` per call, and after ``breaker_threshold``
    failures in a row it is not called for ``breaker_cooldown`` seconds: meanwhile the cache is a
    :class:`MemoryCache` in this process (the lock always granted, so each process plans for
    itself). Planning never waits on a dead Redis.
    """

    _POLL = 0.02

    def __init__(
        self,
        url: str,
        *,
        ttl: float,
        timeout: float = 1.0,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 5.0,
        max_entries: int = 1024,
    ) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            url, decode_responses=False, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._ttl = ttl
        self._timeout = timeout
        self._prefix = "streamforge:"
        self.breaker = CircuitBreaker(threshold=breaker_threshold, cooldown=breaker_cooldown)
        self.fallback = MemoryCache(ttl=ttl, max_entries=max_entries)

    async def _call(self, make: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            return await fallback()
        try:
            result = await asyncio.wait_for(make(), self._timeout)
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        except Exception as exc:  # any failure of Redis: the in-process cache stands in
            self.breaker.record_failure()
            log.warning("redis cache unavailable (%s); using the in-process cache", type(exc).__name__)
            return await fallback()
        self.breaker.record_success()
        return result

    async def ping(self) -> None:
        await asyncio.wait_for(self._redis.ping(), self._timeout)

    async def get(self, key: str) -> CachedPlan | None:
        async def remote() -> CachedPlan | None:
            raw = await self._redis.get(f"{self._prefix}plan:{key}")
            return json.loads(raw) if raw else None

        return await self._call(remote, lambda: self.fallback.get(key))

    async def set(self, key: str, value: CachedPlan) -> None:
        if self._ttl <= 0:
            return

        async def remote() -> None:
            blob = json.dumps(value, separators=(",", ":"))
            await self._redis.set(f"{self._prefix}plan:{key}", blob, px=max(1, int(self._ttl * 1000)))

        await self._call(remote, lambda: self.fallback.set(key, value))

    async def clear(self) -> None:
        await self.fallback.clear()

        async def remote() -> None:
            async for name in self._redis.scan_iter(match=f"{self._prefix}plan:*", count=500):
                await self._redis.delete(name)

        await self._call(remote, _nothing)

    async def acquire(self, key: str, ttl: float) -> bool:
        async def remote() -> bool:
            return bool(await self._redis.set(f"{self._prefix}lock:{key}", b"1", nx=True, px=int(ttl * 1000)))

        return await self._call(remote, _granted)

    async def release(self, key: str) -> None:
        await self._call(lambda: self._redis.delete(f"{self._prefix}lock:{key}"), _nothing)

    async def wait_for(self, key: str, within: float) -> CachedPlan | None:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if self.breaker.state == "open":
                return None  # Redis went away while we waited: plan ourselves
            plan = await self.get(key)
            if plan is not None:
                return plan
            if not await self._call(lambda: self._redis.exists(f"{self._prefix}lock:{key}"), _zero):
                return await self.get(key)
            await asyncio.sleep(self._POLL)
        return None

    async def aclose(self) -> None:
        await self.fallback.aclose()
        await self._redis.aclose()


async def _nothing() -> None:
    return None


async def _granted() -> bool:
    return True


async def _zero() -> int:
    return 0


def build_cache(url: str, *, ttl: float, max_entries: int) -> PlanCache:
    """The cache named by ``STREAMFORGE_CACHE_URL``: ``memory://`` (default) or ``redis://...``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme in ("memory", ""):
        return MemoryCache(ttl=ttl, max_entries=max_entries)
    if scheme in ("redis", "rediss", "unix"):
        return RedisCache(url, ttl=ttl, max_entries=max_entries)
    raise ValueError(f"unsupported STREAMFORGE_CACHE_URL scheme {scheme!r} (use memory:// or redis://)")
