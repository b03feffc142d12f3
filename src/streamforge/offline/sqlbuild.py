"""SQL for a resolved request, built as sqlglot expressions and rendered per dialect.

Nothing the user typed is ever pasted into SQL text: identifiers come from the introspected schema
and are quoted by sqlglot; values (a region, a date, a number) become sqlglot literals. The only SQL
text written here is this module's own fixed templates for time buckets, whose single placeholder is
replaced by a column expression.

Time buckets differ per engine, so each dialect gets its own template, producing the label a chart
shows ("2024-03", "2024-Q1", Monday dates for weeks). Periods are compared as half-open ranges with
ISO literals, which works for DATE, TIMESTAMP and ISO text alike.

Joins follow the schema's foreign keys from the figure's table. When a join fans out (one row of the
figure's table meets many rows of another), a row count becomes ``COUNT(DISTINCT key)``, so "users by
product category" counts users, not their orders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sqlglot
from sqlglot import exp

from streamforge.data.schema import Schema
from streamforge.offline.entities import Col, Cond, Metric
from streamforge.offline.periods import Period

__all__ = ["Builder", "Query", "aggregate_sql", "bucket", "kpi_sql", "points_sql", "rows_sql"]

_PLACEHOLDER = "__sf_col__"
_BUCKETS: dict[str, dict[str, str]] = {
    "sqlite": {
        "day": "strftime('%Y-%m-%d', __sf_col__)",
        "week": "strftime('%Y-%m-%d', __sf_col__, 'weekday 0', '-6 days')",
        "month": "strftime('%Y-%m', __sf_col__)",
        "quarter": (
            "strftime('%Y', __sf_col__) || '-Q' || ((CAST(strftime('%m', __sf_col__) AS INTEGER) + 2) / 3)"
        ),
        "year": "strftime('%Y', __sf_col__)",
        "weekday": "substr('SunMonTueWedThuFriSat', 1 + 3 * CAST(strftime('%w', __sf_col__) AS INTEGER), 3)",
        "dow": "CAST(strftime('%w', __sf_col__) AS INTEGER)",
    },
    "duckdb": {
        "day": "strftime(__sf_col__, '%Y-%m-%d')",
        "week": "strftime(date_trunc('week', __sf_col__), '%Y-%m-%d')",
        "month": "strftime(__sf_col__, '%Y-%m')",
        "quarter": "strftime(__sf_col__, '%Y') || '-Q' || CAST(quarter(__sf_col__) AS VARCHAR)",
        "year": "strftime(__sf_col__, '%Y')",
        "weekday": "strftime(__sf_col__, '%a')",
        "dow": "CAST(strftime(__sf_col__, '%w') AS INTEGER)",
    },
    "postgres": {
        "day": "to_char(__sf_col__, 'YYYY-MM-DD')",
        "week": "to_char(date_trunc('week', __sf_col__), 'YYYY-MM-DD')",
        "month": "to_char(__sf_col__, 'YYYY-MM')",
        "quarter": "to_char(__sf_col__, 'YYYY-\"Q\"Q')",
        "year": "to_char(__sf_col__, 'YYYY')",
        "weekday": "to_char(__sf_col__, 'Dy')",
        "dow": "CAST(EXTRACT(DOW FROM __sf_col__) AS INTEGER)",
    },
}
_PYTHON_FORMATS = {
    "day": "%Y-%m-%d",
    "week": "%Y-%m-%d",
    "month": "%Y-%m",
    "quarter": "%Y-%m",
    "year": "%Y",
    "weekday": "%a",
    "dow": "%w",
}


@cache
def _template(dialect: str, grain: str) -> exp.Expr | None:
    text = _BUCKETS.get(dialect, {}).get(grain)
    return sqlglot.parse_one(text, read=dialect) if text else None


def bucket(column: exp.Expr, grain: str, dialect: str) -> exp.Expr:
    """``column`` truncated to ``grain`` and formatted as the label a chart shows."""
    template = _template(dialect, grain)
    if template is None:  # another engine: sqlglot translates a strftime-style format
        return exp.TimeToStr(this=column, format=exp.Literal.string(_PYTHON_FORMATS[grain]))

    def put(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.name == _PLACEHOLDER:
            return column.copy()
        return node

    return template.copy().transform(put)


def literal(value: Any) -> exp.Expr:
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if value is None:
        return exp.null()
    return exp.Literal.string(str(value))


@dataclass
class Builder:
    """Builds one statement over ``base``, adding the joins its columns need."""

    schema: Schema
    dialect: str
    base: str
    _joined: list[str] = field(default_factory=list)
    _joins: list[tuple[str, exp.Expr]] = field(default_factory=list)
    fans_out: bool = False

    def col(self, col: Col) -> exp.Expr:
        self._join(col.table)
        node: exp.Expr = exp.column(col.name, table=col.table, quoted=True)
        info = self.schema.column(col.table, col.name)
        if info.stored_as_text and info.kind == "temporal" and self.dialect != "sqlite":
            node = exp.cast(node, exp.DataType.build("timestamp"))
        return node

    def _join(self, table: str) -> None:
        if table == self.base or table in self._joined:
            return
        path = self.schema.join_path(self.base, table)
        if path is None:
            raise ValueError(f"{table} is not linked to {self.base}")
        here = self.base
        for fk in path:
            there = fk.ref_table if fk.table == here else fk.table
            if fk.ref_table == here:
                self.fans_out = True  # from the referenced row to the many rows pointing at it
            if there not in self._joined and there != self.base:
                on = exp.EQ(
                    this=exp.column(fk.column, table=fk.table, quoted=True),
                    expression=exp.column(fk.ref_column, table=fk.ref_table, quoted=True),
                )
                self._joined.append(there)
                self._joins.append((there, on))
            here = there

    def metric(self, metric: Metric, when: exp.Expr | None = None) -> exp.Expr:
        """The aggregate for ``metric``; with ``when``, only over rows meeting it (CASE inside)."""
        pk = self.schema.tables[metric.table].primary_key
        if metric.column is None:
            if self.fans_out and pk:
                arg: exp.Expr = self.col(Col(metric.table, pk))
                return exp.Count(this=exp.Distinct(expressions=[_when(arg, when)]))
            return (
                exp.Count(this=_when(exp.Literal.number(1), when))
                if when is not None
                else exp.Count(this=exp.Star())
            )
        if metric.rate:
            value_of = True if metric.rate_value is None else metric.rate_value
            op = "in" if isinstance(value_of, list | tuple) else "="
            hit = self.condition(Cond(Col(metric.table, metric.column), op, value_of))
            share = exp.Case(
                ifs=[exp.If(this=hit, true=exp.Literal.number("1.0"))], default=exp.Literal.number(0)
            )
            return exp.Mul(this=exp.Literal.number("100.0"), expression=exp.Avg(this=_when(share, when)))
        value = _when(self.col(Col(metric.table, metric.column)), when)
        if metric.aggregate == "count":
            inner = exp.Distinct(expressions=[value]) if metric.distinct else value
            return exp.Count(this=inner)
        func = {"sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max}[metric.aggregate]
        return func(this=value)

    def condition(self, cond: Cond) -> exp.Expr:
        column = self.col(cond.col)
        if cond.op == "in":
            return exp.In(this=column, expressions=[literal(v) for v in cond.value])
        if cond.op == "not in":
            return exp.Not(this=exp.In(this=column, expressions=[literal(v) for v in cond.value]))
        if cond.op == "between":
            low, high = cond.value
            return exp.Between(this=column, low=literal(low), high=literal(high))
        ops: dict[str, type[exp.Expr]] = {
            "=": exp.EQ,
            "!=": exp.NEQ,
            "<": exp.LT,
            "<=": exp.LTE,
            ">": exp.GT,
            ">=": exp.GTE,
            "like": exp.Like,
        }
        return ops[cond.op](this=column, expression=literal(cond.value))

    def period(self, time: Col, period: Period) -> exp.Expr:
        column = self.col(time)
        return exp.and_(
            exp.GTE(this=column, expression=literal(period.start.isoformat())),
            exp.LT(this=column.copy(), expression=literal(period.end.isoformat())),
        )

    def finish(self, select: exp.Select, where: list[exp.Expr]) -> exp.Select:
        select = select.from_(_table(self.base))
        for table, on in self._joins:
            select = select.join(_table(table), on=on)
        if where:
            select = select.where(exp.and_(*where))
        return select


def _table(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def _when(value: exp.Expr, when: exp.Expr | None) -> exp.Expr:
    if when is None:
        return value
    return exp.Case(ifs=[exp.If(this=when, true=value)])


@dataclass
class Query:
    """An aggregate over ``base``: metrics by ``x`` (and ``series``), filtered, ordered, limited.

    ``x`` is a column, bucketed by ``grain`` when it is a date; or, with ``periods``, the named
    periods the date column falls in ("2025-Q1" vs "2025-Q2"). ``series`` splits values into lines or
    bar groups; ``series_periods`` does the same by period. ``top_series`` keeps the series with the
    largest totals, in the query itself, so a chart never gets more lines than it can show.
    """

    base: str
    metrics: list[Metric]
    conds: list[Cond] = field(default_factory=list)
    time: Col | None = None
    period: Period | None = None  # filter on ``time``
    x: Col | None = None
    grain: str | None = None
    periods: list[Period] | None = None
    series: Col | None = None
    series_periods: list[Period] | None = None
    order: str = "x"  # x | value_desc | value_asc
    limit: int | None = None
    top_series: int | None = None


def _where(b: Builder, conds: list[Cond], time: Col | None, period: Period | None) -> list[exp.Expr]:
    where = [b.condition(c) for c in conds]
    if time is not None and period is not None:
        where.append(b.period(time, period))
    return where


def _period_case(b: Builder, time: Col, periods: list[Period]) -> exp.Expr:
    return exp.Case(ifs=[exp.If(this=b.period(time, p), true=literal(p.label)) for p in periods])


def _periods_span(periods: list[Period]) -> Period:
    return Period(min(p.start for p in periods), max(p.end for p in periods), "", "day")


def aggregate_sql(schema: Schema, dialect: str, q: Query) -> str:
    b = Builder(schema, dialect, q.base)
    keys: list[exp.Expr] = []
    if q.periods and q.time is not None:
        keys.append(_period_case(b, q.time, q.periods))
    elif q.x is not None:
        x = b.col(q.x)
        keys.append(bucket(x, q.grain, dialect) if q.grain else x)
    if q.series_periods and q.time is not None:
        keys.append(_period_case(b, q.time, q.series_periods))
    elif q.series is not None:
        keys.append(b.col(q.series))
    where = _where(b, q.conds, q.time, q.period)
    span = q.periods or q.series_periods
    if span and q.time is not None:
        where.append(b.period(q.time, _periods_span(span)))
    if q.series is not None and q.top_series:
        top = Query(
            q.base,
            q.metrics[:1],
            q.conds,
            q.time,
            q.period,
            x=q.series,
            order="value_desc",
            limit=q.top_series,
        )
        where.append(
            exp.In(this=b.col(q.series), query=exp.Subquery(this=_top_subquery(schema, dialect, top)))
        )
    aliases = [f"k{i}" for i in range(len(keys))]
    select = exp.select(
        *[exp.alias_(k, a, quoted=True) for k, a in zip(keys, aliases, strict=True)],
        *[exp.alias_(b.metric(m), f"m{i}", quoted=True) for i, m in enumerate(q.metrics)],
    )
    select = b.finish(select, where)
    if keys:
        select = (
            select.group_by(*[exp.column(a, quoted=True) for a in aliases])
            if dialect != "postgres"
            else select.group_by(*keys)
        )
        first_metric = exp.column("m0", quoted=True)
        if q.order == "value_desc":
            select = select.order_by(exp.Ordered(this=first_metric, desc=True))
        elif q.order == "value_asc":
            select = select.order_by(exp.Ordered(this=first_metric, desc=False))
        else:
            select = select.order_by(*[exp.column(a, quoted=True) for a in aliases])
    if q.limit:
        select = select.limit(q.limit)
    return select.sql(dialect=dialect)


def _top_subquery(schema: Schema, dialect: str, q: Query) -> exp.Select:
    b = Builder(schema, dialect, q.base)
    assert q.x is not None
    key = b.col(q.x)
    select = exp.select(key)
    select = b.finish(select, _where(b, q.conds, q.time, q.period))
    select = select.group_by(key.copy()).order_by(exp.Ordered(this=b.metric(q.metrics[0]), desc=True))
    return select.limit(q.limit or 5)


def rows_sql(
    schema: Schema,
    dialect: str,
    base: str,
    columns: list[Col],
    conds: list[Cond],
    time: Col | None,
    period: Period | None,
    order: list[tuple[Col, bool]],
    limit: int,
) -> str:
    """Records of ``base`` (and columns joined to it), newest or largest first as asked."""
    b = Builder(schema, dialect, base)
    select = exp.select(*[exp.alias_(b.col(c), c.name, quoted=True) for c in columns])
    select = b.finish(select, _where(b, conds, time, period))
    if order:
        select = select.order_by(*[exp.Ordered(this=b.col(c), desc=desc) for c, desc in order])
    return select.limit(limit).sql(dialect=dialect)


def _both_present(*columns: exp.Expr) -> list[exp.Expr]:
    """``col IS NOT NULL`` for each column: a scatter point or a correlation needs both values."""
    return [exp.Not(this=exp.Is(this=c, expression=exp.null())) for c in columns]


def points_sql(
    schema: Schema,
    dialect: str,
    base: str,
    x: Col,
    y: Col,
    conds: list[Cond],
    time: Col | None,
    period: Period | None,
    stride: int,
    limit: int,
) -> str:
    """Pairs of values for a scatter: every ``stride``-th row by key, so the sample spans the table."""
    b = Builder(schema, dialect, base)
    select = exp.select(exp.alias_(b.col(x), "x", quoted=True), exp.alias_(b.col(y), "y", quoted=True))
    where = _where(b, conds, time, period)
    where += _both_present(b.col(x), b.col(y))
    pk = schema.tables[base].primary_key
    if pk and stride > 1 and schema.column(base, pk).integer:
        where.append(
            exp.EQ(this=exp.Mod(this=b.col(Col(base, pk)), expression=literal(stride)), expression=literal(0))
        )
    select = b.finish(select, where)
    if pk:
        select = select.order_by(b.col(Col(base, pk)))
    return select.limit(limit).sql(dialect=dialect)


def correlation_sql(
    schema: Schema,
    dialect: str,
    base: str,
    x: Col,
    y: Col,
    conds: list[Cond],
    time: Col | None,
    period: Period | None,
) -> str:
    """The sums Pearson's r needs, over all rows (not just the plotted sample)."""
    b = Builder(schema, dialect, base)
    # as floating point: squares of a population column overflow SQLite's 64-bit integers
    real = exp.DataType.build("double")
    cx, cy = exp.cast(b.col(x), real), exp.cast(b.col(y), real)
    parts = [
        exp.Count(this=exp.Star()),
        exp.Sum(this=cx.copy()),
        exp.Sum(this=cy.copy()),
        exp.Sum(this=exp.Mul(this=cx.copy(), expression=cy.copy())),
        exp.Sum(this=exp.Mul(this=cx.copy(), expression=cx.copy())),
        exp.Sum(this=exp.Mul(this=cy.copy(), expression=cy.copy())),
    ]
    select = exp.select(*[exp.alias_(p, f"s{i}", quoted=True) for i, p in enumerate(parts)])
    where = _where(b, conds, time, period)
    where += _both_present(cx.copy(), cy.copy())
    return b.finish(select, where).sql(dialect=dialect)


def kpi_sql(
    schema: Schema,
    dialect: str,
    base: str,
    metrics: list[Metric],
    conds: list[Cond],
    time: Col | None,
    current: Period | None,
    previous: Period | None,
    filtered: bool,
) -> str:
    """Each metric overall, in ``current`` and in ``previous``, in one scan.

    With ``filtered`` the rows are limited to the two periods (the figure is the current period's);
    otherwise the figure is over all rows and the periods only give the delta.
    """
    b = Builder(schema, dialect, base)
    columns: list[exp.Expr] = []
    for i, m in enumerate(metrics):
        columns.append(exp.alias_(b.metric(m), f"all{i}", quoted=True))
        if time is not None and current is not None:
            columns.append(exp.alias_(b.metric(m, b.period(time, current)), f"cur{i}", quoted=True))
        if time is not None and previous is not None:
            columns.append(exp.alias_(b.metric(m, b.period(time, previous)), f"prev{i}", quoted=True))
    where = _where(b, conds, None, None)
    if filtered and time is not None and current is not None:
        where.append(
            b.period(time, Period(previous.start if previous else current.start, current.end, "", "day"))
        )
    return b.finish(exp.select(*columns), where).sql(dialect=dialect)


def bounds_sql(
    schema: Schema,
    dialect: str,
    base: str,
    col: Col,
    conds: list[Cond],
    time: Col | None,
    period: Period | None,
) -> str:
    b = Builder(schema, dialect, base)
    c = b.col(col)
    select = exp.select(
        exp.alias_(exp.Min(this=c), "lo", quoted=True), exp.alias_(exp.Max(this=c.copy()), "hi", quoted=True)
    )
    return b.finish(select, _where(b, conds, time, period)).sql(dialect=dialect)


def histogram_sql(
    schema: Schema,
    dialect: str,
    base: str,
    col: Col,
    conds: list[Cond],
    time: Col | None,
    period: Period | None,
    low: float,
    width: float,
) -> str:
    """Row counts per bin of ``width`` from ``low``; bins are integers, labelled by the caller."""
    b = Builder(schema, dialect, base)
    c = b.col(col)
    index = exp.cast(
        exp.Div(
            this=exp.Paren(this=exp.Sub(this=c, expression=literal(float(low)))),
            expression=literal(float(width)),
        ),
        exp.DataType.build("int"),
    )
    select = exp.select(
        exp.alias_(index, "bin", quoted=True), exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True)
    )
    where = [*_where(b, conds, time, period), exp.Not(this=exp.Is(this=c.copy(), expression=exp.null()))]
    select = (
        b.finish(select, where)
        .group_by(exp.column("bin", quoted=True))
        .order_by(exp.column("bin", quoted=True))
    )
    return select.sql(dialect=dialect)
