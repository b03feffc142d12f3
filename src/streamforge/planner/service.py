"""PlannerService.generate_layout(): the orchestration, nothing else.

cache -> single-flight -> each planner of the chain in turn -> the one validator -> fallback.
It never raises: a request always gets components, and a failure is logged and explained in words
in a fallback card. Concurrent identical requests that miss the cache share one planner call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from streamforge import patterns
from streamforge.components import Limits, new_id, now_iso, validate_components
from streamforge.planner.base import Planner, RawComponent
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


def _plain_reason(exc: BaseException) -> str:
    """A failure in words a person understands (the log keeps the details)."""
    if isinstance(exc, ProviderError):
        kind = "is busy or unreachable" if exc.transient else "refused the request"
        return f"the {exc.provider or 'language model'} service {kind} ({exc})"
    if isinstance(exc, TimeoutError):
        return "the planner took too long to answer"
    return f"the planner failed ({type(exc).__name__}: {exc})"


def fallback_components(message: str, reasons: Sequence[str]) -> list[RawComponent]:
    """A card that says why the planner is unavailable, then what the pattern mode can still show."""
    why = "; ".join(reasons) or "no planner produced a valid answer"
    card: RawComponent = {
        "type": "SimpleComponent",
        "data": {
            "title": "The planner is unavailable",
            "value": "Showing what we can",
            "description": f"We could not plan this dashboard: {why}. "
            "Below is what the simple pattern mode can still show.",
            "source": None,
        },
    }
    pattern = [dict(a.__dict__) for a in patterns.detect(message)]
    follow = patterns.help_component()
    if pattern:
        follow = {
            "type": "SimpleComponent",
            "data": {
                "title": "Try the pattern mode",
                "value": ", ".join(p["kind"] for p in pattern),
                "description": 'Ask again without planner keywords (for example "show me sales table") '
                "to get sample components from the pattern mode.",
                "source": None,
            },
        }
    return [card, follow]


def _refresh_ids(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A cached plan served again gets new ids and timestamps: two dashboards never share an id."""
    fresh = []
    for component in components:
        data = {**component.get("data", {}), "timestamp": now_iso()}
        fresh.append({**component, "id": new_id(), "data": data})
    return fresh


class PlannerService:
    """Turns a message into a :class:`LayoutResult` with the planners of a failover chain."""

    def __init__(
        self,
        planners: Sequence[Planner],
        cache: PlanCache,
        limits: Limits,
        *,
        source_identity: str = "",
    ) -> None:
        if not planners:
            raise ValueError("the planner chain is empty")
        self.planners = list(planners)
        self.cache = cache
        self.limits = limits
        self.source_identity = source_identity
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
        started = time.perf_counter()
        key = self._key(message, context)
        try:
            cached = await self.cache.get(key)
        except Exception:  # a broken cache must not break planning
            log.exception("plan cache read failed; planning without it")
            cached = None
        if cached is not None:
            return self._result(cached, started, from_cache=True)

        if (waiting := self._inflight.get(key)) is not None:
            plan = await asyncio.shield(waiting)
            return self._result(plan, started, from_cache=False, refresh=True)

        future: asyncio.Future[CachedPlan] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            plan = await self._plan(message, context)
            future.set_result(plan)
        except BaseException as exc:  # cancellation included: waiters must not hang
            future.set_exception(exc)
            future.exception()  # mark retrieved; waiters get it through shield
            raise
        finally:
            self._inflight.pop(key, None)
        if not plan.get("fallback"):
            try:
                await self.cache.set(key, plan)
            except Exception:
                log.exception("plan cache write failed")
        return self._result(plan, started, from_cache=False)

    def _result(
        self, plan: CachedPlan, started: float, *, from_cache: bool, refresh: bool | None = None
    ) -> LayoutResult:
        components = plan["components"]
        if from_cache or refresh:
            components = _refresh_ids(components)
        return LayoutResult(
            components=components,
            from_cache=from_cache,
            processing_time_ms=(time.perf_counter() - started) * 1000,
            model_id=plan["model_id"],
            provider=plan["provider"],
            fallback=plan.get("fallback", False),
            errors=plan.get("errors", []),
        )

    async def _plan(self, message: str, context: dict[str, Any] | None) -> CachedPlan:
        """Try each planner in order; the first with at least one valid component answers."""
        errors: list[str] = []
        for planner in self.planners:
            try:
                raw = await planner.plan(message, context)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "planner %s failed: %s", planner.name, exc, exc_info=not isinstance(exc, ProviderError)
                )
                errors.append(_plain_reason(exc))
                continue
            valid = validate_components(raw, self.limits)
            if valid:
                return {
                    "components": [c.model_dump(mode="json") for c in valid],
                    "model_id": planner.model_id,
                    "provider": planner.name,
                    "errors": errors,
                }
            log.warning("planner %s answered with no valid component (%d raw)", planner.name, len(raw))
            errors.append(f"the {planner.name} planner gave no usable components")
        log.error("every planner failed for %r: %s", message[:80], "; ".join(errors))
        fallback = validate_components(fallback_components(message, errors), self.limits)
        return {
            "components": [c.model_dump(mode="json") for c in fallback],
            "model_id": "fallback",
            "provider": "fallback",
            "fallback": True,
            "errors": errors,
        }

    async def clear_cache(self) -> None:
        await self.cache.clear()

    async def aclose(self) -> None:
        for planner in self.planners:
            try:
                await planner.aclose()
            except Exception:
                log.exception("closing planner %s failed", planner.name)
        await self.cache.aclose()
