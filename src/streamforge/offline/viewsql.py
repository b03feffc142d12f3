"""Step four: a :class:`~streamforge.offline.views.View` as one SELECT, built with sqlglot.

Joins, column quoting, conditions and per-dialect time buckets come from
:class:`~streamforge.offline.sqlbuild.Builder`, the same code the dashboard answers use, so a view
reaches a lookup table along the same foreign keys and is guarded and run the same way.

The statement's columns are always ``x``, then ``g`` (the colour group, when there is one), then
``y``: :mod:`~streamforge.offline.draw` reads rows by position.
"""

from __future__ import annotations

from sqlglot import exp

from streamforge.data.schema import Schema
from streamforge.offline.entities import Col, Metric
from streamforge.offline.sqlbuild import Builder, bucket
from streamforge.offline.views import View

__all__ = ["view_sql"]


def view_sql(view: View, schema: Schema, dialect: str, max_rows: int, count_rows: bool = False) -> str:
    """``count_rows`` adds ``n``, the rows behind each point, after ``y``: the planner asks for it to
    learn whether an aggregate it chose itself changes anything."""
    b = Builder(schema, dialect, view.base)
    if view.chart == "table":
        return _rows_sql(view, schema, b, dialect, max_rows)
    x = b.col(view.x)
    if view.grain:
        x = bucket(x, view.grain, dialect)
    keys: list[exp.Expr] = [x]
    if view.group is not None:
        keys.append(b.col(view.group))
    where = [b.condition(c) for c in view.filters]
    names = ["x", "g"][: len(keys)]
    if view.aggregate == "none":
        y = b.col(view.y or view.x)
        where.append(exp.Not(this=exp.Is(this=y.copy(), expression=exp.null())))
        select = exp.select(
            *[exp.alias_(k, n, quoted=True) for k, n in zip(keys, names, strict=True)],
            exp.alias_(y, "y", quoted=True),
        )
        select = b.finish(select, where)
        select = _ordered(select, view, keys, y.copy())
        return select.limit(view.limit or max_rows).sql(dialect=dialect)
    y_table = view.y.table if view.y is not None else view.base
    metric = Metric(y_table, view.y.name if view.y else None, view.aggregate, distinct=view.distinct)
    figure = b.metric(metric)
    select = exp.select(
        *[exp.alias_(k, n, quoted=True) for k, n in zip(keys, names, strict=True)],
        exp.alias_(figure, "y", quoted=True),
    )
    if count_rows:
        select = select.select(exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True))
    select = b.finish(select, where)
    grouping = keys if dialect == "postgres" else [exp.column(n, quoted=True) for n in names]
    select = select.group_by(*[g.copy() for g in grouping])
    order_keys: list[exp.Expr] = [exp.column(n, quoted=True) for n in names]
    if view.grain == "weekday":
        # Sun..Sat in week order, not alphabetical: by the day's number (the same in every row of a group)
        order_keys[0] = exp.Min(this=bucket(b.col(view.x), "dow", dialect))
    select = _ordered(select, view, order_keys, exp.column("y", quoted=True))
    if view.limit:
        select = select.limit(view.limit)
    return select.sql(dialect=dialect)


_TABLE_COLUMNS = 8


def _rows_sql(view: View, schema: Schema, b: Builder, dialect: str, max_rows: int) -> str:
    """The rows of a "largest N" question: the table's first columns, ordered by the figure."""
    assert view.y is not None
    columns = list(schema.tables[view.base].columns)[:_TABLE_COLUMNS]
    if view.y.name not in columns:
        columns[-1:] = [view.y.name]
    select = exp.select(*[exp.alias_(b.col(Col(view.base, c)), c, quoted=True) for c in columns])
    where = [b.condition(c) for c in view.filters]
    where.append(exp.Not(this=exp.Is(this=b.col(view.y), expression=exp.null())))
    select = b.finish(select, where)
    desc = view.order is None or view.order[1] == "desc"
    select = select.order_by(exp.Ordered(this=b.col(view.y), desc=desc))
    return select.limit(min(view.limit or max_rows, max_rows)).sql(dialect=dialect)


def _ordered(select: exp.Select, view: View, keys: list[exp.Expr], y: exp.Expr) -> exp.Select:
    if view.order is None:
        return select.order_by(*[k.copy() for k in keys])
    by, direction = view.order
    desc = direction == "desc"
    first = y if by == "y" else keys[0]
    rest = [k.copy() for k in (keys if by == "y" else keys[1:])]
    return select.order_by(exp.Ordered(this=first.copy(), desc=desc), *rest)
