"""Who may call the API, and how often: optional API keys and per-caller rate limits.

Keys (``STREAMFORGE_API_KEYS``, comma-separated) are compared with ``hmac.compare_digest`` against
every configured key, so timing says nothing about which prefix matched. A caller is identified by
a SHA-256 fingerprint of its key (never the key itself, which is never logged or stored) or, with
keys off, by its client address. Rate limits use the ``limits`` library's moving window, in memory by
default or in Redis when the cache is (``STREAMFORGE_CACHE_URL=redis://``), so several workers share
one budget. Cache hits count like any other request: the limit protects the service, not the LLM.

Redis that is down or hangs costs each request at most ``STREAMFORGE_REDIS_TIMEOUT``; after a few
failures in a row a circuit breaker stops asking it for a while, and meanwhile limits are counted in
this process (per worker, so briefly looser with several workers, never absent).

Wrong keys are limited too: ``STREAMFORGE_AUTH_FAILURE_LIMIT`` failed attempts per client address,
then 429 without looking at the key. The client address is the socket's peer, unless that peer is
one of ``STREAMFORGE_TRUSTED_PROXIES``: only then is ``X-Forwarded-For`` read (the right-most address
that is not itself a trusted proxy), so a caller cannot pick its own address to dodge the limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from streamforge.api.errors import APIError
from streamforge.config import Settings
from streamforge.planner.breaker import CircuitBreaker

log = logging.getLogger(__name__)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str | None) -> list[Network]:
    """``STREAMFORGE_TRUSTED_PROXIES``: comma-separated addresses or CIDR blocks."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in (value or "").split(",") if part.strip()
    ]


def _in(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request, trusted: list[Network]) -> str:
    """The caller's address: the peer, or (behind a trusted proxy only) the forwarded client."""
    peer = request.client.host if request.client else "unknown"
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def fingerprint(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]


class AccessControl:
    def __init__(self, settings: Settings) -> None:
        self._keys = [k.strip().encode() for k in (settings.api_keys or "").split(",") if k.strip()]
        self._limit: RateLimitItem | None = parse(settings.rate_limit) if settings.rate_limit else None
        self._auth_limit: RateLimitItem | None = (
            parse(settings.auth_failure_limit) if settings.auth_failure_limit else None
        )
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self._timeout = settings.redis_timeout
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._remote: MovingWindowRateLimiter | None = None
        self._storage: Storage | None = None
        if settings.cache_url.startswith(("redis://", "rediss://")):
            self._storage = RedisStorage(
                "async+" + settings.cache_url,
                implementation="redispy",
                socket_timeout=settings.redis_timeout,
                socket_connect_timeout=settings.redis_timeout,
            )
            self._remote = MovingWindowRateLimiter(self._storage)
        self.breaker = CircuitBreaker(
            threshold=settings.dependency_breaker_threshold, cooldown=settings.dependency_breaker_cooldown
        )

    @property
    def uses_redis(self) -> bool:
        return self._remote is not None

    async def ping(self) -> None:
        """Raise when the limiter's Redis does not answer (for ``/readyz``)."""
        if self._storage is not None and not await asyncio.wait_for(self._storage.check(), self._timeout):
            raise ConnectionError("redis did not answer PING")

    async def _hit(self, limit: RateLimitItem, caller: str, *, test_only: bool = False) -> tuple[bool, float]:
        """Count (or only test) one request; (allowed, reset time). Redis first, this process if not."""
        if self._remote is not None and self.breaker.allow():
            try:
                counted = await asyncio.wait_for(
                    self._count(self._remote, limit, caller, test_only), self._timeout
                )
            except asyncio.CancelledError:
                self.breaker.abandon()
                raise
            except Exception as exc:  # Redis down, hung or refusing: count here instead
                self.breaker.record_failure()
                log.warning(
                    "rate limit storage unavailable (%s); counting in this process", type(exc).__name__
                )
            else:
                self.breaker.record_success()
                return counted
        return await self._count(self._local, limit, caller, test_only)

    @staticmethod
    async def _count(
        limiter: MovingWindowRateLimiter, limit: RateLimitItem, caller: str, test_only: bool
    ) -> tuple[bool, float]:
        allowed = await (limiter.test(limit, caller) if test_only else limiter.hit(limit, caller))
        if allowed:
            return True, 0.0
        stats = await limiter.get_window_stats(limit, caller)
        return False, stats.reset_time

    @property
    def keys_required(self) -> bool:
        return bool(self._keys)

    async def owner_of(self, request: Request) -> str | None:
        """The caller's fingerprint with keys on (checked), else None."""
        if not self._keys:
            return None
        address = "auth:" + client_address(request, self.trusted_proxies)
        if self._auth_limit is not None:
            allowed, reset = await self._hit(self._auth_limit, address, test_only=True)
            if not allowed:
                self._refuse(self._auth_limit, reset, "failed API key attempts")
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
            if self._auth_limit is not None:
                await self._hit(self._auth_limit, address)
            raise APIError(
                401, "unauthorized", "the API key is not valid", headers={"WWW-Authenticate": "Bearer"}
            )
        return fingerprint(token.strip())

    async def check_rate(self, caller: str) -> None:
        if self._limit is None:
            return
        allowed, reset = await self._hit(self._limit, caller)
        if not allowed:
            self._refuse(self._limit, reset, "requests")

    @staticmethod
    def _refuse(limit: RateLimitItem, reset: float, what: str) -> None:
        retry = max(1, math.ceil(reset - time.time()))
        raise APIError(
            429,
            "rate_limited",
            f"too many {what}: the limit is {limit}; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


async def require_access(request: Request) -> None:
    """A route dependency: authenticate (when keys are on), then count the request against the limit."""
    access: AccessControl = request.app.state.access
    owner = await access.owner_of(request)
    request.state.owner = owner
    caller = owner or f"ip:{client_address(request, access.trusted_proxies)}"
    await access.check_rate(caller)
