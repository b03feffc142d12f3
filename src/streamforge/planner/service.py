"""PlannerService: the orchestration of a plan, nothing else.

cache -> single-flight -> each planner of the failover chain in turn (skipping those whose circuit
breaker is open) -> the one validator -> fallback. ``stream_layout`` yields each component as soon
as it is valid, so a streaming LLM's first component reaches the client before its last is written;
``generate_layout`` is the same, collected. Neither raises: a request always gets components, and a
failure is logged and explained in words in a fallback card. Concurrent identical requests that miss
the cache share one planner call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from streamforge import patterns
from streamforge.components import Limits, new_id, now_iso, validate_component, validate_components
from streamforge.planner.base import Planner, RawComponent
from streamforge.planner.breaker import CircuitBreaker
from streamforge.planner.cache import CachedPlan, PlanCache, cache_key
from streamforge.providers.base import ProviderError

log = logging.getLogger(__name__)


class LayoutResult(BaseModel):
    """What a plan is: validated component frames and where they came from."""

    components: list[dict[str, Any]]
    from_cache: bool = False
    processing_time_ms: float = 0.0
    model_id: str
    provider: str
    fallback: bool = False
    errors: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)  # ids of earlier components taken away


LayoutEvent = dict[str, Any] | LayoutResult
"""What ``stream_layout`` yields: component (and ``remove``) frames, then one ``LayoutResult`` last."""


def _plain_reason(planner: str, exc: BaseException) -> str:
    """A failure in words a person understands (the log keeps the details)."""
    if isinstance(exc, ProviderError):
        kind = "is busy or unreachable" if exc.transient else "refused the request"
        return f"the {planner} service {kind} ({exc})"
    if isinstance(exc, TimeoutError):
        return f"the {planner} planner took too long to answer"
    return f"the {planner} planner failed ({type(exc).__name__}: {exc})"


def fallback_components(message: str, reasons: Sequence[str]) -> list[RawComponent]:
    """A card that says why the planner is unavailable, then what the pattern mode can still show."""
    why = "; ".join(reasons) or "no planner produced a valid answer"
    card: RawComponent = {
        "type": "SimpleComponent",
        "data": {
            "title": "The planner is unavailable",
            "value": "Showing what we can",
            "description": f"We could not plan this dashboard: {why[:1500]}. "
            "Below is what the simple pattern mode can still show.",
            "source": None,
        },
    }
    asks = patterns.detect(message)
    follow = patterns.help_component()
    if asks:
        follow = {
            "type": "SimpleComponent",
            "data": {
                "title": "Try the pattern mode",
                "value": ", ".join(a.kind for a in asks),
                "description": 'Ask again without planner keywords (for example "show me sales table") '
                "to get sample components from the pattern mode.",
                "source": None,
            },
        }
    return [card, follow]


def _refresh_ids(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A plan served again gets new ids and timestamps: two dashboards never share an id."""
    return [{**c, "id": new_id(), "data": {**c.get("data", {}), "timestamp": now_iso()}} for c in components]


async def _components_of(
    planner: Planner, message: str, context: dict[str, Any] | None
) -> AsyncIterator[RawComponent]:
    """A planner's components one at a time: streamed when it can stream, else all at once."""
    streaming = getattr(planner, "plan_stream", None)
    if streaming is not None:
        async for raw in streaming(message, context):
            yield raw
        return
    for raw in await planner.plan(message, context):
        yield raw


def _previous_ids(context: dict[str, Any] | None) -> set[str]:
    """Ids of the components a follow-up may replace or remove (those of the session's last answer)."""
    previous = (context or {}).get("previous") or []
    return {c["id"] for c in previous if isinstance(c, dict) and isinstance(c.get("id"), str)}


def _is_removal(raw: object, previous: set[str]) -> bool:
    return isinstance(raw, dict) and raw.get("type") == "remove" and raw.get("id") in previous


class _Planned:
    """The end of ``_plan``: the plan record, as it goes to the cache."""

    def __init__(self, plan: CachedPlan) -> None:
        self.plan = plan


class PlannerService:
    """Turns a message into components with the planners of a failover chain."""

    def __init__(
        self,
        planners: Sequence[Planner],
        cache: PlanCache,
        limits: Limits,
        *,
        source_identity: str = "",
        breaker_threshold: int = 3,
        breaker_cooldown: float = 30.0,
        lock_ttl: float = 60.0,
    ) -> None:
        if not planners:
            raise ValueError("the planner chain is empty")
        self.planners = list(planners)
        self.cache = cache
        self.limits = limits
        self.source_identity = source_identity
        self.breakers = [
            CircuitBreaker(threshold=breaker_threshold, cooldown=breaker_cooldown) for _ in self.planners
        ]
        self.lock_ttl = lock_ttl  # how long another worker waits for this one's plan at most
        # Set by the factory when a data source is connected: does a message name its tables,
        # columns or values? (the router sends such a message to the planner, not the pattern mode)
        self.names_data: Callable[[str], bool] | None = None
        self._inflight: dict[str, asyncio.Future[CachedPlan]] = {}

    @property
    def chain_name(self) -> str:
        return ",".join(p.name for p in self.planners)

    def _key(self, message: str, context: dict[str, Any] | None) -> str:
        return cache_key(
            message,
            planner=self.chain_name,
            model_id=",".join(p.model_id for p in self.planners),
            source=self.source_identity,
            context=context,
        )

    async def generate_layout(self, message: str, context: dict[str, Any] | None = None) -> LayoutResult:
        """The whole plan at once (the CLI and scorers use this; ``/chat`` streams)."""
        async for event in self.stream_layout(message, context):
            if isinstance(event, LayoutResult):
                return event
        raise AssertionError("stream_layout always ends with a LayoutResult")

    async def stream_layout(
        self, message: str, context: dict[str, Any] | None = None
    ) -> AsyncIterator[LayoutEvent]:
        started = time.perf_counter()
        if _previous_ids(context):
            # A follow-up re-plans what one session has on screen, keeping its component ids: it is
            # neither shared with other requests nor served again from the cache.
            async for step in self._plan(message, context):
                if isinstance(step, _Planned):
                    yield self._result(step.plan, started, from_cache=False)
                else:
                    yield step
            return
        key = self._key(message, context)
        try:
            cached = await self.cache.get(key)
        except Exception:  # a broken cache must not break planning
            log.exception("plan cache read failed; planning without it")
            cached = None
        if cached is None and (waiting := self._inflight.get(key)) is not None:
            try:
                cached = await asyncio.shield(waiting)
            except asyncio.CancelledError:
                if not waiting.cancelled():
                    raise  # we were cancelled, not the leader
                cached = None  # the leader's client went away: plan ourselves
            else:
                async for event in self._replay(cached, started, from_cache=False):
                    yield event
                return
        if cached is not None:
            async for event in self._replay(cached, started, from_cache=True):
                yield event
            return

        future: asyncio.Future[CachedPlan] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        plan: CachedPlan | None = None
        claimed = False
        try:
            claimed = await self._claim(key)
            if not claimed:  # another worker is planning this very request
                shared = await self.cache.wait_for(key, self.lock_ttl)
                if shared is not None:
                    plan = shared
                    async for event in self._replay(shared, started, from_cache=True):
                        yield event
                    return
            async for step in self._plan(message, context):
                if isinstance(step, _Planned):
                    plan = step.plan
                else:
                    yield step
            assert plan is not None
            if not plan.get("fallback"):
                try:
                    await self.cache.set(key, plan)
                except Exception:
                    log.exception("plan cache write failed")
        finally:
            self._inflight.pop(key, None)
            if plan is not None:
                future.set_result(plan)
            else:
                future.cancel()  # waiters plan for themselves
            if claimed:
                # Shielded: when the client went away this task is being cancelled, and the release
                # must still reach Redis, or every other worker asking the same question waits
                # lock_ttl for a plan that will never come.
                await asyncio.shield(self._unclaim(key))
        yield self._result(plan, started, from_cache=False)

    async def _claim(self, key: str) -> bool:
        try:
            return await self.cache.acquire(key, self.lock_ttl)
        except Exception:
            log.exception("plan lock failed; planning without it")
            return True

    async def _unclaim(self, key: str) -> None:
        try:
            await self.cache.release(key)
        except Exception:
            log.exception("plan lock release failed (it expires by itself)")

    async def _replay(
        self, plan: CachedPlan, started: float, *, from_cache: bool
    ) -> AsyncIterator[LayoutEvent]:
        """Serve a plan made earlier (or by another request) again, under fresh ids."""
        frames = _refresh_ids(plan["components"])
        for frame in frames:
            yield frame
        yield self._result({**plan, "components": frames}, started, from_cache=from_cache)

    def _result(self, plan: CachedPlan, started: float, *, from_cache: bool) -> LayoutResult:
        return LayoutResult(
            components=plan["components"],
            from_cache=from_cache,
            processing_time_ms=(time.perf_counter() - started) * 1000,
            model_id=plan["model_id"],
            provider=plan["provider"],
            fallback=plan.get("fallback", False),
            errors=plan.get("errors", []),
            removed=plan.get("removed", []),
        )

    async def _plan(
        self, message: str, context: dict[str, Any] | None
    ) -> AsyncIterator[dict[str, Any] | _Planned]:
        """Yield valid frames from the chain, then the plan record.

        A planner that fails after sending some components keeps them; the next planner of the chain
        supplies the rest, up to the component limit.
        """
        errors: list[str] = []
        sent: list[dict[str, Any]] = []
        answered: list[Planner] = []
        previous = _previous_ids(context)
        removed: set[str] = set()
        for planner, breaker in zip(self.planners, self.breakers, strict=True):
            if len(sent) >= self.limits.max_components:
                break
            if not breaker.allow():
                errors.append(f"the {planner.name} planner is paused after repeated failures")
                continue
            before = len(sent)
            try:
                async for raw in _components_of(planner, message, context):
                    if _is_removal(raw, previous):
                        if raw["id"] not in removed:
                            removed.add(raw["id"])
                            yield {"type": "remove", "id": raw["id"]}
                        continue
                    keeps_id = isinstance(raw, dict) and raw.get("id") in previous
                    if isinstance(raw, dict) and "id" in raw and (not keeps_id or raw["id"] in removed):
                        raw = {k: v for k, v in raw.items() if k != "id"}  # only on-screen ids are reused
                    if keeps_id and any(f["id"] == raw.get("id") for f in sent):
                        raw = {k: v for k, v in raw.items() if k != "id"}  # one id, one component
                    component = validate_component(raw, self.limits)
                    if component is None:
                        continue
                    frame = component.model_dump(mode="json")
                    sent.append(frame)
                    yield frame
                    if len(sent) >= self.limits.max_components:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                breaker.record_failure()
                log.warning(
                    "planner %s failed after %d components: %s",
                    planner.name,
                    len(sent) - before,
                    exc,
                    exc_info=not isinstance(exc, ProviderError),
                )
                errors.append(_plain_reason(planner.name, exc))
                if len(sent) > before:
                    answered.append(planner)
                continue
            if len(sent) > before or removed:
                breaker.record_success()
                answered.append(planner)
                break
            breaker.record_failure()
            log.warning("planner %s answered with no valid component", planner.name)
            errors.append(f"the {planner.name} planner gave no usable components")
        if sent or removed:
            yield _Planned(
                {
                    "components": sent,
                    "model_id": ",".join(p.model_id for p in answered),
                    "provider": "+".join(p.name for p in answered),
                    "errors": errors,
                    "removed": sorted(removed),
                }
            )
            return
        log.error("every planner failed for %r: %s", message[:80], "; ".join(errors))
        fallback = [
            c.model_dump(mode="json")
            for c in validate_components(fallback_components(message, errors), self.limits)
        ]
        for frame in fallback:
            yield frame
        yield _Planned(
            {
                "components": fallback,
                "model_id": "fallback",
                "provider": "fallback",
                "fallback": True,
                "errors": errors,
            }
        )

    async def clear_cache(self) -> None:
        await self.cache.clear()

    async def aclose(self) -> None:
        for planner in self.planners:
            closer = getattr(planner, "aclose", None)
            if closer is None:
                continue
            try:
                await closer()
            except Exception:
                log.exception("closing planner %s failed", planner.name)
        await self.cache.aclose()
