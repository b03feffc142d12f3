"""Query results to component dicts of the wire shape, with provenance.

Every data-backed component carries ``data.source``: the SQL as run, the main table, and the bare
schema column names behind ``x``, ``y`` and ``group`` (the column that splits series; None for a single
series), with the time ``grain``, the ``aggregate`` and the ``filters``. Numbers are rounded to two
decimals here, once, so every path shows the same figures.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from streamforge.offline.entities import Col, Cond, Metric, humanize
from streamforge.offline.periods import Period, add_months

__all__ = ["card", "chart", "exact", "humanize", "note", "number", "source", "table"]


def _finite(value: Any) -> int | float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f or f in (float("inf"), float("-inf")) else f


def _whole(f: float) -> int | float:
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def number(value: Any) -> int | float | None:
    """A JSON-safe, rounded number (None for NULL or anything not numeric): the dashboard's cards."""
    f = _finite(value)
    return f if f is None or isinstance(f, int) else _whole(round(f, 2))


def exact(value: Any) -> int | float | None:
    """A JSON-safe number to 12 significant digits: the float noise of a SUM (215846.60000000023)
    goes, and two engines summing in another order show the same figure; nothing a reader can
    check against their own SQL client is lost."""
    f = _finite(value)
    return f if f is None or isinstance(f, int) else _whole(float(f"{f:.12g}"))


def label(value: Any) -> str | int | float:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(number(value))
    return str(value)


def filters(conds: list[Cond], time: Col | None, period: Period | None) -> list[dict[str, Any]]:
    out = [{"column": c.col.name, "op": c.op, "value": c.value} for c in conds]
    if time is not None and period is not None:
        out.append({"column": time.name, "op": ">=", "value": period.start.isoformat()})
        out.append({"column": time.name, "op": "<", "value": period.end.isoformat()})
    return out


def y_column(metric: Metric, primary_key: str | None) -> str | None:
    return metric.column or primary_key


def source(
    sql: str,
    table: str,
    x: str | None,
    y: str | list[str] | None,
    aggregate: str,
    group: str | None = None,
    grain: str | None = None,
    filter_list: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "sql": sql,
        "table": table,
        "x": x,
        "y": y,
        "aggregate": aggregate,
        "group": group,
        "grain": grain,
        "filters": filter_list or [],
    }


def chart(
    chart_type: str,
    title: str,
    x_axis: list[Any],
    series: list[tuple[str, list[Any]]],
    src: dict[str, Any],
    x_label: str | None = None,
    y_label: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "ChartComponent",
        "data": {
            "title": title,
            "description": description,
            "chart_type": chart_type,
            "x_axis": x_axis,
            "series": [{"label": name or "(none)", "values": values} for name, values in series],
            "x_label": x_label,
            "y_label": y_label,
            "source": src,
        },
    }


def table(
    title: str, columns: list[str], rows: list[list[Any]], src: dict[str, Any], description: str | None = None
) -> dict[str, Any]:
    cells = [[_cell(v) for v in row] for row in rows]
    return {
        "type": "TableA",
        "data": {
            "title": title,
            "description": description,
            "columns": columns,
            "rows": cells,
            "source": src,
        },
    }


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | bool):
        return value
    n = number(value)
    return n if n is not None else str(value)


def card(
    title: str,
    value: Any,
    src: dict[str, Any] | None,
    unit: str | None = None,
    delta: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    shown = number(value)
    data: dict[str, Any] = {
        "title": title,
        "value": shown if shown is not None else (str(value)[:200] if value is not None else "no data"),
        "unit": unit,
        "delta": delta,
        "description": description,
        "source": src,
    }
    return {"type": "SimpleComponent", "data": data}


def note(title: str, text: str, description: str) -> dict[str, Any]:
    """A card that says what could not be matched; it has no SQL, so it is badged as sample."""
    return {
        "type": "SimpleComponent",
        "data": {"title": title, "value": text[:200], "description": description},
    }


def delta(current: Any, previous: Any, previous_label: str) -> str | None:
    cur, prev = number(current), number(previous)
    if cur is None or prev is None:
        return None
    if prev == 0:
        return f"{cur - prev:+,} vs {previous_label}"
    return f"{(cur - prev) / abs(prev) * 100:+.1f}% vs {previous_label}"


def unit_of(column: str | None) -> str | None:
    words = set(re.split(r"[^a-z]+", (column or "").lower()))
    for word, unit in (("seconds", "s"), ("minutes", "min"), ("hours", "h"), ("percent", "%"), ("pct", "%")):
        if word in words:
            return unit
    return None


def metric_unit(metric: Metric) -> str | None:
    """The unit a figure is shown in: "%" for a rate, else what its column name says."""
    return "%" if metric.rate else unit_of(metric.column)


def bucket_labels(grain: str, start: date, end: date) -> list[str]:
    """Every bucket label from ``start`` to ``end`` (exclusive), as the SQL templates write them."""
    labels: list[str] = []
    if grain == "day":
        d = start
        while d < end:
            labels.append(d.isoformat())
            d += timedelta(days=1)
    elif grain == "week":
        d = start - timedelta(days=start.weekday())
        while d < end:
            labels.append(d.isoformat())
            d += timedelta(weeks=1)
    elif grain == "month":
        d = date(start.year, start.month, 1)
        while d < end:
            labels.append(d.strftime("%Y-%m"))
            d = add_months(d, 1)
    elif grain == "quarter":
        d = date(start.year, 3 * ((start.month - 1) // 3) + 1, 1)
        while d < end:
            labels.append(f"{d.year}-Q{(d.month - 1) // 3 + 1}")
            d = add_months(d, 3)
    else:
        labels = [str(y) for y in range(start.year, (end - timedelta(days=1)).year + 1)]
    return labels
