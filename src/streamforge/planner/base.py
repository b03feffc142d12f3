"""The one thing the planner service asks of whatever decides a layout.

Both the offline planner (rules over a real schema) and an LLM behind a provider are a
``Planner``: they turn a message into raw component dicts of the wire shape. Everything around
that (cache, single-flight, failover, validation, fallback) lives once, in the service.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

RawComponent = dict[str, Any]


@runtime_checkable
class Planner(Protocol):
    name: str
    model_id: str

    async def plan(self, message: str, context: dict[str, Any] | None = None) -> list[RawComponent]: ...


# A planner may also have ``plan_stream(message, context)`` (an async iterator of components, used
# when present) and ``aclose()`` (called at shutdown when present).
