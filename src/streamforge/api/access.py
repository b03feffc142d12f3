"""Who may call the API, and how often: optional API keys and per-caller rate limits.

Keys (``STREAMFORGE_API_KEYS``, comma-separated) are compared with ``hmac.compare_digest`` against
every configured key, so timing says nothing about which prefix matched. A caller is identified by
a SHA-256 fingerprint of its key (never the key itself, which is never logged or stored) or, with
keys off, by its client address. Rate limits use the ``limits`` library's moving window, in memory by
default or in Redis when the cache is (``STREAMFORGE_CACHE_URL=redis://``), so several workers share
one budget. Cache hits count like any other request: the limit protects the service, not the LLM.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from streamforge.api.errors import APIError
from streamforge.config import Settings


def fingerprint(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]


class AccessControl:
    def __init__(self, settings: Settings) -> None:
        self._keys = [k.strip().encode() for k in (settings.api_keys or "").split(",") if k.strip()]
        self._limit: RateLimitItem | None = parse(settings.rate_limit) if settings.rate_limit else None
        storage: Storage
        if settings.cache_url.startswith(("redis://", "rediss://")):
            storage = RedisStorage("async+" + settings.cache_url, implementation="redispy")
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    @property
    def keys_required(self) -> bool:
        return bool(self._keys)

    def owner_of(self, request: Request) -> str | None:
        """The caller's fingerprint with keys on (checked), else None."""
        if not self._keys:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                "unauthorized",
                "an API key is required: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = token.strip().encode()
        matched = False
        for key in self._keys:  # no early exit: every key is compared every time
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise APIError(
                401, "unauthorized", "the API key is not valid", headers={"WWW-Authenticate": "Bearer"}
            )
        return fingerprint(token.strip())

    async def check_rate(self, caller: str) -> None:
        if self._limit is None:
            return
        if await self._limiter.hit(self._limit, caller):
            return
        stats = await self._limiter.get_window_stats(self._limit, caller)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise APIError(
            429,
            "rate_limited",
            f"too many requests: the limit is {self._limit}; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


async def require_access(request: Request) -> None:
    """A route dependency: authenticate (when keys are on), then count the request against the limit."""
    access: AccessControl = request.app.state.access
    owner = access.owner_of(request)
    request.state.owner = owner
    caller = owner or f"ip:{request.client.host if request.client else 'unknown'}"
    await access.check_rate(caller)
