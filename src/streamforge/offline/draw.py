"""Step five: a view and its rows drawn as one ChartComponent, with its provenance.

Numbers are kept as the database returned them, to 12 significant digits (a float is made JSON-safe,
never rounded to a display precision): the chart's hover shows them in full and a reader checking a
figure against their own SQL client sees the same value. Labels are strings; a date stays in its ISO form.

What does not fit the limits is said in the description rather than dropped silently: a pie keeps
its largest slices and adds the rest up as "Other"; a bar or line chart keeps the first points in
the asked order.
"""

from __future__ import annotations

from typing import Any

from streamforge.components import Limits
from streamforge.data.schema import Schema
from streamforge.offline import render
from streamforge.offline.entities import humanize
from streamforge.offline.views import View

__all__ = ["draw", "title_of"]

_PIE_SLICES = 20
_AGG_TITLE = {"sum": "Total", "avg": "Average", "min": "Minimum", "max": "Maximum", "count": "Number of"}


_value = render.exact


def _label(v: Any) -> str:
    if v is None:
        return "(none)"
    return (
        str(render.label(v))
        if isinstance(v, bool)
        else str(v)
        if not isinstance(v, float)
        else str(_value(v))
    )


def title_of(view: View, schema: Schema) -> str:
    x = humanize(view.x.name).lower()
    if view.aggregate == "count":
        counted = humanize(view.y.name).lower() if view.y is not None else humanize(view.base).lower()
        return f"Number of {counted} by {x}"
    y = humanize(view.y.name).lower() if view.y is not None else "rows"
    if view.aggregate == "none":
        return f"{y.capitalize()} by {x}" if view.chart != "scatter" else f"{y.capitalize()} vs {x}"
    return f"{_AGG_TITLE[view.aggregate]} {y} by {x}"


def draw(
    view: View, columns: list[str], rows: list[tuple[Any, ...]], sql: str, schema: Schema, limits: Limits
) -> dict[str, Any]:
    notes = list(view.notes)
    y_name = view.y.name if view.y is not None else schema.tables[view.base].primary_key
    src = render.source(
        sql,
        view.base,
        view.x.name,
        y_name,
        view.aggregate,
        view.group.name if view.group else None,
        view.grain,
        render.filters(view.filters, None, None),
    )
    src["view"] = view.to_dict()
    if view.chart == "table":
        word = "Largest" if view.order is None or view.order[1] == "desc" else "Smallest"
        names = [humanize(c) for c in columns]
        src["aggregate"], src["x"] = "none", None
        by = humanize(view.y.name).lower() if view.y is not None else ""
        title = f"{word} {len(rows)} {humanize(view.base).lower()} by {by}"
        return render.table(title, names, [list(r) for r in rows], src, " ".join(notes) or None)
    title = title_of(view, schema)
    chart_type = view.chart
    y_label = title.split(" by ")[0].split(" vs ")[0]
    x_label = humanize(view.x.name)
    series: list[tuple[str, list[Any]]]
    if view.group is not None and view.chart == "scatter" and all(_value(r[0]) is not None for r in rows):
        # "sales vs profit colored by category": one series of points a group
        by_group: dict[str, list[list[int | float | None]]] = {}
        for x, g, y, *_ in rows:
            point = [_value(x), _value(y)]
            if point[1] is not None and len(by_group) <= limits.max_series:
                by_group.setdefault(_label(g), []).append(point)
        shown: list[tuple[str, list[Any]]] = list(by_group.items())[: limits.max_series]
        return render.chart(
            "scatter",
            f"{title} by {humanize(view.group.name).lower()}",
            [],
            shown,
            src,
            x_label,
            y_label,
            " ".join(notes) or None,
        )
    if view.group is not None:
        x_axis: list[str] = []
        groups: list[str] = []
        cells: dict[tuple[str, str], Any] = {}
        for x, g, y, *_ in rows:
            xs, gs = _label(x), _label(g)
            if xs not in x_axis:
                x_axis.append(xs)
            if gs not in groups:
                groups.append(gs)
            cells[(xs, gs)] = _value(y)
        if len(groups) > limits.max_series:
            totals = {g: sum(abs(cells.get((x, g)) or 0) for x in x_axis) for g in groups}
            groups = sorted(groups, key=lambda g: -totals[g])[: limits.max_series]
            notes.append(f"The {limits.max_series} largest groups are shown.")
        x_axis = x_axis[: limits.max_points]
        series = [(g, [cells.get((x, g)) for x in x_axis]) for g in groups] or [(y_label, [])]
        title += f" and {humanize(view.group.name).lower()}"
    else:
        pairs = [(_label(r[0]), _value(r[1])) for r in rows]
        if view.chart == "pie" and any(p[1] is not None and p[1] < 0 for p in pairs):
            chart_type = "bar"  # a pie cannot show a negative part
            notes.append("Drawn as bars: some values are negative.")
        if chart_type == "pie":
            pairs = [p for p in pairs if p[1] is not None]
            if len(pairs) > _PIE_SLICES:
                pairs.sort(key=lambda p: -(p[1] or 0))
                rest = sum(p[1] or 0 for p in pairs[_PIE_SLICES - 1 :])
                pairs = [*pairs[: _PIE_SLICES - 1], ("Other", _value(rest))]
                notes.append("The smallest slices are added up as “Other”.")
        if len(pairs) > limits.max_points:
            notes.append(f"The first {limits.max_points} of {len(pairs)} points are shown.")
            pairs = pairs[: limits.max_points]
        if view.chart == "scatter" and rows and all(_value(r[0]) is not None for r in rows):
            points = [[_value(r[0]), _value(r[1])] for r in rows[: limits.max_points]]
            kept = [p for p in points if p[1] is not None]
            return render.chart(
                "scatter", title, [], [(y_label, kept)], src, x_label, y_label, " ".join(notes) or None
            )
        x_axis = [p[0] for p in pairs]
        series = [(y_label, [p[1] for p in pairs])]
    return render.chart(chart_type, title, x_axis, series, src, x_label, y_label, " ".join(notes) or None)
