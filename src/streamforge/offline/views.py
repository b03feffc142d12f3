"""Step three: a reading and its links decided into one :class:`View`: what one chart shows.

A view is the whole answer in planner terms: chart kind, the table counted or measured (``base``),
``x``, the figure (``y`` with its ``aggregate``, ``y`` None for a row count), an optional colour
``group``, a time ``grain``, ``filters``, ``order`` and ``limit``. It is built by small rules in a
fixed order, each reading positions: which link a cue word stands before.

1. ``_roles``: cue words give links roles: an aggregate before a column makes it the figure
   ("average age"), a grouping word before it makes it a grouping ("for each city"), an axis word
   names x or y outright ("x axis title"), a comparison or a value makes a filter.
2. ``_base``: the table the figure is about: the measured column's table, the counted table, or
   the table most links resolve in; every other link is resolved in it or in a table reachable
   through foreign keys (declared or inferred), the closest first.
3. ``_figure`` and ``_axis``: the figure, and the x axis (a named table stands for its label column).
   With no aggregate word a measure is plotted row by row when x names rows (a name or an id) and
   summed or averaged otherwise: levels and ratios (age, price, rate) are averaged, amounts summed.
4. ``_order``: the sort clause and "top N" set ORDER BY and LIMIT exactly; nothing asked keeps x
   ascending, the order a reader scans a category or time axis in.

The explicit chart kind always wins; a pie of an average says in its description why its slices
are not parts of a whole. ``decide`` returns None when it cannot find an x axis; the planner then
answers as a dashboard instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from streamforge.data.schema import ColumnInfo, Schema, TableInfo, singular
from streamforge.offline.entities import Col, Cond
from streamforge.offline.lexicon import INTENSIVE_WORDS
from streamforge.offline.link import Lexicon, Link, Target, is_year_column, link
from streamforge.offline.periods import Period, find_periods, resolve
from streamforge.offline.read import Reading

__all__ = ["View", "decide"]

_NEAR = 3  # words between a cue and the link it applies to
_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "not in", "between"})
_GRAINS = frozenset({"day", "week", "month", "quarter", "year", "weekday"})
_CHARTS = frozenset({"bar", "line", "area", "pie", "scatter", "table", "histogram"})
_AGGREGATES = frozenset({"count", "sum", "avg", "min", "max", "none"})
_OPEN_BOUNDS = {
    "or more": ">=",
    "or above": ">=",
    "and above": ">=",
    "and up": ">=",
    "or greater": ">=",
    "or higher": ">=",
    "or over": ">=",
    "or less": "<=",
    "or fewer": "<=",
    "or below": "<=",
    "and below": "<=",
    "or lower": "<=",
    "or under": "<=",
}
_GLUE = frozenset(
    "the a an of all each their its his her those these by in for with from to kind kinds".split()
)


@dataclass
class View:
    chart: str
    base: str
    x: Col
    y: Col | None  # None: rows are counted
    aggregate: str  # count sum avg min max none
    group: Col | None = None
    grain: str | None = None
    filters: list[Cond] = field(default_factory=list)
    order: tuple[str, str] | None = None  # ("x" | "y", "asc" | "desc")
    limit: int | None = None
    distinct: bool = False
    notes: list[str] = field(default_factory=list)
    # The words themselves placed the axis (a grouping, an axis word, "over time", a pair): without a
    # chart named, only such a view is answered as one chart.
    grounded: bool = False
    # The aggregate was chosen here (no aggregate word): where every point is one row it is dropped.
    implicit: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The view as plain JSON, kept in ``data.source.view`` so a follow-up can change it."""

        def col(c: Col | None) -> list[str] | None:
            return [c.table, c.name] if c is not None else None

        return {
            "chart": self.chart,
            "base": self.base,
            "x": col(self.x),
            "y": col(self.y),
            "aggregate": self.aggregate,
            "group": col(self.group),
            "grain": self.grain,
            "filters": [[c.col.table, c.col.name, c.op, c.value] for c in self.filters],
            "order": list(self.order) if self.order else None,
            "limit": self.limit,
            "distinct": self.distinct,
        }

    @classmethod
    def from_dict(cls, data: object, schema: Schema) -> View | None:
        """A view read back from a component, or None unless every name is in ``schema`` and every
        field has its shape (a component may come from a client or a model: it is untrusted)."""
        if not isinstance(data, dict):
            return None

        def col(value: object) -> Col | None:
            if value is None:
                return None
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
                raise ValueError("not a column")
            table, name = value
            if table not in schema.tables or name not in schema.tables[table].columns:
                raise ValueError("unknown column")
            return Col(table, name)

        try:
            x = col(data.get("x"))
            order = data.get("order")
            filters = []
            for item in data.get("filters") or []:
                table, name, op, value = item
                if op not in _OPS:
                    raise ValueError("unknown operator")
                filters.append(Cond(col([table, name]) or Col(table, name), op, value))
            view = cls(
                chart=str(data["chart"]),
                base=str(data["base"]),
                x=x if x is not None else Col("", ""),
                y=col(data.get("y")),
                aggregate=str(data["aggregate"]),
                group=col(data.get("group")),
                grain=data.get("grain") if data.get("grain") in _GRAINS else None,
                filters=filters,
                order=(str(order[0]), str(order[1])) if isinstance(order, list) and len(order) == 2 else None,
                limit=int(data["limit"]) if isinstance(data.get("limit"), int) else None,
                distinct=bool(data.get("distinct")),
            )
        except (KeyError, TypeError, ValueError):
            return None
        valid = (
            x is not None
            and view.base in schema.tables
            and view.chart in _CHARTS
            and view.aggregate in _AGGREGATES
            and (view.order is None or (view.order[0] in ("x", "y") and view.order[1] in ("asc", "desc")))
        )
        return view if valid else None


@dataclass
class _Mention:
    link: Link
    aggregate: str | None = None
    grouped: bool = False
    axis: str | None = None  # "x" | "y" named outright
    scope: bool = False  # "of all students", "every company": which rows, not an axis
    total: bool = False  # "the total number of height": a sum, not a count
    superlative: str | None = None  # "the best mpg": its aggregate came from a superlative
    target: Target | None = None  # resolved against the base

    @property
    def col(self) -> Col | None:
        t = self.target
        return Col(t.table, t.column) if t is not None and t.column else None


def _near_after(reading: Reading, j: int, i: int) -> bool:
    """Word ``i`` follows position ``j`` with only glue words between."""
    if i < j or i - j > _NEAR:
        return False
    return all(w.text in _GLUE for w in reading.words[j:i])


def _roles(reading: Reading, links: list[Link]) -> list[_Mention]:
    mentions = [_Mention(lk) for lk in links if lk.best.kind != "value"]
    inside = {k for m in mentions for k in range(m.link.i, m.link.j)}
    for cue in reading.cues:
        if cue.i in inside:
            continue  # "access counts" names a column; "counts" is no aggregate there
        target = next((m for m in mentions if _near_after(reading, cue.j, m.link.i)), None)
        if target is None:
            continue
        if cue.kind == "aggregate" and target.aggregate is None:
            target.aggregate = cue.value
            target.total = "total" in reading.texts(cue.i, cue.j)
        elif cue.kind == "superlative" and target.aggregate is None and reading.top is None:
            target.aggregate = "max" if cue.value == "desc" else "min"
            target.superlative = cue.value
        elif cue.kind == "group":
            target.grouped = True
        elif cue.kind == "axis" and target.axis is None:
            target.axis = cue.value
    for cue in reading.of("aggregate"):
        # "women tip on average", "bills in total": the aggregate follows its figure
        words = reading.texts(max(0, cue.i - 1), cue.j).split()
        if words[:1] in (["on"], ["in"]) and cue.value != "count":
            figure = next((m for m in reversed(mentions) if 0 <= cue.i - 1 - m.link.j <= 2), None)
            if figure is not None and (figure.aggregate is None or figure.superlative):
                # "the largest bills on average": the average, ranked
                figure.aggregate, figure.superlative = cue.value, None
    for a, b in itertools.pairwise(mentions):
        # "by day and sex", "for each title and each type": the grouping carries over "and"
        between = [w.text for w in reading.words[a.link.j : b.link.i]]
        if a.grouped and between in (["and"], ["and", "by"], ["and", "the"]):
            b.grouped = True
    for m in mentions:
        lead = reading.words[max(0, m.link.i - 2) : m.link.i]
        # "the description of all aircrafts", "for every company": which rows; "show all majors" lists
        m.scope = not m.grouped and (
            any(w.text == "every" for w in lead)
            or (len(lead) == 2 and lead[1].text == "all" and lead[0].text in ("of", "for", "among", "across"))
        )
    # "title as the x axis", "gender of the customers as Y-axis"
    for cue in reading.of("axis"):
        before = [m for m in mentions if m.link.j <= cue.i and cue.i - m.link.j <= 3 and m.axis is None]
        joined = bool(before) and all(
            w.text in ("as", "the", "on", "is") for w in reading.words[before[-1].link.j : cue.i]
        )
        if before and joined and not any(m.axis == cue.value for m in mentions):
            before[-1].axis = cue.value
    return mentions


def _reach(schema: Schema, base: str, t: Target) -> int | None:
    if t.table == base:
        return 0
    path = schema.join_path(base, t.table)
    return None if path is None else len(path)


def _resolve(schema: Schema, base: str, m: _Mention) -> Target | None:
    best: tuple[float, Target] | None = None
    for t in m.link.targets:
        if t.kind == "value":
            continue
        hops = _reach(schema, base, t)
        if hops is None:
            continue
        score = t.score - 0.12 * hops
        if best is None or score > best[0]:
            best = (score, t)
    return best[1] if best else None


def _is_measure(col: ColumnInfo | None) -> bool:
    return col is not None and col.numeric and col.kind in ("measure", "dimension") and not col.boolean


def _column(schema: Schema, t: Target | None) -> ColumnInfo | None:
    if t is None or t.column is None:
        return None
    return schema.column(t.table, t.column)


def _base(
    schema: Schema, mentions: list[_Mention], counted: _Mention | None, measure: _Mention | None
) -> str:
    def table_score(name: str) -> float:
        total = 0.0
        for m in mentions:
            t = _resolve(schema, name, m)
            if t is not None:
                total += t.score - 0.12 * (_reach(schema, name, t) or 0)
        return total

    anchors: list[str] = []
    bonus: set[str] = set()
    if measure is not None:
        anchors = [t.table for t in measure.link.targets if t.column and _is_measure(_column(schema, t))]
    elif counted is not None:
        # "how many players played each position": players are counted where positions are
        anchors = [t.table for t in counted.link.targets]
        bonus = {t.table for t in counted.link.targets if t.kind == "table"}
    tables = list(dict.fromkeys(anchors)) or list(schema.tables)
    return max(tables, key=lambda n: (table_score(n) + 0.3 * (n in bonus), schema.tables[n].row_count))


def _label(table: TableInfo) -> str | None:
    return table.label or table.primary_key or next(iter(table.columns), None)


def _as_axis(schema: Schema, base: str, m: _Mention) -> Col | None:
    t = m.target
    if t is None:
        return None
    if t.column:
        said = set(m.link.text.split())
        if m.grouped and not said & {"id", "ids", "code", "codes", "key", "number"}:
            # "players from each country" where match_season.Country holds a key: the country's name
            # ("for each customer id" asks for the key itself)
            fk = next((f for f in schema.foreign_keys if f.table == t.table and f.column == t.column), None)
            if fk is not None:
                ref = schema.tables[fk.ref_table]
                if ref.label and ref.label != fk.ref_column:
                    return Col(ref.name, ref.label)
        return Col(t.table, t.column)
    table = schema.tables[t.table]
    if t.table != base:
        # "for each department": the department's name, reached from the counted rows.
        name = _label(table)
        return Col(t.table, name) if name else None
    return Col(t.table, table.label) if table.label else None


def _unique(schema: Schema, col: Col) -> bool:
    """Does the column name rows (one row each) rather than groups?"""
    info = schema.column(col.table, col.name)
    table = schema.tables[col.table]
    if info.primary_key or info.kind in ("text",) or col.name == table.label:
        return True
    if info.distinct is not None and table.row_count and info.distinct >= table.row_count:
        return True
    return info.kind == "identifier" and col.table == col.table and table.primary_key == col.name


def _default_aggregate(info: ColumnInfo) -> str:
    return "avg" if set(info.words) & INTENSIVE_WORDS or (not info.integer and _level(info)) else "sum"


def _level(info: ColumnInfo) -> bool:
    words = set(info.words)
    return bool(
        words & {"rate", "ratio", "percent", "pct", "avg", "mean", "per", "exp", "expectancy", "temp"}
    )


def _filters(
    reading: Reading, links: list[Link], schema: Schema, base: str, used: set[int]
) -> tuple[list[Cond], set[int]]:
    """Values named in the message ("in China", "'Boril'", "on weekends") and comparisons ("over 85")."""
    lang_neg = {c.j for c in reading.of("negation")}
    by_col: dict[Col, tuple[list[object], bool]] = {}
    taken: set[int] = set()
    for lk in links:
        if lk.best.kind != "value" or lk.i in used:
            continue
        hits = [t for t in lk.targets if t.kind == "value" and _reach(schema, base, t) is not None]
        if not hits:
            continue
        top = max(t.score for t in hits)
        hits = [t for t in hits if t.score == top]
        # prefer the base's own column, then the closest
        t = min(hits, key=lambda h: _reach(schema, base, h) or 0)
        col = Col(t.table, t.column or "")
        negated = any(0 <= lk.i - k <= 5 for k in lang_neg)
        vals, neg = by_col.get(col, ([], negated))
        vals += list(t.values) if t.values else [t.value]
        by_col[col] = (vals, neg or negated)
        taken |= set(range(lk.i, lk.j))
    conds: list[Cond] = []
    for col, (vals, neg) in by_col.items():
        if len(vals) == 1:
            conds.append(Cond(col, "!=" if neg else "=", vals[0]))
        else:
            conds.append(Cond(col, "not in" if neg else "in", list(dict.fromkeys(vals))))
    return conds, taken


def _comparisons(reading: Reading, mentions: list[_Mention], schema: Schema) -> tuple[list[Cond], set[int]]:
    conds: list[Cond] = []
    used: set[int] = set()
    words = reading.words
    for cue in reading.of("comparator"):
        if cue.value == "=":
            continue
        k = cue.j
        if k < len(words) and words[k].text in ("the", "a"):
            k += 1
        number = words[k].number if k < len(words) else None
        if number is None:
            continue
        before = [m for m in mentions if m.link.j <= cue.i and cue.i - m.link.j <= 4 and m.target is not None]
        after = [m for m in mentions if k < m.link.i <= k + 2 and m.target is not None]  # "over 10 parts"
        col = next((m for m in [*reversed(before), *after] if _is_measure(_column(schema, m.target))), None)
        if col is None or col.col is None:
            continue
        value: float | int = int(number) if number == int(number) else number
        conds.append(Cond(col.col, cue.value, value))
        used.add(col.link.i)
    # "parties of 4 or more", "3 and above"
    for k, w in enumerate(words[:-2]):
        number = w.number
        tail = " ".join(x.text for x in words[k + 1 : k + 3])
        op = _OPEN_BOUNDS.get(tail)
        if number is None or op is None:
            continue
        before = [m for m in mentions if m.link.j <= k and k - m.link.j <= 3 and m.target is not None]
        col = next((m for m in reversed(before) if _is_measure(_column(schema, m.target))), None)
        if col is not None and col.col is not None and col.link.i not in used:
            conds.append(Cond(col.col, op, int(number) if number == int(number) else number))
            used.add(col.link.i)
    # "cars with 8 cylinders": a count of something the rows have is that column's value
    for k, w in enumerate(words[:-1]):
        number = w.number
        if number is None or number != int(number) or any(c.i <= k < c.j for c in reading.cues):
            continue
        nxt = next((m for m in mentions if m.link.i == k + 1 and m.target is not None), None)
        info = _column(schema, nxt.target) if nxt is not None else None
        if (
            nxt is not None
            and nxt.col is not None
            and info is not None
            and info.integer
            and nxt.link.i not in used
            and (reading.top is None or reading.top[0] != int(number))
        ):
            conds.append(Cond(nxt.col, "=", int(number)))
            used.add(nxt.link.i)
    # "between 5 and 10"
    for k, w in enumerate(words[:-3]):
        if w.text == "between" and words[k + 2].text == "and":
            lo, hi = words[k + 1].number, words[k + 3].number
            before = [m for m in mentions if m.link.j <= k and k - m.link.j <= 4 and m.target is not None]
            col = next((m for m in reversed(before) if _is_measure(_column(schema, m.target))), None)
            if lo is not None and hi is not None and col is not None and col.col is not None:
                conds.append(Cond(col.col, "between", (lo, hi)))
                used.add(col.link.i)
    return conds, used


@dataclass
class _Roles:
    """What the words say before any table is chosen: the measured, counted or paired links."""

    mentions: list[_Mention]
    measure: _Mention | None
    counted: _Mention | None
    pair: list[_Mention]
    rows_counted: bool = False  # "how many", "the number of" with nothing after it


def _figure_roles(reading: Reading, mentions: list[_Mention], lexicon: Lexicon) -> _Roles:
    schema = lexicon.schema

    def counts_things(info: ColumnInfo | None) -> bool:
        """A whole number with few values (party size, cylinders) is counted and grouped like a
        category; one with many (population) is a quantity."""
        return info is not None and (info.table, info.name) in lexicon.small_integers

    def numeric(m: _Mention) -> bool:
        return any(_is_measure(_column(schema, t)) for t in m.link.targets)

    for m in mentions:
        info = _column(schema, m.link.best)
        if (
            m.grouped
            and m.aggregate is None
            and info is not None
            and info.kind == "measure"
            and not counts_things(info)
        ):
            # "top suppliers by order value": a measure after "by" ranks, it does not group
            others = [o for o in mentions if o is not m and not _is_measure(_column(schema, o.link.best))]
            if others:
                m.grouped = False
    aggregated = [m for m in mentions if m.aggregate]
    for m in aggregated:
        best = _column(schema, m.link.best)
        if m.aggregate == "count" and m.total and numeric(m) and m.link.best.kind == "column":
            m.aggregate = "sum"  # "the total number of height"
        elif (
            m.aggregate == "count"
            and best is not None
            and best.kind == "measure"
            and m.link.best.rule == "synonym"
            and not counts_things(best)
        ):
            m.aggregate = "sum"  # "how many people" where people are a ``pop`` column: a total

    def measurable(m: _Mention) -> bool:
        """An explicit "average price" averages ``price_range`` even when stored as text."""
        info = _column(schema, m.link.best)
        return numeric(m) or (info is not None and info.kind not in ("temporal", "identifier"))

    measure = next((m for m in aggregated if m.aggregate != "count" and measurable(m)), None)
    y_named = next((m for m in mentions if m.axis == "y"), None)
    if measure is None and y_named is not None and y_named.aggregate not in (None, "count"):
        measure = y_named
    counted = next((m for m in aggregated if m.aggregate == "count"), None)
    attached = {m.link.i for m in aggregated}
    inside = {k for m in mentions for k in range(m.link.i, m.link.j)}
    rows_counted = any(
        c.value == "count" and c.i not in inside and not any(_near_after(reading, c.j, i) for i in attached)
        for c in reading.of("aggregate")
    )
    pair: list[_Mention] = []
    related = reading.chart is None and bool(reading.of("relation")) and not any(m.grouped for m in mentions)
    if related:
        # "unit cost vs list price": two measures set against each other
        numeric_mentions = [
            m for m in mentions if m.link.best.kind == "column" and numeric(m) and not m.scope
        ]
        related = len(numeric_mentions) >= 2 and not aggregated
    if measure is None and counted is None and not rows_counted and (reading.chart == "scatter" or related):
        columns = [m for m in mentions if m.link.best.kind == "column" and not m.scope]
        pair = columns[:2] if len(columns) >= 2 else []
    if measure is None and counted is None and not pair and not rows_counted:
        # "the name and population of each county": a measure named without an aggregate word
        measure = next(
            (
                m
                for m in mentions
                if not m.grouped
                and m.axis != "x"
                and m.link.best.column
                and _is_measure(_column(schema, m.link.best))
            ),
            None,
        )
    return _Roles(mentions, measure, counted, pair, rows_counted)


def _bases(schema: Schema, roles: _Roles) -> list[str]:
    """Tables to try as the base, most likely first."""
    anchor = roles.measure or (roles.pair[0] if roles.pair else None)
    first = _base(schema, roles.mentions, roles.counted, anchor)
    rest = sorted(
        (t for t in schema.tables if t != first),
        key=lambda n: -sum((_resolve(schema, n, m) or Target(n, score=0)).score for m in roles.mentions),
    )
    return [first, *rest[:2]]


_RATE_WORDS = frozenset("rate rates ratio ratios percentage percent pct %".split())


def decide(reading: Reading, lexicon: Lexicon, max_points: int = 50) -> View | None:
    schema = lexicon.schema
    links = link(reading, lexicon)
    covered = {k for lk in links if lk.best.rule in ("exact", "core", "bag") for k in range(lk.i, lk.j)}
    if any(w.text in _RATE_WORDS and k not in covered for k, w in enumerate(reading.words)):
        return None  # "churn rate by plan": a rate of rows, which the dashboard computes
    order = reading.order
    in_order = [lk for lk in links if order and order.span[0] <= lk.i < order.span[1]]
    timed = {k for c in reading.of("time") for k in range(c.i, c.j)}  # "over time" names no column
    links = [lk for lk in links if not timed & set(range(lk.i, lk.j))]
    in_order = [lk for lk in in_order if lk in links]
    main = [lk for lk in links if not (order and order.head <= lk.i < order.span[1])]
    roles = _figure_roles(reading, _roles(reading, main), lexicon)
    binned = _histogram(reading, roles, links, lexicon)
    if binned is not None:
        return binned
    for base in _bases(schema, roles):
        view = _build(reading, lexicon, links, roles, base, in_order, max_points)
        if view is not None:
            return view
    return None


_SPREAD_WORDS = frozenset({"distribution", "distributed", "histogram", "spread"})


def _histogram(reading: Reading, roles: _Roles, links: list[Link], lexicon: Lexicon) -> View | None:
    """ "distribution of tips", "histogram of horsepower": one measure, nothing to group by, no
    aggregate: counts of its values in bins (drawn by the dashboard's histogram, which picks the
    bins from the data's range). With a grouping ("a histogram of players per hand") it is a bar
    chart of counts and not binned."""
    if not {w.text for w in reading.words} & _SPREAD_WORDS:
        return None
    schema = lexicon.schema
    resolved = [replace(m, target=m.link.best) for m in roles.mentions if m.link.best.kind == "column"]
    flags = [(m, _yes_value(reading, schema, m)) for m in resolved]
    columns = [m for m, flag in flags if flag is None]
    if len(columns) != 1 or any(m.grouped or m.aggregate for m in roles.mentions) or roles.rows_counted:
        return None
    info = _column(schema, columns[0].link.best)
    if info is None or info.kind != "measure":
        return None
    col = Col(info.table, info.name)
    filters, _ = _filters(reading, links, schema, info.table, set())
    filters += [Cond(m.col, "=", flag) for m, flag in flags if flag is not None and m.col is not None]
    if (info.table, info.name) in lexicon.small_integers:
        # "histogram of party size": a few whole values, each its own bar
        view = View(reading.chart or "bar", info.table, col, None, "count", filters=filters)
    else:
        view = View("histogram", info.table, col, None, "count", filters=filters)
    view.grounded = True
    return view


def _build(
    reading: Reading,
    lexicon: Lexicon,
    links: list[Link],
    roles: _Roles,
    base: str,
    in_order: list[Link],
    max_points: int,
) -> View | None:
    schema = lexicon.schema
    mentions = [replace(m, target=_resolve(schema, base, m)) for m in roles.mentions]
    mentions = [m for m in mentions if m.target is not None]
    by_link = {id(m.link): m for m in mentions}
    measure = by_link.get(id(roles.measure.link)) if roles.measure else None
    counted = by_link.get(id(roles.counted.link)) if roles.counted else None
    pair = [by_link[id(m.link)] for m in roles.pair if id(m.link) in by_link]
    cmp_conds, cmp_used = _comparisons(reading, mentions, schema)
    value_conds, _taken = _filters(reading, links, schema, base, set())
    for m in mentions:
        flag = _yes_value(reading, schema, m)
        if flag is not None and m.col is not None and not any(c.col == m.col for c in value_conds):
            value_conds.append(Cond(m.col, "=", flag))  # "bills for smokers": smoker = 'Yes'
            cmp_used.add(m.link.i)
    filtered = {c.col for c in [*value_conds, *cmp_conds]}
    mentions = [m for m in mentions if m.link.i not in cmp_used]
    candidates = [m for m in mentions if not (m.col in filtered and not m.grouped and m.axis is None)]

    y: Col | None = None
    aggregate = "count"
    y_mention: _Mention | None = None
    split: Col | None = None
    grounded = False
    implicit = False
    distinct = False
    if len(pair) == 2 and pair[0].col is not None and pair[1].col is not None:
        x, y, aggregate = pair[0].col, pair[1].col, "none"
        y_mention = pair[1]
    else:
        if measure is not None and measure.col is not None:
            y_mention, y = measure, measure.col
            aggregate = "" if measure.aggregate in (None, "count") else str(measure.aggregate)
        x_m = _pick_x(candidates, y_mention, counted, schema, base)
        x_col = _as_axis(schema, base, x_m) if x_m is not None else None
        per_row = x_m is not None and x_m.target is not None and x_m.target.kind == "table"
        per_row = (
            per_row
            and x_m is not None
            and x_m.target is not None
            and x_m.target.table in (base, y.table if y is not None else base)
        )
        # "average qty per shipment" averages over shipments: a figure, not one bar per shipment
        asked = x_m is not None and x_m.link.i > 0 and reading.words[x_m.link.i - 1].text in ("which", "what")
        # "which day has the largest bills": the question names its axis
        grounded = x_m is not None and (x_m.grouped or x_m.axis == "x" or asked) and not per_row
        time = _time_axis(reading, schema, base, candidates, y)
        if time is not None and time != x_col:
            if x_col is not None and x_m is not None and x_m.grouped:
                split = x_col  # "life expectancy over time by continent": continents are the lines
            x_col, grounded = time, True
        if x_col is None and y is not None and reading.top is not None and not reading.chart_named:
            # "the 10 largest bills": the rows themselves, largest first, not groups
            table = schema.tables[y.table]
            view = View("table", y.table, Col(y.table, _label(table) or y.name), y, "none")
            view.filters = [*value_conds, *cmp_conds]
            view.order, view.limit, view.grounded = ("y", reading.top[1]), reading.top[0], True
            return view
        if x_col is None:
            # "for male and female students": the values named are the groups
            multi = next((c for c in value_conds if c.op == "in"), None)
            if multi is None:
                return None
            x_col = multi.col
        x = x_col
        grounded = grounded or (x_m is None)
        if y is not None and not aggregate:
            info = schema.column(y.table, y.name)
            raw = _unique(schema, x) or reading.chart == "scatter"
            aggregate = "none" if raw else _default_aggregate(info)
            implicit = not raw
        if y is None and counted is not None and counted.col is not None and counted.col != x:
            counted_info = schema.column(counted.col.table, counted.col.name)
            if counted_info.kind != "identifier" and counted.col.table == base:
                y = counted.col  # COUNT(column) counts its non-empty values
                # "number of countries per continent" where a country has a row a year: distinct
                named = counted.target is not None and counted.target.rule != "partial"
                distinct = named and counted_info.kind in ("text", "dimension") and not _unique(schema, y)
    if y is not None and y.table != base and aggregate != "none":
        base = y.table  # keep the figure in its own table: the many side is the base
    elif y is None and aggregate == "count":
        base = _counting_base(schema, base, x)
    group = split or _pick_group(reading, candidates, x, y_mention, schema)
    x_info = schema.column(x.table, x.name)
    chart = reading.chart or _chart_for(reading, x_info, aggregate)
    view = View(chart, base, x, y, aggregate, group, filters=[*value_conds, *cmp_conds])
    named = roles.measure is not None or roles.counted is not None or roles.rows_counted
    # "top 5 countries by population": a ranking places its axis as surely as a grouping does
    view.grounded = ((grounded or reading.top is not None) and named) or len(pair) == 2
    view.implicit, view.distinct = implicit, distinct
    if chart == "pie":
        view.group = None  # a pie has one series
    elif view.group is None and (
        chart in ("line", "area") or x_info.kind == "temporal" or is_year_column(x_info)
    ):
        # "population of China and India over the years": the values named are the lines
        named_values = next((c for c in view.filters if c.op == "in" and c.col != x), None)
        if named_values is not None:
            view.group = named_values.col
    dated = schema.tables[base].temporal
    span: tuple[date, date] | None = None
    if dated is not None:
        periods = _periods(reading, dated)
        if len(periods) > 1:
            return None  # "Q1 vs Q2" compares periods: the dashboard's comparison answers it
        if periods:
            p = periods[0]
            time_col = Col(base, dated.name)
            view.filters += [
                Cond(time_col, ">=", p.start.isoformat()),
                Cond(time_col, "<", p.end.isoformat()),
            ]
            span = (p.start, p.end)
    if x_info.kind == "temporal" and aggregate != "none":
        view.grain = _grain(reading, x_info, max_points, span)
    view.order, view.limit = _order(reading, in_order, view, lexicon, base)
    question = {w.text for w in reading.words[:3]} & {"which", "what", "who"}
    if (
        measure is not None
        and measure.superlative
        and question
        and _unique(schema, x)
        and reading.order is None
    ):
        # "which car has the best mpg": the rows ranked by the figure, the answer first
        view.aggregate, view.order, view.limit = "none", ("y", measure.superlative), 10
        view.implicit, view.grounded = False, True
    elif (
        measure is not None
        and measure.superlative
        and question
        and view.y is not None
        and reading.order is None
        and _default_aggregate(schema.column(view.y.table, view.y.name)) == "sum"
    ):
        # "which region has the highest profit": regions ranked by their total, not their largest row
        view.aggregate, view.order, view.implicit = "sum", ("y", measure.superlative), False
    if chart == "pie" and aggregate not in ("sum", "count", "none"):
        view.notes.append(f"The slices show {aggregate} values per group, not parts of one whole.")
    return view


_YES = frozenset({"yes", "y", "true", "t", "1"})


def _yes_value(reading: Reading, schema: Schema, m: _Mention) -> object | None:
    """The yes-value of a yes/no column named as a plural after "for"/"of"/"among" ("for
    smokers"), which keeps those rows; after "by" the same word groups ("by smoker")."""
    info = _column(schema, m.target)
    words = m.link.text.split()
    if info is None or m.grouped or m.axis or info.kind != "dimension" or len(info.values) != 2:
        return None
    if m.link.i == 0 or not words or words[-1] == singular(words[-1]):
        return None
    after = {w.text for w in reading.words[m.link.j : m.link.j + 2]}
    if after & {"vs", "versus", "and", "or", "against", "compared"}:
        return None  # "smokers vs non-smokers" compares both values
    yes = [v for v in info.values if str(v).strip().lower() in _YES]
    return yes[0] if len(yes) == 1 else None


def _counting_base(schema: Schema, counted: str, x: Col) -> str:
    """Rows to count for "how many students per allergy type": the table that links them.

    Counting students through ``Has_allergy`` to ``Allergy_type`` counts the links; the link table is
    the one that holds both keys, so it is the base (a student missing from ``Student`` still has
    their allergy counted, as the data records it).
    """
    if x.table == counted:
        return counted
    path = schema.join_path(counted, x.table)
    if not path:
        return counted
    last = path[-1]
    if last.table == x.table and last.ref_table != x.table:
        return x.table  # x's own table points at the counted rows: count its rows
    return last.table


def _pick_x(
    mentions: list[_Mention], y: _Mention | None, counted: _Mention | None, schema: Schema, base: str
) -> _Mention | None:
    others = [m for m in mentions if m is not y]
    named = next((m for m in others if m.axis == "x"), None)
    if named is not None:
        return named

    def per_row(m: _Mention) -> bool:
        """ "of each county" where counties are the rows: one bar a row, not an axis column."""
        return m.target is not None and m.target.kind == "table" and m.target.table == base

    grouped = [m for m in others if m.grouped and not m.scope]
    columns_grouped = [m for m in grouped if m.target is not None and m.target.column]
    if columns_grouped:
        return columns_grouped[0]
    tables_grouped = [m for m in grouped if not per_row(m)]
    plain = [
        m
        for m in others
        if m.target is not None
        and m.target.column
        and m is not counted
        and not m.scope
        and not m.grouped
        and not _dated_by_verb(schema, m)
    ]
    if tables_grouped and not plain:
        return tables_grouped[0]
    if plain:
        return plain[0]
    if counted is not None and counted.target is not None and counted.target.column:
        return counted  # "the number of each description": counted by itself
    if tables_grouped:
        return tables_grouped[0]
    rows = [m for m in others if (m.grouped or m.scope) and per_row(m) and schema.tables[base].label]
    if rows:
        return rows[0]
    tables = [
        m for m in others if m.target is not None and m.target.kind == "table" and m.target.table != base
    ]
    if tables:
        return tables[0]
    # "which car has the best mpg": the base's own rows, by their label
    own = [m for m in others if per_row(m) and schema.tables[base].label and m is not counted]
    return own[0] if own else None


def _dated_by_verb(schema: Schema, m: _Mention) -> bool:
    """ "quantity shipped" names ``shippedAt`` by its verb: a date column is an axis only when a date
    word, its own name, a grouping or "over time" puts it there."""
    info = _column(schema, m.target)
    if info is None or info.kind != "temporal" or m.target is None or m.target.rule == "exact":
        return False
    return not set(m.link.text.split()) & {"date", "dates", "time", "day", "days", "month", "year", "when"}


def _pick_group(
    reading: Reading, mentions: list[_Mention], x: Col, y: _Mention | None, schema: Schema
) -> Col | None:
    """A colour split: asked for ("stacked", "colored by"), or a second grouping ("for each title and
    each type"), or a grouping beside the axis of a line or scatter chart."""
    grouped = [m for m in mentions if m.grouped and m.col is not None and m.col != x and m is not y]
    if reading.chart == "pie" or (not grouped and not reading.stacked):
        return None  # a pie has one series
    x_grouped = any(m.grouped and m.col == x for m in mentions)
    if not reading.stacked and reading.chart not in ("line", "scatter") and not x_grouped:
        return None  # a bar chart splits only on a second grouping word ("each title and each type")
    for m in grouped or mentions:
        if m is y or m.col is None or m.col == x:
            continue
        if schema.column(m.col.table, m.col.name).kind in ("dimension", "text", "identifier"):
            return m.col
    return None


def _chart_for(reading: Reading, x: ColumnInfo, aggregate: str) -> str:
    """The chart a message implies when it names none."""
    if x.kind == "temporal" or is_year_column(x) or reading.of("time"):
        return "line"
    if reading.of("share") and aggregate in ("sum", "count"):
        return "pie"
    if reading.of("relation") and aggregate == "none" and x.numeric:
        return "scatter"
    return "bar"


def _time_axis(
    reading: Reading, schema: Schema, base: str, mentions: list[_Mention], y: Col | None
) -> Col | None:
    """ "over time", "by year", "yearly": the date (or integer year) column the figure is dated by."""
    if not (reading.of("time") or reading.of("grain")):
        return None
    for m in mentions:
        info = _column(schema, m.target)
        if (
            m.col is not None
            and m.col != y
            and info is not None
            and (info.kind == "temporal" or is_year_column(info))
        ):
            return m.col
    table = schema.tables[y.table if y is not None else base]
    if table.temporal is not None:
        return Col(table.name, table.temporal.name)
    yearly = next((c for c in table.columns.values() if is_year_column(c)), None)
    return Col(table.name, yearly.name) if yearly is not None else None


def _span_of(info: ColumnInfo) -> tuple[date, date] | None:
    if not info.min_value or not info.max_value:
        return None
    try:
        return date.fromisoformat(info.min_value[:10]), date.fromisoformat(info.max_value[:10])
    except ValueError:
        return None


def _periods(reading: Reading, info: ColumnInfo) -> list[Period]:
    """ "in Q4 2025", "last month": periods on the data's own calendar (a plain year on a table with
    an integer year column is that column's value instead, see :mod:`~streamforge.offline.link`)."""
    span = _span_of(info)
    refs = find_periods(reading.message.lower())
    if span is None or not refs:
        return []
    return resolve(refs, span[0], span[1])


def _grain(
    reading: Reading, info: ColumnInfo, max_points: int, span: tuple[date, date] | None = None
) -> str | None:
    """The bucket a date axis is drawn in: the one asked for, or none while the dates themselves fit,
    else the finest calendar unit that fits the chart."""
    asked = [c.value for c in reading.of("grain")]
    if asked:
        return asked[0]
    distinct = info.distinct or 0
    if span is None and distinct and distinct <= max_points and info.distinct is not None and distinct < 100:
        return None
    span = span or _span_of(info)
    if span is None:
        return "month"
    first, last = span
    days = (last - first).days + 1
    for grain, size in (("day", 1), ("week", 7), ("month", 30.4), ("quarter", 91.3), ("year", 365.25)):
        if days / size <= max_points:
            return grain
    return "year"


def _order(
    reading: Reading, in_order: list[Link], view: View, lexicon: Lexicon, base: str
) -> tuple[tuple[str, str] | None, int | None]:
    if reading.top is not None:
        n, direction = reading.top
        return ("y", direction), n
    order = reading.order
    if order is None:
        if (
            not reading.chart_named
            and view.chart == "bar"
            and view.aggregate != "none"
            and view.group is None
        ):
            return ("y", "desc"), None  # an open question ranks its groups, as the dashboard always did
        return None, None
    target = order.target
    if target is None:
        for lk in in_order:
            cols = {(t.table, t.column) for t in lk.targets if t.column}
            if (view.x.table, view.x.name) in cols:
                target = "x"
                break
            if view.y is not None and (view.y.table, view.y.name) in cols:
                target = "y"
                break
            if view.aggregate == "count" and any(t.kind == "table" for t in lk.targets):
                target = "y"
                break
    return (target or order.default, order.direction), None
