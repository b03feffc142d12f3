"""A circuit breaker per planner: stop calling a provider that keeps failing, try it again later.

Closed: calls go through and consecutive failures are counted. After ``threshold`` failures in a row
it opens: the planner is skipped (the chain moves on at once instead of waiting for timeouts) for
``cooldown`` seconds. Then it is half-open: one trial call goes through; success closes it, failure
opens it again. Hand-written (about forty lines) because the asyncio breakers on PyPI are either
unmaintained or wrap the call themselves, and here the service, not the breaker, owns the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(
        self, *, threshold: int = 3, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one trial at a time does."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def abandon(self) -> None:
        """The call was cancelled before it told anything: let the next one be the trial."""
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_running = False
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._clock()
