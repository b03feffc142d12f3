"""Which components answer a request, and the queries behind each.

One function per answer shape (trend, breakdown, ranking, share, comparison, relationship,
distribution, records, figure, overview). Each returns *pieces*: small async jobs that run their SQL
through the data source and render components. The planner runs all pieces of an answer concurrently
and keeps their order, so the primary answer comes first.

Charts are sized to fit the limits by the query, not by truncation: a time axis gets the grain that
gives a readable number of points (or, for an explicit grain that cannot fit, the latest points and a
description that says so); a breakdown keeps the top groups; a pie folds its tail into "Other"; a
series split keeps the largest series.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from streamforge.components import Limits
from streamforge.data.schema import ColumnInfo, Schema, TableInfo
from streamforge.offline import render
from streamforge.offline.entities import (
    Col,
    Cond,
    Metric,
    Request,
    default_measure,
    humanize,
    metric_label,
)
from streamforge.offline.lexicon import INTENSIVE_WORDS
from streamforge.offline.periods import Period, add_months, previous
from streamforge.offline.sqlbuild import (
    Query,
    aggregate_sql,
    bounds_sql,
    correlation_sql,
    histogram_sql,
    kpi_sql,
    points_sql,
    rows_sql,
)

__all__ = [
    "Ctx",
    "Piece",
    "breakdown",
    "compose",
    "figure",
    "histogram_piece",
    "kpi_piece",
    "metric_title",
    "metrics_title",
    "ranking_title",
    "records",
    "scatter_piece",
    "share_title",
    "trend",
]

Run = Callable[[str], Awaitable[Any]]  # DataSource.run
Piece = Callable[[Run], Awaitable[list[dict[str, Any]]]]

_PIE_SLICES = 8
_MAX_SERIES = 6
_DEFAULT_TOP = 10
_LIST_COLUMNS = 8
_GRAIN_PREFERENCE = ("month", "week", "day", "quarter", "year")
_AGG_TITLE = {"sum": "Total", "avg": "Average", "min": "Minimum", "max": "Maximum", "count": "Number of"}


@dataclass
class Ctx:
    schema: Schema
    dialect: str
    limits: Limits
    req: Request

    @property
    def base(self) -> str:
        return self.req.metric.table

    def table(self, name: str | None = None) -> TableInfo:
        return self.schema.tables[name or self.base]

    def column(self, col: Col) -> ColumnInfo:
        return self.schema.column(col.table, col.name)

    @property
    def period(self) -> Period | None:
        """The one period that filters the answer (a comparison of periods is not a filter)."""
        periods = self.req.periods
        if len(periods) == 1:
            return periods[0]
        return None

    def y(self, metric: Metric) -> str | None:
        return render.y_column(metric, self.table(metric.table).primary_key)

    def filters(self, conds: list[Cond] | None = None, period: Period | None = None) -> list[dict[str, Any]]:
        return render.filters(
            self.req.conds if conds is None else conds, self.req.time, period or self.period
        )

    def describe(self, extra: str = "") -> str:
        parts = [extra] if extra else []
        conds = [f"{c.col.name} {c.op} {c.value}" for c in self.req.conds]
        if self.period:
            conds.append(self.period.label)
        if conds:
            parts.append("Filtered to " + ", ".join(conds) + ".")
        parts.extend(self.req.notes)
        return " ".join(parts) or f"From {self.base}."


def metrics_title(metrics: list[Metric]) -> str:
    """ "Total revenue", or "Total revenue and orders" when follow-ups added figures."""
    first, *rest = metrics
    return ", ".join([metric_title(first), *(metric_title(m).lower() for m in rest[:-1])]) + (
        f" and {metric_title(rest[-1]).lower()}" if rest else ""
    )


def metric_title(metric: Metric) -> str:
    name = metric_label(metric)
    if metric.rate:
        return name
    if metric.aggregate == "count":
        return name if metric.column is None or metric.distinct else f"Number of {name.lower()}"
    return f"{_AGG_TITLE[metric.aggregate]} {name.lower()}"


# ---------------------------------------------------------------- grains and dimensions


def _span(ctx: Ctx, period: Period | None) -> tuple[date, date] | None:
    time = ctx.req.time
    if time is None:
        return None
    info = ctx.column(time)
    if not info.min_value or not info.max_value:
        return None
    first, last = date.fromisoformat(info.min_value[:10]), date.fromisoformat(info.max_value[:10])
    end = last + timedelta(days=1)
    if period is not None:
        return max(first, period.start), min(end, period.end)
    return first, end


def _count(grain: str, start: date, end: date) -> int:
    return len(render.bucket_labels(grain, start, end))


def choose_grain(ctx: Ctx, period: Period | None) -> tuple[str, Period | None]:
    """The time grain for a chart, and a narrower period when an explicit grain cannot fit."""
    span = _span(ctx, period)
    max_points = ctx.limits.max_points
    if span is None:
        return ctx.req.info.grain or "month", None
    start, end = span
    explicit = ctx.req.info.grain
    if explicit:
        if _count(explicit, start, end) <= max_points:
            return explicit, None
        if explicit == "day":
            first = end - timedelta(days=max_points)
        elif explicit == "week":
            first = end - timedelta(weeks=max_points - 1)
            first -= timedelta(days=first.weekday())
        elif explicit == "month":
            first = add_months(date(end.year, end.month, 1), -(max_points - 1))
        else:
            first = start
        return explicit, Period(max(first, start), end, f"the latest {max_points} {explicit}s", "day")
    for grain in _GRAIN_PREFERENCE:
        if 6 <= _count(grain, start, end) <= max_points:
            return grain, None
    for grain in ("day", "week", "month", "quarter", "year"):
        if _count(grain, start, end) <= max_points:
            return grain, None
    return "year", None


def best_dimension(ctx: Ctx, exclude: set[Col] | None = None) -> Col | None:
    """A dimension worth a breakdown: few groups, in the figure's table or one it points to."""
    exclude = exclude or set()
    scored: list[tuple[float, Col]] = []
    preferred = {
        "region",
        "category",
        "channel",
        "segment",
        "type",
        "department",
        "status",
        "plan",
        "country",
        "feature",
    }
    for table in ctx.schema.tables.values():
        path = ctx.schema.join_path(ctx.base, table.name)
        if path is None or any(fk.ref_table == ctx.base for fk in path):
            continue  # only the figure's own table and those it points to: no fan-out
        for col in table.of_kind("dimension"):
            c = Col(table.name, col.name)
            if c in exclude or col.boolean or not col.distinct or col.distinct < 2:
                continue
            score = 3.0 if set(col.words) & preferred else 0.0
            score += 2.0 if 3 <= col.distinct <= 8 else 1.0 if col.distinct <= 20 else -2.0
            score -= len(path)
            scored.append((score, c))
    scored.sort(key=lambda s: -s[0])
    return scored[0][1] if scored else None


def _entity_label(ctx: Ctx) -> Col | None:
    """The name column of a table the figure's rows point to (orders -> products.name)."""
    for fk in ctx.schema.foreign_keys:
        if fk.table == ctx.base:
            target = ctx.table(fk.ref_table)
            if target.label:
                return Col(target.name, target.label)
    return None


# ---------------------------------------------------------------- pieces


def agg_piece(
    ctx: Ctx,
    q: Query,
    shape: str,
    title: str,
    description: str = "",
    fill: tuple[str, date, date] | None = None,
    card_top: bool = False,
) -> Piece:
    """One aggregate query rendered as a chart (``shape`` a chart type) or a table (``shape`` "table")."""
    sql = aggregate_sql(ctx.schema, ctx.dialect, q)
    metric = q.metrics[0]
    metrics = q.metrics
    x_name = q.x.name if q.x else (q.time.name if q.time and q.periods else None)
    group = q.series.name if q.series else (q.time.name if q.time and q.series_periods else None)
    compared = q.periods or q.series_periods
    grain = compared[0].grain if compared else q.grain
    period = q.period
    flt = render.filters(q.conds, q.time, period)
    span = q.periods or q.series_periods
    if span and q.time is not None:
        flt += render.filters(
            [], q.time, Period(min(p.start for p in span), max(p.end for p in span), "", "day")
        )
    y: str | list[str] | None = ctx.y(metric)
    if len(metrics) > 1:
        y = [c for c in (ctx.y(m) for m in metrics) if c is not None]
    keyed = q.x is not None or bool(q.periods)

    async def run(execute: Run) -> list[dict[str, Any]]:
        result = await execute(sql)
        src = render.source(sql, q.base, x_name, y, metric.aggregate, group, grain, flt)
        rows = result.rows
        has_series = q.series is not None or bool(q.series_periods)
        names: list[Any]
        if has_series:
            x_axis: list[Any] = []
            names = []
            cells: dict[tuple[Any, Any], Any] = {}
            for row in rows:
                if row[0] not in x_axis:
                    x_axis.append(row[0])
                if row[1] not in names:
                    names.append(row[1])
                cells[(row[0], row[1])] = row[2]
            if q.series_periods:
                names = [p.label for p in q.series_periods if p.label in names]
        else:
            # One series per metric: "revenue and the number of orders by region".
            x_axis = [row[0] for row in rows] if keyed else [metric_label(metric)]
            names = [None] if len(metrics) == 1 else list(range(len(metrics)))
            cells = {}
            for row in rows:
                key = row[0] if keyed else x_axis[0]
                for i, name in enumerate(names):
                    cells[(key, name)] = row[int(keyed) + i]
        if fill is not None:
            labels = render.bucket_labels(*fill)
            if len(labels) <= ctx.limits.max_points and set(map(str, x_axis)) <= set(labels):
                x_axis = labels
        if q.periods:
            x_axis = [p.label for p in q.periods]
        x_axis = x_axis[: ctx.limits.max_points]
        series = []
        for name in names[: ctx.limits.max_series]:
            own = metrics[name] if isinstance(name, int) and not has_series else metric
            zero = own.aggregate in ("sum", "count")
            values = []
            for x in x_axis:
                v = render.number(cells.get((x, name)))
                values.append(0 if v is None and zero else v)
            if name is None:
                series_name = metric_label(metric)
            elif has_series:
                series_name = str(render.label(name))
            else:
                series_name = metric_title(own)
            series.append((series_name, values))
        if not series:  # a split with no rows at all (a filter that matches nothing)
            series = [(metric_title(metric), [None] * len(x_axis))]
        x_labels = [render.label(x) for x in x_axis]
        x_title = humanize(x_name) if x_name else None
        if shape == "table":
            if has_series or len(series) > 1:
                columns = [x_title or "", *[s[0] for s in series]]
                table_rows = [[x_labels[i], *[s[1][i] for s in series]] for i in range(len(x_labels))]
            else:
                columns = [x_title or "", metric_title(metric)]
                table_rows = [[x_labels[i], series[0][1][i]] for i in range(len(x_labels))]
            return [render.table(title, columns, table_rows[: ctx.limits.max_rows], src, description)]
        out_shape = shape
        if shape == "pie":
            if has_series or len(series) > 1 or any(v is not None and v < 0 for v in series[0][1]):
                out_shape = "bar"
            else:
                x_labels, series = _fold(x_labels, series)
        components = [
            render.chart(
                out_shape,
                title,
                [str(x) for x in x_labels],
                series,
                src,
                x_title,
                metric_title(metric) if len(metrics) == 1 else None,
                description,
            )
        ]
        if card_top and rows and not has_series:
            top = rows[0]
            components.append(
                render.card(
                    f"{'Top' if q.order != 'value_asc' else 'Bottom'} {humanize(x_name or '')}".strip(),
                    str(render.label(top[0])),
                    src,
                    description=f"{metric_title(metric)}: {render.number(top[1]):,}"
                    if render.number(top[1]) is not None
                    else None,
                )
            )
        return components

    return run


def _fold(
    labels: list[Any], series: list[tuple[str, list[Any]]]
) -> tuple[list[Any], list[tuple[str, list[Any]]]]:
    """Keep the largest slices of a pie and add the rest up as "Other"."""
    name, values = series[0]
    pairs = sorted(zip(labels, values, strict=True), key=lambda p: -(p[1] or 0))
    if len(pairs) > _PIE_SLICES:
        head, tail = pairs[: _PIE_SLICES - 1], pairs[_PIE_SLICES - 1 :]
        rest = render.number(sum(v or 0 for _, v in tail))
        pairs = [*head, ("Other", rest)]
    return [p[0] for p in pairs], [(name, [p[1] for p in pairs])]


def kpi_piece(ctx: Ctx, metrics: list[Metric]) -> Piece:
    """Cards: each metric with a delta against the previous period.

    With a period filter the figure is that period's and the delta compares it with the period before;
    without one the figure covers all rows and the delta compares the latest month with the one before.
    """
    time = ctx.req.time
    period = ctx.period
    current: Period | None = None
    before: Period | None = None
    if time is not None:
        if period is not None:
            current, before = period, previous(period)
        else:
            span = _span(ctx, None)
            if span is not None:
                last = span[1] - timedelta(days=1)
                start = date(last.year, last.month, 1)
                current = Period(start, add_months(start, 1), start.strftime("%Y-%m"), "month")
                before = previous(current)
    sql = kpi_sql(
        ctx.schema, ctx.dialect, ctx.base, metrics, ctx.req.conds, time, current, before, period is not None
    )
    flt = ctx.filters()

    async def run(execute: Run) -> list[dict[str, Any]]:
        result = await execute(sql)
        row = dict(zip(result.columns, result.rows[0], strict=True)) if result.rows else {}
        cards = []
        for i, m in enumerate(metrics):
            src = render.source(sql, ctx.base, None, ctx.y(m), m.aggregate, None, None, flt)
            if period is not None and current is not None and before is not None:
                value = row.get(f"cur{i}")
                if value is None and m.aggregate in ("sum", "count"):
                    value = 0
                d = render.delta(value, row.get(f"prev{i}"), before.label)
                desc = ctx.describe()
            else:
                value = row.get(f"all{i}")
                d = None
                if current is not None and before is not None:
                    change = render.delta(row.get(f"cur{i}"), row.get(f"prev{i}"), before.label)
                    d = f"{current.label}: {change}" if change else None
                desc = ctx.describe("All time." if time is not None else "")
            unit = render.metric_unit(m)
            cards.append(render.card(metric_title(m), value, src, unit, d, desc))
        return cards

    return run


def rows_piece(ctx: Ctx, table_name: str, title: str) -> Piece:
    table = ctx.table(table_name)
    columns = [Col(table.name, c) for c in list(table.columns)[:_LIST_COLUMNS]]
    info = ctx.req.info
    order: list[tuple[Col, bool]] = []
    time = Col(table.name, table.temporal.name) if table.temporal else None
    measure = ctx.req.metric.column if ctx.req.metric.table == table.name else None
    if info.recent is not None and time is not None:
        order = [(time, info.recent)]
    elif info.descending is not None and (measure or default_measure(table)):
        name = measure or default_measure(table).name  # type: ignore[union-attr]
        order = [(Col(table.name, name), info.descending)]
    elif time is not None and info.intent != "list":
        order = [(time, True)]
    elif table.primary_key:
        order = [(Col(table.name, table.primary_key), False)]
    limit = min(info.top_n or ctx.limits.max_rows, ctx.limits.max_rows)
    conds = [c for c in ctx.req.conds if ctx.schema.join_path(table.name, c.col.table) is not None]
    req_time = (
        ctx.req.time
        if ctx.req.time and ctx.schema.join_path(table.name, ctx.req.time.table) is not None
        else None
    )
    sql = rows_sql(
        ctx.schema,
        ctx.dialect,
        table.name,
        columns,
        conds,
        req_time,
        ctx.period if req_time else None,
        order,
        limit,
    )
    flt = render.filters(conds, req_time, ctx.period if req_time else None)
    order_text = (
        f"{'Newest' if order[0][1] else 'Oldest'} first by {order[0][0].name}."
        if order and order[0][0] == time
        else ""
    )

    async def run(execute: Run) -> list[dict[str, Any]]:
        result = await execute(sql)
        src = render.source(sql, table.name, None, None, "none", None, None, flt)
        cols = [humanize(c) for c in result.columns]
        return [render.table(title, cols, [list(r) for r in result.rows], src, ctx.describe(order_text))]

    return run


def scatter_piece(ctx: Ctx, a: Metric, b: Metric) -> list[Piece]:
    """A sample of value pairs (spread over the table) and a card with Pearson's r over all rows."""
    base = a.table
    path = ctx.schema.join_path(a.table, b.table) or []
    if any(fk.ref_table == a.table for fk in path):  # make the many side the base: order -> product
        base = b.table
    x, y = Col(a.table, a.column or ""), Col(b.table, b.column or "")
    rows = ctx.table(base).row_count
    stride = max(1, rows // (ctx.limits.max_points * 2))
    time = (
        ctx.req.time if ctx.req.time and ctx.schema.join_path(base, ctx.req.time.table) is not None else None
    )
    period = ctx.period if time else None
    sql = points_sql(
        ctx.schema, ctx.dialect, base, x, y, ctx.req.conds, time, period, stride, ctx.limits.max_points
    )
    corr = correlation_sql(ctx.schema, ctx.dialect, base, x, y, ctx.req.conds, time, period)
    flt = render.filters(ctx.req.conds, time, period)
    title = f"{humanize(x.name)} vs {humanize(y.name)}"

    async def points(execute: Run) -> list[dict[str, Any]]:
        result = await execute(sql)
        pts = [[render.number(px), render.number(py)] for px, py in result.rows]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        src = render.source(sql, base, x.name, y.name, "none", None, None, flt)
        desc = ctx.describe(f"{len(pts)} rows sampled evenly across {base}.")
        return (
            [
                render.chart(
                    "scatter", title, [], [(title, pts)], src, humanize(x.name), humanize(y.name), desc
                )
            ]
            if pts
            else []
        )

    async def correlation(execute: Run) -> list[dict[str, Any]]:
        result = await execute(corr)
        n, sx, sy, sxy, sxx, syy = (float(v or 0) for v in result.rows[0])
        r = None
        if n > 1:
            cov = n * sxy - sx * sy
            var = (n * sxx - sx * sx) * (n * syy - sy * sy)
            r = cov / math.sqrt(var) if var > 0 else None
        src = render.source(corr, base, x.name, y.name, "none", None, None, flt)
        strength = (
            "no clear"
            if r is None or abs(r) < 0.1
            else "a weak"
            if abs(r) < 0.3
            else "a moderate"
            if abs(r) < 0.6
            else "a strong"
        )
        direction = "" if r is None or abs(r) < 0.1 else (" positive" if r > 0 else " negative")
        desc = f"{strength.capitalize()}{direction} linear relationship over {int(n):,} rows (Pearson r)."
        return [
            render.card(
                f"Correlation of {x.name} and {y.name}", r if r is not None else "n/a", src, None, None, desc
            )
        ]

    return [points, correlation]


def histogram_piece(ctx: Ctx, col: Col) -> Piece:
    period = ctx.period
    time = ctx.req.time
    bounds = bounds_sql(ctx.schema, ctx.dialect, ctx.base, col, ctx.req.conds, time, period)
    flt = ctx.filters()
    bins = min(20, ctx.limits.max_points)

    async def run(execute: Run) -> list[dict[str, Any]]:
        lo, hi = (await execute(bounds)).rows[0]
        if lo is None or hi is None:
            return []
        lo, hi = float(lo), float(hi)
        width = _nice_width((hi - lo) / bins) if hi > lo else 1.0
        low = math.floor(lo / width) * width
        sql = histogram_sql(ctx.schema, ctx.dialect, ctx.base, col, ctx.req.conds, time, period, low, width)
        result = await execute(sql)
        counts: dict[int, int] = {}
        for b, n in result.rows:
            counts[int(b)] = counts.get(int(b), 0) + int(n)
        top = max(counts) if counts else 0
        labels = [
            f"{render.number(low + i * width)}–{render.number(low + (i + 1) * width)}" for i in range(top + 1)
        ]
        values: list[int | float | None] = [counts.get(i, 0) for i in range(top + 1)]
        src = render.source(sql, ctx.base, col.name, col.name, "count", None, None, flt)
        title = f"Distribution of {humanize(col.name).lower()}"
        return [
            render.chart(
                "bar", title, labels, [("Rows", values)], src, humanize(col.name), "Rows", ctx.describe()
            )
        ]

    return run


def _nice_width(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp10 = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= m * exp10:
            return m * exp10
    return 10.0 * exp10


# ---------------------------------------------------------------- answer shapes


def _trend_query(ctx: Ctx, metric: Metric, series: Col | None) -> tuple[Query, str, Period | None]:
    grain, narrowed = choose_grain(ctx, ctx.period)
    period = ctx.period
    if narrowed is not None:
        period = (
            narrowed
            if period is None
            else Period(
                max(period.start, narrowed.start), min(period.end, narrowed.end), narrowed.label, "day"
            )
        )
    q = Query(
        ctx.base,
        [metric],
        ctx.req.conds,
        ctx.req.time,
        period,
        x=ctx.req.time,
        grain=grain,
        series=series,
        top_series=_MAX_SERIES
        if series is not None and (ctx.column(series).distinct or 99) > _MAX_SERIES
        else None,
    )
    return q, grain, narrowed


def trend(ctx: Ctx, chart_type: str | None = None, metric: Metric | None = None) -> list[Piece]:
    metric = metric or ctx.req.metric
    if ctx.req.time is None:
        return breakdown(ctx, note=f"{ctx.base} has no date column, so there is no time axis.")
    series = ctx.req.dims[0] if ctx.req.dims else None
    if series is not None and ctx.column(series).kind == "temporal":
        series = ctx.req.dims[1] if len(ctx.req.dims) > 1 else None
    q, grain, narrowed = _trend_query(ctx, metric, series)
    metrics = [metric, *ctx.req.extra_metrics] if series is None else [metric]
    q = replace(q, metrics=metrics)
    span = _span(ctx, q.period)
    title = f"{metrics_title(metrics)} by {grain}" + (
        f", split by {humanize(series.name).lower()}" if series else ""
    )
    extra = (
        f"Showing {narrowed.label}: the whole range has too many {grain}s for one chart." if narrowed else ""
    )
    if q.top_series:
        extra += (
            f" The {_MAX_SERIES} largest {humanize(series.name).lower() if series else ''} groups are shown."
        )
    shape = chart_type or ctx.req.info.chart_type or "line"
    if shape in ("pie", "scatter"):
        shape = "line"
    if ctx.req.info.wants_table and not ctx.req.info.wants_chart:
        shape = "table"
    fill = (grain, span[0], span[1]) if span else None
    return [agg_piece(ctx, q, shape, title, ctx.describe(extra.strip()), fill)]


def breakdown(
    ctx: Ctx,
    shape: str | None = None,
    note: str = "",
    order: str = "value_desc",
    limit: int | None = None,
    x: Col | None = None,
    card_top: bool = False,
    title: str | None = None,
) -> list[Piece]:
    metric = ctx.req.metric
    dims = list(ctx.req.dims)
    x = x or (dims[0] if dims else best_dimension(ctx))
    if x is None:
        return figure(ctx)
    series = next((d for d in dims if d != x and ctx.column(d).kind != "temporal"), None)
    distinct = ctx.column(x).distinct or 1000
    info = ctx.req.info
    limit = limit or (
        None if distinct <= ctx.limits.max_points else min(_DEFAULT_TOP * 2, ctx.limits.max_points)
    )
    shape = shape or info.chart_type or "bar"
    if shape == "scatter":
        shape = "bar"
    if info.wants_table and not info.wants_chart:
        shape = "table"
    if shape == "pie":
        limit = None if distinct <= ctx.limits.max_points * 4 else limit
    if series is not None:
        order = "x"
    metrics = [metric, *ctx.req.extra_metrics] if series is None else [metric]
    q = Query(
        ctx.base,
        metrics,
        ctx.req.conds,
        ctx.req.time,
        ctx.period,
        x=x,
        series=series,
        order=order,
        limit=limit,
        top_series=_MAX_SERIES
        if series is not None and (ctx.column(series).distinct or 99) > _MAX_SERIES
        else None,
    )
    title = title or f"{metrics_title(metrics)} by {grouping_name(ctx, x)}" + (
        f" and {humanize(series.name).lower()}" if series else ""
    )
    return [agg_piece(ctx, q, shape, title, ctx.describe(note), card_top=card_top)]


def grouping_name(ctx: Ctx, x: Col) -> str:
    """How a title names a grouping: "department" for departments.name, else the column's words."""
    table = ctx.table(x.table)
    if table.label == x.name and x.table != ctx.base:
        return " ".join(table.words)
    return humanize(x.name).lower()


def ranking_title(ctx: Ctx, x: Col, n: int, descending: bool) -> str:
    """ "Top 5 products by total revenue": a table named by its label column goes by its name."""
    word = "Top" if descending else "Bottom"
    figure = metrics_title([ctx.req.metric, *ctx.req.extra_metrics]).lower()
    if ctx.table(x.table).label == x.name:
        return f"{word} {n} {ctx.table(x.table).name} by {figure}"
    return f"{word} {n} {humanize(x.name).lower()} by {figure}"


def share_title(metric: Metric, x: Col) -> str:
    return f"Share of {metric_title(metric).lower()} by {humanize(x.name).lower()}"


def ranking(ctx: Ctx) -> list[Piece]:
    info = ctx.req.info
    entity = ctx.req.entity
    named = Col(entity, ctx.table(entity).label or "") if entity and ctx.table(entity).label else None
    x = (ctx.req.dims[0] if ctx.req.dims else None) or named or _entity_label(ctx) or best_dimension(ctx)
    if x is None:
        return records(ctx)
    n = min(info.top_n or _DEFAULT_TOP, ctx.limits.max_points)
    title = ranking_title(ctx, x, n, info.descending is not False)
    order = "value_desc" if info.descending is not False else "value_asc"
    return breakdown(
        ctx,
        shape="bar" if info.chart_type in (None, "pie", "scatter") else info.chart_type,
        order=order,
        limit=n,
        x=x,
        card_top=info.question,
        title=title,
    )


def comparison(ctx: Ctx) -> list[Piece]:
    req = ctx.req
    metric = req.metric
    if len(req.periods) >= 2 and req.time is not None:
        periods = req.periods[: ctx.limits.max_points]
        labels = " vs ".join(p.label for p in periods)
        if req.dims:
            q = Query(ctx.base, [metric], req.conds, req.time, None, x=req.dims[0], series_periods=periods)
            title = f"{metric_title(metric)} by {humanize(req.dims[0].name).lower()}: {labels}"
        else:
            q = Query(ctx.base, [metric], req.conds, req.time, None, periods=periods)
            title = f"{metric_title(metric)}: {labels}"
        shape = req.info.chart_type if req.info.chart_type in ("bar", "line", "area") else "bar"
        if req.info.wants_table and not req.info.wants_chart:
            shape = "table"
        pieces = [agg_piece(ctx, q, shape, title, ctx.describe())]
        if not req.dims and len(periods) == 2:
            pieces.append(_period_delta_card(ctx, metric, periods))
        return pieces
    if req.compare_values:
        cond = req.compare_values[0]
        inner = replace(ctx, req=replace(req, conds=[*req.conds, cond]))
        return breakdown(inner, x=cond.col, order="value_desc")
    return breakdown(ctx)


def _period_delta_card(ctx: Ctx, metric: Metric, periods: list[Period]) -> Piece:
    first, second = sorted(periods, key=lambda p: p.start)
    inner = replace(ctx, req=replace(ctx.req, periods=[second]))
    sql = kpi_sql(
        ctx.schema, ctx.dialect, ctx.base, [metric], ctx.req.conds, ctx.req.time, second, first, True
    )
    flt = inner.filters(period=Period(first.start, second.end, "", "day"))

    async def run(execute: Run) -> list[dict[str, Any]]:
        result = await execute(sql)
        row = dict(zip(result.columns, result.rows[0], strict=True)) if result.rows else {}
        src = render.source(sql, ctx.base, None, ctx.y(metric), metric.aggregate, None, None, flt)
        d = render.delta(row.get("cur0"), row.get("prev0"), first.label)
        return [
            render.card(
                f"{metric_title(metric)}, {second.label}",
                row.get("cur0"),
                src,
                render.metric_unit(metric),
                d,
            )
        ]

    return run


def share(ctx: Ctx) -> list[Piece]:
    shape = ctx.req.info.chart_type if ctx.req.info.chart_type in ("bar", "pie") else "pie"
    metric = ctx.req.metric
    note = ""
    if metric.aggregate not in ("sum", "count"):
        if ctx.req.info.chart_type == "pie":  # asked for by name: drawn, and it says what it shows
            note = f"The slices show {metric.aggregate} values per group, not parts of one whole."
        else:
            shape = "bar"  # shares of an average are not parts of a whole
    x = ctx.req.dims[0] if ctx.req.dims else best_dimension(ctx)
    if x is None:
        return figure(ctx)
    return breakdown(ctx, shape=shape, x=x, title=share_title(metric, x), note=note)


def relationship(ctx: Ctx) -> list[Piece]:
    a, b = ctx.req.metric, ctx.req.second_metric
    if a.column is None or b is None or b.column is None:
        if ctx.req.dims:
            return breakdown(ctx)
        measures = [c for c in ctx.table().of_kind("measure") if c.name != a.column]
        if a.column is None or not measures:
            return trend(ctx)
        b = Metric(ctx.base, measures[0].name, "sum", label=humanize(measures[0].name))
    return scatter_piece(ctx, a, b)


def distribution(ctx: Ctx) -> list[Piece]:
    if ctx.req.dims:
        return breakdown(ctx)
    metric = ctx.req.metric
    column = metric.column if metric.aggregate != "count" else None
    if column is None:
        measure = default_measure(ctx.table()) or next(iter(ctx.table().of_kind("measure")), None)
        column = measure.name if measure else None
    if column is None:
        return breakdown(ctx, shape="bar")
    return [histogram_piece(ctx, Col(metric.table, column))]


def records(ctx: Ctx) -> list[Piece]:
    name = ctx.req.entity or ctx.base
    info = ctx.req.info
    adjective = (
        "Latest" if info.recent else "Oldest" if info.recent is False else "Top" if info.descending else ""
    )
    title = f"{adjective} {name}".strip().capitalize() if adjective else humanize(name)
    return [rows_piece(ctx, name, title)]


def figure(ctx: Ctx) -> list[Piece]:
    return [kpi_piece(ctx, [ctx.req.metric])]


def _companions(ctx: Ctx, metric: Metric) -> list[Metric]:
    """A second figure that puts the first in context: a row count, an average, distinct people."""
    table = ctx.table()
    out: list[Metric] = []
    if metric.column is not None and metric.aggregate != "count":
        out.append(Metric(table.name, None, "count", label=humanize(table.name)))
    intensive = [
        c for c in table.of_kind("measure") if c.name != metric.column and set(c.words) & INTENSIVE_WORDS
    ]
    if metric.column is None and intensive:
        out.append(Metric(table.name, intensive[0].name, "avg", label=humanize(intensive[0].name)))
    if metric.column is not None and metric.aggregate == "sum":
        out.append(Metric(table.name, metric.column, "avg", label=humanize(metric.column)))
    return out


def overview(ctx: Ctx) -> list[Piece]:
    metric = ctx.req.metric
    pieces: list[Piece] = [kpi_piece(ctx, [metric, *_companions(ctx, metric)[:1]])]
    if ctx.req.time is not None:
        pieces += trend(ctx, chart_type="area" if ctx.req.info.chart_type == "area" else "line")
    dim = ctx.req.dims[0] if ctx.req.dims else best_dimension(ctx)
    if dim is not None:
        shape = "pie" if ctx.req.info.chart_type == "pie" or ctx.req.info.intent == "share" else "bar"
        inner = replace(
            ctx,
            req=replace(ctx.req, dims=[dim], info=replace(ctx.req.info, wants_table=False, chart_type=None)),
        )
        pieces += breakdown(inner, shape=shape)
    label = _entity_label(ctx)
    if label is not None:
        inner = replace(
            ctx,
            req=replace(
                ctx.req, dims=[label], info=replace(ctx.req.info, wants_table=True, wants_chart=False)
            ),
        )
        title = f"Top {ctx.table(label.table).name} by {metric_title(metric).lower()}"
        pieces += breakdown(inner, order="value_desc", limit=_DEFAULT_TOP, x=label, title=title)
    else:
        pieces += records(replace(ctx, req=replace(ctx.req, info=replace(ctx.req.info, recent=True))))
    return pieces


def compose(req: Request, schema: Schema, dialect: str, limits: Limits) -> list[Piece]:
    """The pieces that answer ``req``, primary answer first."""
    ctx = Ctx(schema, dialect, limits, req)
    info = req.info
    intent = info.intent
    if info.overview and intent in ("none", "single", "trend", "share"):
        return overview(ctx)
    if intent == "relationship":
        return relationship(ctx)
    if intent == "distribution":
        return distribution(ctx)
    if intent == "comparison":
        return comparison(ctx)
    if intent == "ranking":
        return ranking(ctx)
    if intent == "share":
        return share(ctx)
    if intent == "trend" or (info.chart_type in ("line", "area") and not req.dims):
        return trend(ctx)
    if intent == "list":
        return records(ctx)
    if req.dims:
        return breakdown(ctx)
    if intent == "single":
        if info.wants_chart:
            return trend(ctx) + figure(ctx)
        if req.metric.aggregate in ("max", "min") and req.entity == req.metric.table:
            return [*figure(ctx), *records(ctx)]  # the record behind "the highest order"
        return figure(ctx)
    if info.wants_table:
        return records(ctx)
    if info.wants_chart:
        return trend(ctx) if req.time is not None else breakdown(ctx)
    if req.entity and not req.metric_named:
        # "exports last month" is a count over a period; "logins in Europe" the rows themselves.
        return [*figure(ctx), *records(ctx)] if req.periods else records(ctx)
    if req.entity == req.metric.table and req.metric.column is None:
        # "show me products" wants the rows; "orders in Europe last month" wants the figure first,
        # unless the request asks to see them ("show employees in Finance").
        if req.periods or (req.conds and not info.show):
            return [*figure(ctx), *records(ctx)]
        return [*records(ctx), *figure(ctx)]
    if (req.matched or not req.unmatched) and req.metric_named:
        if req.time is None and not req.aggregate_named and ctx.table().label and not req.conds:
            # "product prices": a figure of a lookup table (no dates) is read row by row.
            return [*records(replace(ctx, req=replace(req, entity=req.metric.table))), *figure(ctx)]
        return [*figure(ctx), *trend(ctx)] if req.time is not None else figure(ctx)
    return overview(ctx)
