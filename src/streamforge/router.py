"""Which path answers a message: the planner or the legacy pattern mode.

The order is settled in ``decisions.md``: a planner keyword; then a follow-up in a session the
planner last answered; then what the pattern mode recognises; then the planner for everything else.
"""

from __future__ import annotations

import re

from streamforge import patterns
from streamforge.config import PLANNER_KEYWORDS, Settings
from streamforge.sessions import Route

_KEYWORDS = re.compile(r"\b(" + "|".join(PLANNER_KEYWORDS) + r")\b", re.IGNORECASE)


def has_planner_keyword(message: str) -> bool:
    return _KEYWORDS.search(message) is not None


def route(message: str, settings: Settings, last_route: Route | None = None) -> Route:
    if settings.routing == "planner" or has_planner_keyword(message):
        return "planner"
    if last_route == "planner":
        return "planner"
    if patterns.detect(message):
        return "pattern"
    return "planner"
