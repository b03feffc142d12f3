"""What kind of answer a message asks for, from its cue words alone (no schema needed).

Design choice: cue phrases with a fixed priority instead of a trained classifier. The classes are few
and their cues are distinctive ("relationship", "top", "share", "over time"); a priority list is
instant, needs no model download, and every decision can be read and explained. When cues compete,
the more specific shape wins: a relationship or distribution needs a special chart, a comparison or a
ranking changes the query, a share changes the chart, and "over time" only adds a time axis.

An explicit chart type ("as an area chart") and an explicit table are reported separately: they win
over whatever the intent would have drawn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamforge.offline.lexicon import (
    CHART_WORDS,
    GENERIC_CHART_WORDS,
    GRAIN_WORDS,
    NUMBER_WORDS,
    SINGLE_CUES,
    SUPERLATIVE_ASC,
    SUPERLATIVE_DESC,
    TABLE_WORDS,
)

__all__ = ["Intent", "IntentInfo", "detect"]

Intent = str  # overview relationship distribution comparison ranking share trend list single none


def _words(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b")


_OVERVIEW = _words(
    "overview",
    "dashboards?",
    "summary",
    "summari[sz]e",
    "kpis?",
    "performance",
    "insights?",
    "health",
    "snapshot",
    "analy[sz]e",
    "analysis",
    "analytics",
    "how are we doing",
    "how is it going",
    "report",
    "metrics",
    "at a glance",
    "big picture",
)
_RELATIONSHIP = _words(
    "relationship",
    "relation",
    "correlat\\w*",
    "relate[sd]?",
    "impact of",
    "effect of",
    "affects?",
    "depends? on",
    "scatter",
    "association",
    "versus each other",
)
_DISTRIBUTION = _words(
    "distribution", "distributed", "histogram", "spread", "dispersion", "range of", "buckets?"
)
_COMPARISON = _words(
    "compare", "compared", "comparing", "comparison", "vs", "versus", "against", "difference", "differ"
)
_RANKING = _words(
    *SUPERLATIVE_DESC,
    *SUPERLATIVE_ASC,
    "rank",
    "ranking",
    "ranked",
    "popular",
    "most popular",
    "fewest",
)
_SHARE = _words(
    "share",
    "shares",
    "proportions?",
    "percentages?",
    "percent",
    "breakdown",
    "broken down",
    "composition",
    "split",
    "mix",
    "fractions?",
    "part of",
    "pie",
    "donut",
)
_TREND = _words(
    "trends?",
    "trending",
    "over time",
    "timeline",
    "history",
    "historical",
    "evolution",
    "evolved?",
    "growth",
    "grow",
    "growing",
    "time series",
    "over the (?:years?|months?|weeks?|days?|quarters?)",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "yearly",
    "annual",
    "annually",
    "dau",
    "wau",
    "mau",
    "(?:per|by|each|every|a) (?:day|week|month|quarter|year)",
    "since",
    "changed?",
    "progress",
    "month over month",
    "year over year",
    "line chart",
    "area chart",
    "over the period",
)
_LIST = _words(
    "list",
    "listing",
    "show all",
    "all the",
    "records?",
    "rows?",
    "details?",
    "recent",
    "latest",
    "newest",
    "oldest",
    "earliest",
    "raw",
    "entries",
    "who are",
    "which ones",
)
_SINGLE = _words(*[re.escape(c) for c in SINGLE_CUES], "total", "average", "avg", "mean", "sum of", "count")
_RECENT = _words("recent", "latest", "newest", "last few", "most recent")
_OLDEST = _words("oldest", "earliest", "first few")
_WHICH = _words("which", "what", "who")
_SHOW = _words("show", "display", "see", "view", "find", "fetch", "pull up")
_TOP_N = re.compile(
    r"\b(?:top|bottom|best|worst|first|last|highest|lowest|largest|smallest|biggest)\s+(\d{1,3}|[a-z]+)\b"
    r"|\b(\d{1,3})\s+(?:top|best|worst|biggest|largest|most|least|highest|lowest)\b"
)


@dataclass(frozen=True)
class IntentInfo:
    intent: Intent
    overview: bool
    chart_type: str | None  # an explicit chart type
    wants_chart: bool  # "chart", "graph", "plot" without a type
    wants_table: bool
    grain: str | None  # an explicit time grain
    descending: bool | None  # for rankings: top (True) or bottom (False)
    top_n: int | None
    recent: bool | None  # list order: newest first (True), oldest first (False)
    question: bool  # "which ...": the answer is one name, worth a card
    show: bool = False  # "show", "display", "find": a verb that asks to see rows rather than a figure


def _top_n(text: str) -> int | None:
    for m in _TOP_N.finditer(text):
        raw = m.group(1) or m.group(2)
        n = int(raw) if raw.isdigit() else NUMBER_WORDS.get(raw)
        if n and 0 < n <= 100:
            return n
    return None


def detect(text: str) -> IntentInfo:
    """Classify a lower-cased message."""
    words = set(re.findall(r"[a-z]+", text))
    chart_type = next(
        (CHART_WORDS[w] for w in re.findall(r"[a-z]+", text) if w in CHART_WORDS and _charty(w, text)), None
    )
    wants_chart = bool(words & GENERIC_CHART_WORDS) or chart_type is not None
    wants_table = bool(words & TABLE_WORDS)
    grain = next(
        (
            GRAIN_WORDS[m.group(1)]
            for m in re.finditer(r"\b(daily|weekly|monthly|quarterly|yearly|annual|annually)\b", text)
        ),
        None,
    ) or next(
        (
            GRAIN_WORDS[m.group(1)]
            for m in re.finditer(r"\b(?:per|by|each|every|a)\s+(day|week|month|quarter|year)\b", text)
        ),
        None,
    )
    recent = True if _RECENT.search(text) else False if _OLDEST.search(text) else None
    ranking = bool(_RANKING.search(text)) and not (
        recent is not None and re.search(r"most recent|first few|last few", text)
    )
    descending: bool | None = None
    if ranking:
        asc = bool(words & SUPERLATIVE_ASC)
        descending = not asc
    if chart_type == "scatter" or _RELATIONSHIP.search(text):
        intent = "relationship"
    elif _DISTRIBUTION.search(text) or (chart_type == "bar" and "histogram" in words):
        intent = "distribution"
    elif _COMPARISON.search(text):
        intent = "comparison"
    elif ranking:
        intent = "ranking"
    elif _SHARE.search(text) or chart_type == "pie":
        intent = "share"
    elif _TREND.search(text) or grain is not None:
        intent = "trend"
    elif _LIST.search(text):
        intent = "list"
    elif _SINGLE.search(text):
        intent = "single"
    else:
        intent = "none"
    return IntentInfo(
        intent=intent,
        overview=bool(_OVERVIEW.search(text)),
        chart_type=chart_type,
        wants_chart=wants_chart,
        wants_table=wants_table,
        grain=grain,
        descending=descending,
        top_n=_top_n(text),
        recent=recent,
        question=bool(_WHICH.search(text)) and ranking,
        show=bool(_SHOW.search(text)),
    )


def _charty(word: str, text: str) -> bool:
    """ "area" is a chart type in "area chart" but a place in "sales by area"."""
    if word in ("pie", "scatter", "histogram", "donut", "doughnut"):
        return True
    return bool(re.search(rf"\b{word}\s+(?:chart|graph|plot|diagram)s?\b", text))
