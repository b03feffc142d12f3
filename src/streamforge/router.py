"""Which path answers a message: the planner or the legacy pattern mode.

The order: a planner keyword; then a follow-up in a session the planner last answered; then what
the pattern mode recognises, unless the message names the connected data ("revenue by region as a
pie chart" is the planner's: real numbers beat sample ones); then the planner for everything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from streamforge import patterns
from streamforge.config import PLANNER_KEYWORDS, Settings
from streamforge.sessions import Route

_KEYWORDS = re.compile(r"\b(" + "|".join(PLANNER_KEYWORDS) + r")\b", re.IGNORECASE)


def has_planner_keyword(message: str) -> bool:
    return _KEYWORDS.search(message) is not None


def route(
    message: str,
    settings: Settings,
    last_route: Route | None = None,
    names_data: Callable[[str], bool] | None = None,
) -> Route:
    if settings.routing == "planner" or has_planner_keyword(message):
        return "planner"
    if last_route == "planner":
        return "planner"
    if patterns.detect(message) and not (names_data is not None and names_data(message)):
        return "pattern"
    return "planner"
