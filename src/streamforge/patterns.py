"""The legacy pattern mode: regex detection of what is asked, sample data, progressive streaming.

Kept for clients of the earlier backend ("show me sales table", "line chart", "kpi card"). Its numbers
are made up, so every component it sends has ``data.source: null`` and ``data.sample: true``. It
streams progressively: a component's frame (title, columns, axes) goes out first, then the same ``id``
is re-sent with more rows or points, each time with the data so far, so a client simply replaces the
component it holds. Frames still filling carry ``"partial": true``.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from streamforge.components import Limits, new_id, validate_component
from streamforge.protocol import Frame

Kind = Literal["table", "chart", "card"]

_CHART_TYPES = ("line", "bar", "area", "pie", "scatter")
# Only the phrasings the earlier backend answered ("show me sales table", "show me chart", "line chart",
# "bar chart of ...", "kpi card"): anything looser ("list all users", "sales trends") is a question for
# the planner, which answers it with real data.
_TABLE = re.compile(r"\btables?\b", re.I)
_CHART = re.compile(r"\b(chart|charts|graph|graphs)\b", re.I)
_CHART_TYPE = re.compile(r"\b(line|bar|area|pie|scatter)\s+(?:chart|graph|plot)s?\b", re.I)
_CARD = re.compile(r"\b(card|cards|kpi|kpis|metric|metrics)\b", re.I)

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class Topic:
    """A subject the pattern mode can make sample data about."""

    name: str
    words: tuple[str, ...]
    measure: str
    unit: str
    scale: float
    categories: tuple[str, ...]


_TOPICS = (
    Topic(
        "Sales",
        ("sales", "sale", "revenue", "income"),
        "Revenue",
        "USD",
        42_000,
        ("North America", "Europe", "APAC", "LATAM"),
    ),
    Topic(
        "Users",
        ("users", "user", "customers", "signups", "customer"),
        "Active users",
        "users",
        1_800,
        ("Free", "Pro", "Team", "Enterprise"),
    ),
    Topic("Orders", ("orders", "order", "purchases"), "Orders", "orders", 950, ("web", "mobile", "partner")),
    Topic(
        "Traffic",
        ("traffic", "visits", "visitors", "sessions", "pageviews"),
        "Visits",
        "visits",
        12_000,
        ("Search", "Direct", "Social", "Email"),
    ),
)


@dataclass(frozen=True)
class Ask:
    kind: Kind
    chart_type: str = "line"


def _topic(message: str) -> Topic:
    words = set(re.findall(r"[a-z]+", message.lower()))
    for topic in _TOPICS:
        if words.intersection(topic.words):
            return topic
    return _TOPICS[0]


def detect(message: str) -> list[Ask]:
    """What the message asks for, in the order it asks; empty when the pattern mode has no answer."""
    found: list[tuple[int, Ask]] = []
    if m := _TABLE.search(message):
        found.append((m.start(), Ask("table")))
    chart_types = [(m.start(), m.group(1).lower()) for m in _CHART_TYPE.finditer(message)]
    chart = _CHART.search(message)
    if chart_types:
        found.extend(
            (pos, Ask("chart", ct)) for pos, ct in dict((ct, (p, ct)) for p, ct in chart_types).values()
        )
    elif chart:
        found.append((chart.start(), Ask("chart", "line")))
    if m := _CARD.search(message):
        found.append((m.start(), Ask("card")))
    return [ask for _, ask in sorted(found, key=lambda pair: pair[0])]


def _rng(topic: Topic, salt: str) -> random.Random:
    # Deterministic per topic and kind: the same request shows the same sample numbers.
    return random.Random(f"{topic.name}:{salt}")


def _table_rows(topic: Topic, count: int) -> tuple[list[str], list[list[Any]]]:
    rng = _rng(topic, "table")
    columns = ["Month", "Segment", topic.measure, "Change %"]
    rows = []
    for i in range(count):
        value = round(topic.scale * (0.8 + 0.05 * i) * rng.uniform(0.9, 1.1), 2)
        rows.append(
            [
                f"2025-{i % 12 + 1:02d}",
                topic.categories[i % len(topic.categories)],
                value,
                round(rng.uniform(-8, 15), 1),
            ]
        )
    return columns, rows


def _chart_points(topic: Topic, chart_type: str, count: int) -> tuple[list[Any], list[dict[str, Any]]]:
    rng = _rng(topic, chart_type)
    if chart_type == "pie":
        labels = list(topic.categories)
        return labels, [
            {
                "label": topic.measure,
                "values": [round(topic.scale * rng.uniform(0.5, 1.5), 2) for _ in labels],
            }
        ]
    if chart_type == "scatter":
        points = [[round(rng.uniform(1, 100), 1), 0.0] for _ in range(count)]
        for p in points:
            p[1] = round(p[0] * topic.scale / 100 * rng.uniform(0.7, 1.3), 2)
        return [], [{"label": topic.measure, "values": points}]
    x_axis = [_MONTHS[i % 12] for i in range(count)]
    series = []
    for s, label in enumerate(topic.categories[:2] if chart_type != "bar" else topic.categories[:1]):
        base = topic.scale * (1 - 0.3 * s)
        series.append(
            {
                "label": f"{topic.measure} · {label}",
                "values": [round(base * (1 + 0.04 * i) * rng.uniform(0.9, 1.1), 2) for i in range(count)],
            }
        )
    return x_axis, series


def _card(topic: Topic) -> dict[str, Any]:
    rng = _rng(topic, "card")
    return {
        "type": "SimpleComponent",
        "data": {
            "title": f"Total {topic.measure.lower()}",
            "description": f"Sample {topic.name.lower()} figure for this month",
            "value": round(topic.scale * 12 * rng.uniform(0.95, 1.05), 2),
            "unit": topic.unit,
            "delta": f"{rng.uniform(-5, 20):+.1f}%",
            "source": None,
        },
    }


def help_component() -> dict[str, Any]:
    """The "what you can ask" card, for a request nothing can answer."""
    return {
        "type": "SimpleComponent",
        "data": {
            "title": "What you can ask",
            "value": "Try a question about your data",
            "description": (
                'Ask for a table ("show me sales table"), a chart ("line chart of users", '
                '"bar chart of orders"), a KPI card ("revenue kpi card"), or ask a question '
                'such as "revenue by region" or "dashboard overview".'
            ),
            "source": None,
        },
    }


def _emit(raw: dict[str, Any], limits: Limits, *, partial: bool) -> Frame | None:
    component = validate_component(raw, limits)
    if component is None:
        return None
    frame = component.model_dump(mode="json")
    if partial:
        frame["partial"] = True
    return frame


async def stream(message: str, limits: Limits, delay: float) -> AsyncIterator[Frame]:
    """Yield the frames answering ``message``, progressively, pausing ``delay`` between updates."""
    topic = _topic(message)
    asks = detect(message)[: limits.max_components]
    if not asks:
        if frame := _emit(help_component(), limits, partial=False):
            yield frame
        return
    for ask in asks:
        cid = new_id()
        if ask.kind == "card":
            if frame := _emit({**_card(topic), "id": cid}, limits, partial=False):
                yield frame
            continue
        if ask.kind == "table":
            columns, rows = _table_rows(topic, min(10, limits.max_rows))
            title = f"{topic.name} table"
            steps = [{"columns": columns, "rows": rows[:n]} for n in range(0, len(rows) + 1, 2)]
        else:
            count = min(12, limits.max_points)
            x_axis, series = _chart_points(topic, ask.chart_type, count)
            title = f"{topic.name} {ask.chart_type} chart"
            n_points = len(x_axis) if x_axis else count
            steps = []
            for n in range(0, n_points + 1, 3) if ask.chart_type != "pie" else (0, n_points):
                steps.append(
                    {
                        "chart_type": ask.chart_type,
                        "x_axis": x_axis[:n],
                        "series": [{**s, "values": s["values"][:n]} for s in series],
                        "x_label": "Month" if ask.chart_type in ("line", "bar", "area") else None,
                        "y_label": topic.measure,
                    }
                )
            if steps[-1]["series"] != series:
                steps.append({**steps[-1], "x_axis": x_axis, "series": series})
        for i, step in enumerate(steps):
            raw = {
                "type": "TableA" if ask.kind == "table" else "ChartComponent",
                "id": cid,
                "data": {"title": title, "source": None, **step},
            }
            if i:
                await asyncio.sleep(delay)
            if frame := _emit(raw, limits, partial=i < len(steps) - 1):
                yield frame
