"""A component's provenance, read back into the offline planner's own terms, and rendered again.

A follow-up ("make it a bar chart", "only Europe") changes an answer that is already on screen. The
only memory of that answer is the component itself, so everything needed to run it again must be in
``data.source``: the main ``table``, bare column names in ``x``, ``y`` and ``group``, the time
``grain``, the ``aggregate`` and the ``filters`` (a period is a ``>=``/``<`` pair on a date column).
:func:`from_component` turns those fields into a :class:`Spec`; :func:`pieces` turns a (changed) spec
into the same pieces a fresh question would produce, through :mod:`~streamforge.offline.compose`, so a
re-planned chart has real numbers, the same titles and the same limits as a new one.

Design choice: the wire fields come first, the SQL only settles what they cannot say. Column names are
bare, so ``x = "name"`` could be ``products.name`` or ``users.name``; the statement that was run
qualifies every column (``"products"."name"``), so it decides. The SQL also holds what the provenance
model has no field for (a ``LIMIT``, the sort direction, a ``COUNT(DISTINCT ...)``, the aggregate of a
second figure). Parsing our own generated SQL is exact; guessing from titles would not be. A component
whose source does not parse, or names tables or columns the schema lacks, is simply not re-plannable
and the message is answered as a fresh question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import sqlglot
from sqlglot import exp

from streamforge.components import Limits
from streamforge.data.schema import Schema
from streamforge.offline import compose
from streamforge.offline.compose import Ctx, Piece
from streamforge.offline.entities import Col, Cond, Metric, Request, default_metric, humanize, time_of
from streamforge.offline.intent import IntentInfo, detect
from streamforge.offline.periods import Period, add_months
from streamforge.offline.views import View

__all__ = ["Spec", "from_component", "from_view", "period_between", "pieces"]

_AGGREGATES: dict[type[exp.Expr], str] = {
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
    exp.Count: "count",
}
_BLANK_INFO: IntentInfo = detect("")


@dataclass
class Spec:
    """What one component shows, in planner terms.

    ``kind`` is how it is computed: ``aggregate`` (figures by ``x``, optionally split by ``group``),
    ``figure`` (a KPI card), ``rows`` (records of ``base``), ``scatter`` or ``histogram``. ``shape`` is
    how it is drawn: a chart type, ``table`` or ``card``.
    """

    kind: str
    shape: str
    base: str
    metrics: list[Metric]
    x: Col | None = None
    grain: str | None = None
    group: Col | None = None
    conds: list[Cond] = field(default_factory=list)
    time: Col | None = None
    period: Period | None = None
    order: str = "x"  # x | value_desc | value_asc
    limit: int | None = None
    card_top: bool = False  # the card that names the top group of a ranking
    recent: bool | None = None  # rows: newest (True) or oldest (False) first
    narrowed: bool = False  # the period was only the planner's cut of a too-long time axis
    auto_grain: bool = False  # pick the grain again (the period changed and no grain was asked for)
    notes: list[str] = field(default_factory=list)

    @property
    def over_time(self) -> bool:
        return self.x is not None and self.time is not None and self.x == self.time and self.grain is not None


def period_between(start: date, end: date) -> Period:
    """A date range labelled as the calendar unit it is ("2024", "2025-Q4", "2025-03") when it is one."""
    if start.day == 1 and end.day == 1:
        months = (end.year - start.year) * 12 + end.month - start.month
        if months == 12 and start.month == 1:
            return Period(start, end, str(start.year), "year")
        if months == 3 and start.month % 3 == 1:
            return Period(start, end, f"{start.year}-Q{(start.month - 1) // 3 + 1}", "quarter")
        if months == 1:
            return Period(start, end, f"{start.year}-{start.month:02d}", "month")
        if add_months(start, months) == end:
            return Period(start, end, f"{start.isoformat()} to {end.isoformat()}", "month")
    return Period(start, end, f"{start.isoformat()} to {end.isoformat()}", "day")


def _qualifiers(tree: exp.Expr) -> dict[str, list[str]]:
    """Column name -> the tables it is read from in the statement, in order of appearance."""
    found: dict[str, list[str]] = {}
    for column in tree.find_all(exp.Column):
        if column.table and column.table not in found.setdefault(column.name, []):
            found[column.name].append(column.table)
    return found


class _Reader:
    """Resolves the bare names of one component's source against the schema and its SQL."""

    def __init__(self, schema: Schema, base: str, tree: exp.Expr) -> None:
        self.schema = schema
        self.base = base
        self.tree = tree
        self.qualified = _qualifiers(tree)

    def col(self, name: Any) -> Col | None:
        if not isinstance(name, str) or not name:
            return None
        tables = self.schema.tables
        for table in self.qualified.get(name, []):
            if table in tables and name in tables[table].columns:
                return Col(table, name)
        if name in tables[self.base].columns:
            return Col(self.base, name)
        reachable = [
            (len(path), t.name)
            for t in tables.values()
            if name in t.columns and (path := self.schema.join_path(self.base, t.name)) is not None
        ]
        return Col(min(reachable)[1], name) if reachable else None

    def aggregate_of(self, alias: str) -> tuple[str, bool] | None:
        """The aggregate (and DISTINCT) behind a select alias such as ``m1``."""
        for node in self.tree.find_all(exp.Alias):
            if node.alias != alias:
                continue
            for kind, name in _AGGREGATES.items():
                agg = node.this if isinstance(node.this, kind) else node.this.find(kind)
                if agg is not None:
                    return name, isinstance(agg.this, exp.Distinct)
        return None

    def rate_of(self, alias: str) -> tuple[bool, Any]:
        """Whether the figure behind ``alias`` is a rate (AVG of a CASE), and the value it counts."""
        for node in self.tree.find_all(exp.Alias):
            if node.alias != alias:
                continue
            avg = node.this.find(exp.Avg)
            case = avg.this if avg is not None else None
            while isinstance(case, exp.Case) and isinstance(case.args["ifs"][0].args.get("true"), exp.Case):
                case = case.args["ifs"][0].args["true"]  # a period's CASE around the rate's own
            if not isinstance(case, exp.Case) or not isinstance(node.this, exp.Mul):
                continue
            test = case.args["ifs"][0].this
            if isinstance(test, exp.In):
                return True, [_literal(v) for v in test.expressions]
            if isinstance(test, exp.EQ):
                value = _literal(test.expression)
                return True, None if value is True else value
        return False, None

    def order_and_limit(self) -> tuple[str, int | None, list[tuple[str, bool]]]:
        """The sort (by value or by key), the LIMIT, and the ordered column names of the outer query."""
        select = self.tree if isinstance(self.tree, exp.Select) else self.tree.find(exp.Select)
        if select is None:
            return "x", None, []
        limit_node = select.args.get("limit")
        limit = None
        if limit_node is not None:
            number = limit_node.expression
            if isinstance(number, exp.Literal) and number.is_int:
                limit = int(number.this)
        order = "x"
        columns: list[tuple[str, bool]] = []
        order_node = select.args.get("order")
        for ordered in order_node.expressions if order_node is not None else []:
            target = ordered.this
            desc = bool(ordered.args.get("desc"))
            if isinstance(target, exp.Column) and target.name == "m0":
                order = "value_desc" if desc else "value_asc"
            elif isinstance(target, exp.Column):
                columns.append((target.name, desc))
        return order, limit, columns


def _literal(node: exp.Expr) -> Any:
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        number = float(node.this)
        return int(number) if number.is_integer() else number
    return node.name if isinstance(node, exp.Literal) else node.sql()


def _metric(reader: _Reader, column: str | None, aggregate: str, distinct: bool) -> Metric | None:
    schema = reader.schema
    if column is None:
        return (
            Metric(reader.base, None, "count", label=humanize(reader.base)) if aggregate == "count" else None
        )
    col = reader.col(column)
    if col is None:
        return None
    table = schema.tables[col.table]
    if aggregate == "count" and not distinct and (col.name == table.primary_key or col.table != reader.base):
        return Metric(col.table, None, "count", label=humanize(col.table))
    if aggregate == "count" and distinct:
        fk = next((f for f in schema.foreign_keys if f.table == col.table and f.column == col.name), None)
        label = f"Active {fk.ref_table}" if fk else humanize(col.name)
        return Metric(col.table, col.name, "count", distinct=True, label=label)
    if aggregate not in ("sum", "avg", "min", "max", "count"):
        return None
    return Metric(col.table, col.name, aggregate, label=humanize(col.name))


def _filters(reader: _Reader, filters: list[Any]) -> tuple[list[Cond], Col | None, Period | None] | None:
    conds: list[Cond] = []
    time: Col | None = None
    start: date | None = None
    end: date | None = None
    for f in filters:
        if not isinstance(f, dict):
            return None
        col = reader.col(f.get("column"))
        op, value = f.get("op"), f.get("value")
        if col is None or not isinstance(op, str):
            return None
        info = reader.schema.column(col.table, col.name)
        if info.kind == "temporal" and op in (">=", "<") and isinstance(value, str):
            try:
                day = date.fromisoformat(value[:10])
            except ValueError:
                return None
            time = col
            if op == ">=":
                start = day
            else:
                end = day
            continue
        conds.append(Cond(col, op, list(value) if isinstance(value, list | tuple) else value))
    period = period_between(start, end) if start is not None and end is not None else None
    return conds, time, period


def _is_measure(schema: Schema, table: str, column: str) -> bool:
    return column in schema.tables[table].columns and schema.column(table, column).kind == "measure"


def from_view(view: View, schema: Schema) -> Spec | None:
    """The spec of a chart the chart pipeline drew, from its :class:`View` (no SQL read back)."""
    base = view.base
    time = time_of(schema, base)
    x_info = schema.column(view.x.table, view.x.name)
    if x_info.kind == "temporal":
        time = view.x
    conds: list[Cond] = []
    bounds: dict[str, str] = {}
    for c in view.filters:
        if time is not None and c.col == time and c.op in (">=", "<") and isinstance(c.value, str):
            bounds[c.op] = c.value
        else:
            conds.append(c)
    period = None
    if set(bounds) == {">=", "<"}:
        try:
            period = period_between(date.fromisoformat(bounds[">="]), date.fromisoformat(bounds["<"]))
        except ValueError:
            return None
    elif bounds:
        conds += [Cond(time, op, value) for op, value in bounds.items() if time is not None]
    order = "x"
    if view.order is not None and view.order[0] == "y":
        order = "value_desc" if view.order[1] == "desc" else "value_asc"
    args: dict[str, Any] = {"base": base, "conds": conds, "time": time, "period": period}
    if view.chart == "scatter" and view.aggregate == "none" and view.y is not None:
        a = Metric(view.x.table, view.x.name, "sum", label=humanize(view.x.name))
        b = Metric(view.y.table, view.y.name, "sum", label=humanize(view.y.name))
        return Spec("scatter", "scatter", metrics=[a, b], **args)
    aggregate = view.aggregate
    if aggregate == "none":
        aggregate = "sum"  # one row a point: the sum of each is the value itself
    # COUNT(column) and COUNT(*) agree on the rows a view counts, unless it counts distinct values
    column = None
    if view.y is not None and (aggregate != "count" or view.distinct):
        column = view.y.name
    label = humanize(column or base)
    metric = Metric(base, column, aggregate, distinct=view.distinct, label=label)
    grain = view.grain if view.grain in ("day", "week", "month", "quarter", "year") else None
    if x_info.kind == "temporal" and grain is None:
        grain = "day"
    return Spec(
        "aggregate",
        view.chart,
        metrics=[metric],
        x=view.x,
        grain=grain,
        group=view.group,
        order=order,
        limit=view.limit,
        **args,
    )


def from_component(frame: dict[str, Any], schema: Schema, dialect: str) -> Spec | None:
    """The spec behind an on-screen component, or None when it cannot be re-planned.

    A chart of the chart pipeline carries its :class:`View` in ``data.source.view``: its spec comes
    from there. Only other components (the dashboard's) are read back from their SQL.
    """
    data = frame.get("data")
    source = data.get("source") if isinstance(data, dict) else None
    if not isinstance(source, dict) or not isinstance(source.get("sql"), str):
        return None
    if source.get("view") is not None and frame.get("type") == "ChartComponent":
        view = View.from_dict(source["view"], schema)
        return from_view(view, schema) if view is not None else None
    base = source.get("table")
    if not isinstance(base, str) or base not in schema.tables:
        return None
    try:
        tree = sqlglot.parse_one(source["sql"], read=dialect)
    except sqlglot.errors.ParseError:
        return None
    assert isinstance(data, dict)
    reader = _Reader(schema, base, tree)
    read = _filters(reader, source.get("filters") or [])
    if read is None:
        return None
    conds, filter_time, period = read
    narrowed = "too many" in str(data.get("description") or "")
    if narrowed:
        period = None  # the planner's own cut of a long axis, not the person's filter: it is made again
    kind_of = frame.get("type")
    aggregate = source.get("aggregate") or "none"
    ys = source.get("y")
    y_list: list[str | None] = list(ys) if isinstance(ys, list) else [ys]
    x = reader.col(source.get("x")) if source.get("x") else None
    group = reader.col(source.get("group")) if source.get("group") else None
    grain = source.get("grain") if isinstance(source.get("grain"), str) else None
    time = filter_time or (x if x is not None and grain else None) or time_of(schema, base)
    order, limit, ordered = reader.order_and_limit()
    spec_args: dict[str, Any] = {
        "base": base,
        "conds": conds,
        "time": time,
        "period": period,
        "order": order,
        "limit": limit,
        "narrowed": narrowed,
    }
    chart_type = data.get("chart_type")
    if kind_of == "ChartComponent" and chart_type == "scatter":
        a, b = _metric(reader, source.get("x"), "sum", False), _metric(reader, y_list[0], "sum", False)
        if a is None or b is None or a.column is None or b.column is None:
            return None
        return Spec("scatter", "scatter", metrics=[a, b], **spec_args)
    if reader.aggregate_of("bin") is None and any(a.alias == "bin" for a in tree.find_all(exp.Alias)):
        if x is None:
            return None
        return Spec("histogram", "bar", metrics=[Metric(base, None, "count")], x=x, **spec_args)
    if aggregate == "none":
        if kind_of != "TableA":
            return None
        recent = None
        if ordered and time is not None and ordered[0][0] == time.name:
            recent = ordered[0][1]
        elif ordered and _is_measure(schema, base, ordered[0][0]):  # "the top orders": by a figure
            spec_args["order"] = "value_desc" if ordered[0][1] else "value_asc"
        return Spec(
            "rows", "table", metrics=[default_metric(schema.tables[base])], recent=recent, **spec_args
        )
    metrics: list[Metric] = []
    for i, y in enumerate(y_list):
        found = reader.aggregate_of(f"m{i}") or reader.aggregate_of(f"all{i}") or (aggregate, False)
        metric = _metric(reader, y, found[0] if i else aggregate, found[1])
        if metric is None:
            return None
        is_rate, rate_value = reader.rate_of(f"m{i}")
        if not is_rate:
            is_rate, rate_value = reader.rate_of(f"all{i}")
        if is_rate and metric.column is not None and metric.aggregate == "avg":
            shown = rate_value if rate_value is not None else re.sub(r"^(?:is|has|was)_", "", metric.column)
            label = " or ".join(map(str, shown)) if isinstance(shown, list) else str(shown)
            metric = replace(metric, rate=True, rate_value=rate_value, label=humanize(f"{label} rate"))
        metrics.append(metric)
    if not metrics or metrics[0].table != base:
        return None  # the figure of another table than the one counted: not ours to re-plan
    if kind_of == "SimpleComponent":
        if x is not None:
            return Spec("aggregate", "card", metrics=metrics, x=x, card_top=True, **spec_args)
        return Spec("figure", "card", metrics=metrics, **spec_args)
    shape = "table" if kind_of == "TableA" else str(chart_type or "bar")
    if x is None:
        return None
    return Spec("aggregate", shape, metrics=metrics, x=x, grain=grain, group=group, **spec_args)


def request_of(spec: Spec, message: str = "") -> Request:
    """A :class:`Request` that makes :mod:`compose` draw ``spec``."""
    dims = [d for d in (spec.x if not spec.over_time else None, spec.group) if d is not None]
    info = replace(
        _BLANK_INFO,
        grain=spec.grain if spec.over_time and not spec.auto_grain else None,
        chart_type=spec.shape if spec.shape in ("line", "bar", "area", "pie") else None,
        wants_table=spec.shape == "table",
        wants_chart=spec.shape not in ("table", "card"),
        top_n=spec.limit,
        descending=None if spec.order == "x" else spec.order == "value_desc",
        recent=spec.recent,
        intent="list" if spec.kind == "rows" else "none",
    )
    return Request(
        message=message,
        info=info,
        metric=spec.metrics[0],
        metric_named=True,
        dims=dims,
        time=spec.time,
        time_named=spec.over_time,
        conds=list(spec.conds),
        periods=[spec.period] if spec.period is not None else [],
        extra_metrics=spec.metrics[1:],
        entity=spec.base if spec.kind == "rows" else None,
        notes=list(spec.notes),
        matched=True,
    )


def pieces(spec: Spec, schema: Schema, dialect: str, limits: Limits) -> list[Piece]:
    """The pieces that draw ``spec``; the first component they render is the answer."""
    ctx = Ctx(schema, dialect, limits, request_of(spec))
    if spec.kind == "figure":
        return [compose.kpi_piece(ctx, spec.metrics)]
    if spec.kind == "rows":
        return compose.records(ctx)
    if spec.kind == "scatter":
        return compose.scatter_piece(ctx, spec.metrics[0], spec.metrics[1])[:1]
    if spec.kind == "histogram":
        assert spec.x is not None
        return [compose.histogram_piece(ctx, spec.x)]
    if spec.over_time:
        chart = spec.shape if spec.shape in ("line", "bar", "area", "pie") else "line"
        return compose.trend(ctx, chart_type=chart)
    assert spec.x is not None
    x = spec.x
    shape = spec.shape
    metric = spec.metrics[0]
    note = ""
    if shape == "pie" and len(spec.metrics) > 1:
        shape = "bar"  # a pie has one series
    elif shape == "pie" and metric.aggregate not in ("sum", "count"):
        # asked for by name: the pie is drawn, and says what its slices are
        note = f"The slices show {metric.aggregate} values per group, not parts of one whole."
    title = None
    if spec.limit is not None and spec.order != "x":
        title = compose.ranking_title(ctx, x, spec.limit, spec.order == "value_desc")
    elif shape == "pie":
        title = compose.share_title(metric, x)
    order = spec.order if spec.order != "x" or spec.limit is None else "value_desc"
    return compose.breakdown(
        ctx,
        shape="table" if shape == "card" else shape,
        note=note,
        order=order,
        limit=spec.limit,
        x=x,
        card_top=spec.card_top,
        title=title,
    )
