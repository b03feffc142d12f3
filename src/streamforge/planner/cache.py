"""The planner cache: an interface, and the in-process backend.

The key is a SHA-256 over everything that changes the answer: the normalised message, the provider
chain and model, the data source and any conversation context. Values are the validated components
of a plan (ids are made fresh on every hit, so two dashboards never share an id). The interface is
async so a shared backend (Redis, for several workers) can slot in without touching the service.
"""

from __future__ import annotations

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

    def __len__(self) -> int:
        return len(self._entries)


def build_cache(url: str, *, ttl: float, max_entries: int) -> PlanCache:
    """The cache named by ``STREAMFORGE_CACHE_URL``: ``memory://`` (default)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme in ("memory", ""):
        return MemoryCache(ttl=ttl, max_entries=max_entries)
    raise ValueError(f"unsupported STREAMFORGE_CACHE_URL scheme {scheme!r} (use memory://)")
