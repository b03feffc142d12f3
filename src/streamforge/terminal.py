"""Render frames for a terminal with rich: cards as panels, tables as tables, charts as bars.

Used by ``streamforge ask``. A progressive component arrives several times with the same id; only
its last state is drawn.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_SPARK = "▁▂▃▄▅▆▇█"
_BAR_WIDTH = 30


def sparkline(values: list[float | int | None]) -> str:
    numbers = [v for v in values if v is not None]
    if not numbers:
        return ""
    low, high = min(numbers), max(numbers)
    span = (high - low) or 1
    return "".join(" " if v is None else _SPARK[int((v - low) / span * (len(_SPARK) - 1))] for v in values)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def _badge(data: dict[str, Any]) -> str:
    return "sample data" if data.get("sample") else "from the database"


def _card(data: dict[str, Any]) -> RenderableType:
    body = Text(f"{_fmt(data.get('value'))} {data.get('unit') or ''}".strip(), style="bold")
    if data.get("delta"):
        body.append(f"  {data['delta']}", style="green" if str(data["delta"]).startswith("+") else "red")
    if data.get("description"):
        body.append(f"\n{data['description']}", style="dim")
    return Panel(body, title=data.get("title"), subtitle=_badge(data), expand=False)


def _table(data: dict[str, Any]) -> RenderableType:
    table = Table(title=data.get("title"), caption=_badge(data))
    for column in data.get("columns", []):
        table.add_column(str(column))
    for row in data.get("rows", []):
        table.add_row(*(_fmt(cell) for cell in row))
    return table


def _chart(data: dict[str, Any]) -> RenderableType:
    chart_type = data.get("chart_type", "line")
    lines: list[RenderableType] = []
    series = data.get("series", [])
    x_axis = data.get("x_axis", [])
    if chart_type in ("line", "area"):
        for s in series:
            lines.append(Text(f"{s['label']:>24} {sparkline(s['values'])}"))
        if x_axis:
            lines.append(Text(f"{'':>24} {x_axis[0]} … {x_axis[-1]}", style="dim"))
    elif chart_type == "scatter":
        for s in series:
            points = s["values"]
            lines.append(Text(f"{s['label']}: {len(points)} points, e.g. {points[:3]}"))
    else:
        values = [v or 0 for v in series[0]["values"]] if series else []
        total = sum(values) or 1
        top = max(values, default=0) or 1
        for label, value in zip(x_axis, values, strict=False):
            share = f" {value / total:6.1%}" if chart_type == "pie" else ""
            lines.append(
                Text(f"{str(label)[:20]:>20} {'█' * int(value / top * _BAR_WIDTH)} {_fmt(value)}{share}")
            )
    title = f"{data.get('title')} ({chart_type})"
    return Panel(Group(*lines), title=title, subtitle=_badge(data), expand=False)


def render(frame: dict[str, Any]) -> RenderableType:
    data = frame.get("data", {})
    kind = frame.get("type")
    if kind == "SimpleComponent":
        return _card(data)
    if kind == "TableA":
        return _table(data)
    if kind == "ChartComponent":
        return _chart(data)
    if kind == "error":
        return Text(f"error: {frame['error']['message']}", style="bold red")
    if kind == "end":
        cached = ", from cache" if frame.get("from_cache") else ""
        return Text(f"{frame.get('provider')} in {frame.get('processing_time_ms')} ms{cached}", style="dim")
    return Text(str(frame))


def print_frames(frames: list[dict[str, Any]], console: Console | None = None) -> None:
    """Draw each component once, in its final state, in the order it first appeared."""
    console = console or Console()
    latest: dict[str, dict[str, Any]] = {}
    for i, frame in enumerate(frames):
        latest[str(frame.get("id") or f"control-{i}")] = frame
    for frame in latest.values():
        if frame.get("type") == "remove":
            continue
        console.print(render(frame))
