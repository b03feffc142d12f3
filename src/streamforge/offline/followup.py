"""Follow-ups: change what is on screen ("make it a bar chart", "only Europe") instead of starting over.

Three steps, each a small rule that holds for any schema:

1. :func:`read` decides whether a message refines the dashboard or asks something new, and what it
   changes (:class:`Change`). A message is a follow-up when it has a refinement cue ("it", "instead",
   "same", "add", "remove", "without", "split by", "sort", "switch to", "like the last one"), or when
   it names no figure of its own ("only Europe", "by channel", "2024", "weekly", "as a table", "top
   10"): a bare filter or grouping only makes sense applied to something. A message that names a
   figure without such a cue ("revenue by region") is a fresh question, answered as before.
2. :func:`answer` picks the target: a component named by type or content ("the table", "the pie",
   "the revenue chart"), all of them ("everything", "both"), or by default the most recently changed
   component the change applies to (a chart-type change skips a card, a top-N skips a time axis).
3. The target's provenance becomes a :class:`~streamforge.offline.spec.Spec`, the change is applied
   to it, and it is rendered through the planner's usual path: real SQL, real numbers, the same
   titles and limits as a fresh answer. The result keeps the target's id (a replacement), has no id
   (a new component: "like the last one but for 2024", "also as a table"), or is a
   ``{"type": "remove", "id": ...}`` item.

Design choice: the words come from the same lexicon, matcher, period and intent readers as a fresh
question, so "Europe", "Q4" or "weekly" mean the same in both. What cannot be understood (no change
found, no target it applies to) returns ``None`` and the planner answers the message as a fresh
question: a follow-up is never an error. Everything here is in-memory except the final queries, so a
follow-up costs about what the same question asked afresh costs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from streamforge.components import Limits
from streamforge.data.schema import Schema
from streamforge.offline import spec as specs
from streamforge.offline.entities import (
    COMPARATOR,
    Col,
    Cond,
    Metric,
    aggregate_for,
    comparisons,
    default_measure,
    default_metric,
    humanize,
    in_group_role,
    keep_mention,
    mention_kind,
    resolve_column,
    time_of,
)
from streamforge.offline.intent import detect
from streamforge.offline.lexicon import AGGREGATE_WORDS, CHART_WORDS, GENERIC_CHART_WORDS, TABLE_WORDS, tokens
from streamforge.offline.match import Mention, Target, Vocabulary, find_mentions
from streamforge.offline.periods import PeriodRef, find_periods, previous, resolve
from streamforge.offline.spec import Spec

__all__ = ["Change", "answer", "read"]

Run = Callable[[str], Awaitable[Any]]

# A refinement cue that makes a message a follow-up even when it names a figure ("orders instead").
_STRONG = re.compile(
    r"\b(?:make|turn|show|put|display|render|draw|plot|chart|graph|sort|split|break|filter|limit|change|"
    r"switch|convert|keep|see|give me|do|view|have)\s+(?:it|them|that|this|those|these)\b"
    r"|\b(?:it|them|that|this|those|these)\s+(?:as|by|into|in|for|to|per|with|without|but|instead|only|"
    r"again|too)\b"
    r"|^\s*(?:it|that|this|them)\b"
    r"|\b(?:instead|rather|same|again|also|too|as well)\b"
    r"|\b(?:like|similar to) (?:the )?(?:last|previous|other|first|that) one\b"
    r"|\b(?:what|how) about\b"
    r"|\b(?:add|include|remove|drop|hide|delete|exclude|excluding|except|without|minus|get rid of)\b"
    r"|\b(?:break|broken|split|splitting|segment|segmented|stack|stacked)\b"
    r"|\b(?:sort|sorted|ascending|descending)\b"
    r"|\b(?:switch|change|convert|turn) (?:to|into|it|that|this|them)\b"
)
# "the table", "that chart", "the revenue chart", "the pie", "the last one": which component is meant.
_TARGET = re.compile(
    r"\b(?:the|that|this|those|these|both)\s+(?:(?P<adj>(?!(?:a|an|as|to|into|in|and|or)\b)[a-z]+)\s+)?"
    r"(?:(?P<adj2>(?!(?:a|an|as|to|into|in|and|or)\b)[a-z]+)\s+)?"
    r"(?P<noun>charts?|graphs?|plots?|tables?|cards?|kpis?|numbers?|figures?|pies?|trends?|lines?|bars?|"
    r"visuals?|visualisations?|visualizations?|ones?|components?|widgets?)\b(?!\s+of\b)"
)
_ALL = re.compile(
    r"\b(?:all of them|all of it|everything|every one|both(?: of them)?|the whole (?:dashboard|page)|"
    r"all (?:the )?(?:charts|components|tables|cards|graphs|widgets|numbers|visuals)|"
    r"every (?:chart|component|table|card|graph)|(?:to|for|on) all$)"
)
_NEW = re.compile(
    r"\b(?:like|similar to) (?:the )?(?:last|previous|other|first|that) one\b"
    r"|\banother (?:one|chart|table|card)\b|\badd (?:a|an|another)\b"
)
_ALSO = re.compile(r"\b(?:also|too|as well|additionally|next to it|alongside|beside it)\b")
_REMOVE = re.compile(r"\b(?:remove|drop|hide|delete|close|discard|get rid of|take away|take out|lose)\b")
_CLEAR_FILTERS = re.compile(
    r"\b(?:no|without(?: the| any)?|remove(?: the| all)?|drop(?: the| all)?|clear(?: the| all)?|"
    r"reset(?: the)?)\s+filters?\b|\bunfiltered\b|\ball (?:the )?data\b"
)
_CLEAR_PERIOD = re.compile(
    r"\b(?:all time|all dates|any time|(?:the )?whole (?:period|range|time|history)|"
    r"full (?:period|range|history)|"
    r"(?:no|without(?: the)?|remove(?: the)?|drop(?: the)?|clear(?: the)?) (?:date|time|period)"
    r"(?: filter| range)?)\b"
)
_CLEAR_GROUP = re.compile(
    r"\b(?:no|without(?: the)?|remove(?: the)?|drop(?: the)?|clear(?: the)?) (?:split|splits|grouping|"
    r"breakdown|series|groups)\b|\b(?:not split|unsplit|combined|all together|altogether)\b"
)
_SPLIT = re.compile(r"\b(?:break|broken|split|splitting|segment|segmented|stack|stacked|divide|divided)\b")
_SHIFT = re.compile(
    r"\b(?:the (?:year|quarter|month|week|period) before|"
    r"(?:a|one) (?:year|quarter|month|week) (?:earlier|before)|"
    r"(?:previous|prior|preceding) period|period before)\b"
)
_OVER_TIME = re.compile(r"\b(?:over time|as a trend|a trend|trend line|timeline|time series)\b")
_CARD = re.compile(
    r"\b(?:as|into|to|in)\s+(?:a |an |one |the )?(?:single |big )?(?:card|kpi|number|figure|metric)\b"
    r"|\bjust the (?:number|total|figure)\b|\b(?:a |the )?(?:kpi|card)\b"
)
_ASC = re.compile(
    r"\b(?:ascending|asc|smallest first|lowest first|least first|low to high|increasing|worst first|"
    r"from (?:the )?(?:lowest|smallest))\b"
)
_DESC = re.compile(
    r"\b(?:descending|desc|largest first|biggest first|highest first|most first|high to low|decreasing|"
    r"best first|from (?:the )?(?:highest|largest|biggest))\b"
)
_BY_KEY = re.compile(r"\b(?:alphabetical(?:ly)?|a to z|chronological(?:ly)?|in (?:date|time) order)\b")
_AGG_CHANGE = re.compile(
    r"\b(?:average|averages|avg|mean|maximum|max|minimum|min|sum|sums|totals?|counts?)\b"
)
_NEGATION = frozenset("without except excluding exclude not no minus remove drop hide than".split())
_WIDEN = frozenset("also add plus and including include".split())
_ADD_METRIC = re.compile(r"\b(?:add|also|plus|include|including|with|alongside|as well|too)\b")
_FILLER = frozenset("the a an of its their".split())
_CHART_CONTEXT = frozenset("a an as to into it make now use in with them this that".split())
_NOUN_KIND = {
    "table": "TableA",
    "card": "SimpleComponent",
    "kpi": "SimpleComponent",
    "number": "SimpleComponent",
    "figure": "SimpleComponent",
    "chart": "ChartComponent",
    "graph": "ChartComponent",
    "plot": "ChartComponent",
    "visual": "ChartComponent",
    "visualisation": "ChartComponent",
    "visualization": "ChartComponent",
    "trend": "ChartComponent",
}


@dataclass
class Change:
    """What a follow-up changes, before it is resolved against a target's table."""

    shape: str | None = None  # a chart type, "chart" (any), "table" or "card"
    new: bool = False  # add a component rather than change one
    remove: bool = False  # take the target(s) away
    include: list[list[Target]] = field(default_factory=list)  # values to keep ("only Europe")
    exclude: list[list[Target]] = field(default_factory=list)  # values to leave out ("without Europe")
    widen: bool = False  # add the values to an existing filter ("and APAC too")
    clear_columns: list[list[Target]] = field(default_factory=list)  # "all regions"
    clear_filters: bool = False
    compare_text: str = ""  # the message, when it holds a numeric comparison ("over 100")
    periods: list[PeriodRef] = field(default_factory=list)
    shift: bool = False  # the period before the current one
    clear_period: bool = False
    group: list[Target] | None = None  # "by channel"
    split: bool = False  # "split by": a second grouping rather than another first one
    instead: bool = False
    clear_group: bool = False
    grain: str | None = None
    over_time: bool = False
    metric: Mention | None = None  # "orders instead", "add the number of orders"
    metric_aggregate: str | None = None
    add_metric: bool = False
    aggregate: str | None = None  # "average instead"
    top_n: int | None = None
    descending: bool = True
    order: str | None = None  # x | value_desc | value_asc
    scope_all: bool = False
    target_kind: str | None = None  # a component type named ("the table")
    target_chart: str | None = None  # a chart type named ("the pie")
    target_over_time: bool = False  # "the trend"
    target_words: list[Mention] = field(default_factory=list)  # content naming the target ("revenue chart")
    measures: list[Mention] = field(default_factory=list)

    def edits(self) -> bool:
        """Whether anything would change (removal aside)."""
        return bool(
            self.shape
            or self.include
            or self.exclude
            or self.clear_columns
            or self.clear_filters
            or self.compare_text
            or self.periods
            or self.shift
            or self.clear_period
            or self.group
            or self.clear_group
            or self.grain
            or self.over_time
            or self.metric
            or self.aggregate
            or self.top_n
            or self.order
        )


class _Text:
    """The lower-cased message with the spans already read blanked out, so no phrase is read twice."""

    def __init__(self, message: str) -> None:
        # The same normalisation as lexicon.tokens, so token offsets index this text.
        self.raw = message.lower().replace("’", "'").replace("'s ", " ")
        self.text = self.raw
        self.spans: list[tuple[int, int]] = []

    def take(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        found = list(pattern.finditer(self.text))
        for m in found:
            self.blank(m.start(), m.end())
        return found

    def blank(self, start: int, end: int) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]
        self.spans.append((start, end))

    def taken(self, offset: int) -> bool:
        return any(s <= offset < e for s, e in self.spans)


def _targets_of(mention: Mention, named_columns: set[tuple[str, str | None]]) -> list[Target]:
    """Value candidates keep only strong values, or weak ones whose column is named too (as in understand)."""
    values = [
        t
        for t in mention.targets
        if t.kind == "value" and (not t.weak or (t.table, t.column) in named_columns)
    ]
    return [t for t in mention.targets if t.kind != "value"] + values


def read(message: str, schema: Schema, vocab: Vocabulary) -> Change | None:
    """What ``message`` changes on screen, or None when it is a fresh question."""
    text = _Text(message)
    change = Change()
    strong = bool(_STRONG.search(text.raw))
    info = detect(" ".join(text.raw.split()))

    refs = find_periods(text.raw)
    for ref in refs:
        at = text.text.find(ref.text)
        if at >= 0:
            text.blank(at, at + len(ref.text))
    change.periods = refs
    change.new = bool(_NEW.search(text.raw)) and not _REMOVE.search(text.raw)
    change.scope_all = bool(text.take(_ALL))
    change.clear_filters = bool(text.take(_CLEAR_FILTERS))
    change.clear_period = bool(text.take(_CLEAR_PERIOD))
    change.clear_group = bool(text.take(_CLEAR_GROUP))
    change.shift = bool(text.take(_SHIFT))
    target_spans: list[tuple[int, int]] = []
    for hit in text.take(_TARGET):
        target_spans.append((hit.start(), hit.end()))
        noun = hit.group("noun").rstrip("s") if hit.group("noun") != "visuals" else "visual"
        adjectives = [a for a in (hit.group("adj"), hit.group("adj2")) if a]
        if noun in ("pie", "line", "bar"):
            change.target_kind, change.target_chart = "ChartComponent", CHART_WORDS[noun]
        elif noun in _NOUN_KIND:
            change.target_kind = _NOUN_KIND[noun]
            change.target_over_time = noun == "trend"
        for adj in adjectives:
            if adj in CHART_WORDS:
                change.target_kind, change.target_chart = "ChartComponent", CHART_WORDS[adj]
    change.remove = bool(_REMOVE.search(text.text)) and (
        bool(target_spans) or change.scope_all or bool(re.search(r"\b(?:it|that|this|them)\b", text.text))
    )
    if text.take(_CARD):
        change.shape = "card"
    if text.take(_OVER_TIME):
        change.over_time = True
    change.order = "value_asc" if text.take(_ASC) else "value_desc" if text.take(_DESC) else None
    if text.take(_BY_KEY):
        change.order = "x"
    if change.order is None and re.search(r"\bsort(?:ed)?\b", text.text):
        change.order = "value_desc"
    change.instead = bool(re.search(r"\b(?:instead|rather)\b", text.raw))
    change.split = bool(_SPLIT.search(text.raw))

    toks = tokens(message)
    words = [t.norm for t in toks]
    for i, tok in enumerate(toks):
        if text.taken(tok.start):
            continue
        if tok.norm in CHART_WORDS and change.shape is None:
            next_word = words[i + 1] if i + 1 < len(words) else ""
            prev_word = words[i - 1] if i else "a"
            if (
                tok.norm in ("pie", "donut", "doughnut", "scatter")
                or next_word in GENERIC_CHART_WORDS
                or prev_word in _CHART_CONTEXT
            ):
                change.shape = CHART_WORDS[tok.norm]
        elif tok.text in TABLE_WORDS or tok.norm in TABLE_WORDS:
            change.shape = change.shape or "table"
    if change.shape is None and any(
        (t.text in GENERIC_CHART_WORDS or t.norm in GENERIC_CHART_WORDS) and not text.taken(t.start)
        for t in toks
    ):
        change.shape = "chart"

    info = detect(" ".join(text.text.split()))  # again, without the phrases read above ("the last one")
    change.grain = info.grain
    if info.top_n is not None:
        change.top_n, change.descending = info.top_n, info.descending is not False

    mentions = [m for m in find_mentions(toks, vocab) if keep_mention(m, toks)]
    named = {(t.table, t.column) for m in mentions for t in m.targets if t.kind == "column"}
    figure_named = False
    removal_word = _REMOVE.search(text.raw)
    for m in mentions:
        offset = toks[m.start].start
        m.targets = _targets_of(m, named)
        if not m.targets:
            continue
        if any(s <= offset < e for s, e in target_spans):
            change.target_words.append(m)
            continue
        if text.taken(offset):
            continue
        kind = "value" if m.targets[0].kind == "value" else mention_kind(schema, m)
        before = [t.norm for t in toks[max(0, m.start - 3) : m.start]]
        if kind == "value":
            if _NEGATION & set(before) or (
                removal_word and removal_word.start() < offset and not change.remove
            ):
                change.exclude.append(m.targets)
            else:
                change.include.append(m.targets)
                widen = bool(_WIDEN & set(before)) or bool(re.search(r"\b(?:too|as well)\b", text.raw))
                change.widen = (change.widen or widen) and not re.search(r"\b(?:only|just)\b", text.raw)
        elif in_group_role(toks, m, mentions) or (
            kind == "dimension" and change.instead and not (set(before) & {"all", "every", "any"})
        ):
            if kind == "temporal":
                change.over_time = True
            else:
                change.group = m.targets
        elif kind == "dimension" and set(before) & {"all", "every", "any"}:
            change.clear_columns.append(m.targets)
        elif kind in ("measure", "table"):
            figure_named = True
            change.measures.append(m)
            if change.metric is None:
                change.metric = m
                agg_words = [AGGREGATE_WORDS[w] for w in before if w in AGGREGATE_WORDS]
                if re.search(r"\b(?:number|count) of\s*$", text.raw[:offset]):
                    agg_words.append("count")
                change.metric_aggregate = agg_words[-1] if agg_words else None
                change.add_metric = bool(_ADD_METRIC.search(text.raw[:offset])) or bool(
                    re.search(r"\b(?:too|as well)\b", text.raw[offset:])
                )
            for k in range(max(0, m.start - 3), m.start):
                text.blank(toks[k].start, toks[k].start + len(toks[k].text))  # its aggregate word
    if COMPARATOR.search(text.text):
        change.compare_text = text.text
    agg = _AGG_CHANGE.search(text.text)
    if agg and change.shape != "card" and change.metric is None:
        word = agg.group().rstrip("s") if agg.group() not in ("sums", "counts") else agg.group()[:-1]
        change.aggregate = AGGREGATE_WORDS.get(word, "sum" if word == "total" else None)

    if change.shape is not None and _ALSO.search(text.raw) and not change.include:
        change.new = True  # "also as a table": a second view beside the first
    if info.overview and not strong:
        return None
    if figure_named and not strong:
        return None
    if not change.remove and not change.edits():
        return None
    return change


# ---------------------------------------------------------------- applying a change to one spec


def _relocate(schema: Schema, base: str, col: Col | None) -> Col | None:
    """The same-named column as seen from another table (``region``: orders.region -> users.region)."""
    if col is None:
        return None
    candidates = [Target(t.name, col.name) for t in schema.tables.values() if col.name in t.columns]
    return resolve_column(schema, base, candidates)


def _metric_of(change: Change, schema: Schema, base: str) -> Metric | None:
    mention = change.metric
    if mention is None:
        return None
    top = mention.targets[0]
    aggregate = change.metric_aggregate
    if top.kind == "table":
        table = schema.tables[top.table]
        measure = default_measure(table) if aggregate in ("sum", "avg", "min", "max") else None
        if measure is not None and aggregate is not None:
            return Metric(table.name, measure.name, aggregate, label=humanize(measure.name))
        return Metric(table.name, None, "count", label=humanize(table.name))
    col = resolve_column(schema, base, mention.targets) or Col(top.table, top.column or "")
    info = schema.column(col.table, col.name)
    if aggregate == "count":
        return Metric(col.table, None, "count", label=humanize(col.table))
    return Metric(col.table, col.name, aggregate or aggregate_for(info), label=humanize(col.name))


def _rebase(s: Spec, metric: Metric, schema: Schema) -> Spec | None:
    """``s`` about another figure; columns move to the new figure's table where they can."""
    if metric.table == s.base:
        s.metrics = [metric, *[m for m in s.metrics[1:] if m != metric]]
        if s.kind == "rows":
            s.kind, s.shape = "figure", "card"
        return s
    base = metric.table
    x = _relocate(schema, base, s.x) if s.x is not None and not s.over_time else None
    if s.x is not None and not s.over_time and x is None:
        return None
    time = time_of(schema, base)
    conds = []
    for c in s.conds:
        col = _relocate(schema, base, c.col)
        if col is not None:
            conds.append(Cond(col, c.op, c.value))
    return replace(
        s,
        kind="figure" if s.kind == "rows" else s.kind,
        shape="card" if s.kind == "rows" else s.shape,
        base=base,
        metrics=[metric],
        x=time if s.over_time else x,
        group=_relocate(schema, base, s.group),
        conds=conds,
        time=time,
        period=s.period if time is not None else None,
        auto_grain=s.auto_grain or s.over_time,
        card_top=False,
    )


def _grouping(change: Change, schema: Schema, base: str) -> Col | None:
    targets = change.group or []
    if not targets:
        return None
    if targets[0].kind == "table":
        table = schema.tables[targets[0].table]
        label = table.label or table.primary_key
        if label and schema.join_path(base, table.name) is not None:
            return Col(table.name, label)
        return None
    return resolve_column(schema, base, targets)


def _value_conds(schema: Schema, base: str, found: list[list[Target]]) -> dict[Col, list[Any]]:
    by_column: dict[Col, list[Any]] = {}
    for targets in found:
        values = [t for t in targets if t.kind == "value"]
        where = resolve_column(schema, base, values)
        if where is None:
            continue
        value = next(t.value for t in values if t.table == where.table and t.column == where.name)
        if value not in by_column.setdefault(where, []):
            by_column[where].append(value)
    return by_column


def _filter(s: Spec, change: Change, schema: Schema) -> None:
    if change.clear_filters:
        s.conds = []
        if not change.periods:
            s.period = None
    for targets in change.clear_columns:
        col = resolve_column(schema, s.base, [t for t in targets if t.kind == "column"])
        s.conds = [c for c in s.conds if c.col != col]
    for col, values in _value_conds(schema, s.base, change.include).items():
        kept = [c for c in s.conds if c.col == col and c.op in ("=", "in")]
        left_out = [c for c in s.conds if c.col == col and c.op == "!=" and c.value in values]
        if change.widen and not kept and left_out:  # "add APAC" after "without APAC": take it back
            s.conds = [c for c in s.conds if c not in left_out]
            continue
        if change.widen and kept:
            old = kept[0].value if kept[0].op == "in" else [kept[0].value]
            values = [*old, *[v for v in values if v not in old]]
        s.conds = [c for c in s.conds if c.col != col]
        s.conds.append(Cond(col, "in", values) if len(values) > 1 else Cond(col, "=", values[0]))
    for col, values in _value_conds(schema, s.base, change.exclude).items():
        for value in values:
            conds = []
            dropped = False
            for c in s.conds:
                if c.col == col and c.op == "=" and c.value == value:
                    dropped = True
                    continue
                if c.col == col and c.op == "in" and value in c.value:
                    rest = [v for v in c.value if v != value]
                    dropped = True
                    if rest:
                        conds.append(Cond(col, "in", rest) if len(rest) > 1 else Cond(col, "=", rest[0]))
                    continue
                conds.append(c)
            if not dropped:
                conds.append(Cond(col, "!=", value))
            s.conds = conds
    if change.compare_text:
        for cond in comparisons(change.compare_text, schema, s.base, change.measures, s.metrics[0]):
            s.conds = [c for c in s.conds if not (c.col == cond.col and c.op == cond.op)] + [cond]


def _period(s: Spec, change: Change, schema: Schema) -> bool:
    if change.clear_period:
        s.period = None
        s.auto_grain = s.auto_grain or s.over_time
    if change.periods:
        time = s.time or time_of(schema, s.base)
        if time is None or len(change.periods) > 1:
            return False
        info = schema.column(time.table, time.name)
        if not info.min_value or not info.max_value:
            return False
        first, last = date.fromisoformat(info.min_value[:10]), date.fromisoformat(info.max_value[:10])
        s.time = time
        s.period = resolve(change.periods, first, last)[0]
        s.auto_grain = s.auto_grain or (s.over_time and change.grain is None)
    if change.shift:
        if s.period is None:
            return False
        s.period = previous(s.period)
    return True


def _to_time_axis(s: Spec, schema: Schema) -> bool:
    """Figures by ``x`` become figures over time, split by what ``x`` was."""
    if s.over_time:
        return True
    time = s.time or time_of(schema, s.base)
    if time is None or s.kind in ("scatter", "histogram"):
        return False
    if s.kind == "aggregate" and s.x is not None and s.group is None and not s.card_top:
        s.group = s.x
    if s.kind == "rows":
        s.metrics = [default_metric(schema.tables[s.base])]
    s.kind, s.x, s.time, s.limit, s.order, s.card_top = "aggregate", time, time, None, "x", False
    s.grain, s.auto_grain = "month", True
    if s.shape not in ("line", "area", "table"):
        s.shape = "line"
    return True


def _adds_card(change: Change, spec: Spec) -> bool:
    return change.add_metric and spec.kind == "figure"


def apply(change: Change, spec: Spec, schema: Schema) -> Spec | None:
    """``spec`` with ``change`` applied, or None when the change does not fit this component."""
    s = replace(spec, metrics=list(spec.metrics), conds=list(spec.conds), notes=[])
    metric = _metric_of(change, schema, s.base)
    if metric is not None:
        if _adds_card(change, s):
            s = replace(s, metrics=[metric])  # a card shows one figure: the added one is a new card
        elif change.add_metric and not change.new:
            if s.kind != "aggregate" or s.group is not None or s.card_top or s.shape == "card":
                return None
            if metric.table != s.base:
                return None
            if metric not in s.metrics:
                s.metrics.append(metric)
        else:
            rebased = _rebase(s, metric, schema)
            if rebased is None:
                return None
            s = rebased
    elif change.aggregate:
        first = s.metrics[0]
        if s.kind not in ("aggregate", "figure"):
            return None
        if change.aggregate == "count":
            new = Metric(s.base, None, "count", label=humanize(s.base))
        else:
            column = first.column or (m.name if (m := default_measure(schema.tables[s.base])) else None)
            if column is None:
                return None
            new = Metric(s.base, column, change.aggregate, label=humanize(column))
        s.metrics = [new, *s.metrics[1:]]
    _filter(s, change, schema)
    if not _period(s, change, schema):
        return None
    if change.group:
        col = _grouping(change, schema, s.base)
        if col is None or s.kind in ("scatter", "histogram"):
            return None
        if s.kind in ("figure", "rows") or s.card_top:
            if s.kind == "rows":
                s.metrics = [default_metric(schema.tables[s.base])]
            s.kind, s.x, s.group, s.card_top = "aggregate", col, None, False
            if s.shape == "card":
                s.shape = "bar"
        elif s.over_time:
            if change.instead and s.group is None:
                s.x, s.grain, s.auto_grain = col, None, False
                s.shape = "bar" if s.shape in ("line", "area") else s.shape
            else:
                s.group = col
        elif change.split and s.shape != "pie" and col != s.x:
            s.group = col
        else:
            s.x = col
            if s.group == col:
                s.group = None
    if change.clear_group:
        s.group = None
    if change.grain or change.over_time:
        if not _to_time_axis(s, schema):
            return None
        if change.grain:
            s.grain, s.auto_grain = change.grain, False
    if change.top_n:
        if s.kind == "rows":
            s.limit = change.top_n
        elif s.kind == "aggregate" and not s.over_time:
            s.limit, s.order = change.top_n, "value_desc" if change.descending else "value_asc"
        else:
            return None
    if change.order:
        if s.kind == "rows":
            s.recent = change.order != "value_asc" if s.time is not None else None
            s.order = change.order
        elif s.kind == "aggregate":
            s.order = change.order
        else:
            return None
    if change.shape and not _reshape(s, change.shape, schema):
        return None
    return s


def _reshape(s: Spec, shape: str, schema: Schema) -> bool:
    if s.kind in ("scatter", "histogram"):
        return shape in (s.shape, "chart")
    if shape == "card":
        if s.kind == "rows":
            s.metrics = [default_metric(schema.tables[s.base])]
        s.kind, s.shape, s.x, s.group, s.grain, s.limit, s.order, s.card_top = (
            "figure",
            "card",
            None,
            None,
            None,
            None,
            "x",
            False,
        )
        s.metrics = s.metrics[:1]
        return True
    needs_axis = s.kind in ("rows", "figure") and not (s.kind == "rows" and shape == "table")
    if needs_axis and not _to_time_axis(s, schema):
        return False
    if shape == "chart":
        if s.shape in ("table", "card"):
            s.shape = "line" if s.over_time else "bar"
        return True
    if shape == "pie" and s.over_time and s.group is not None:
        s.x, s.group, s.grain, s.auto_grain = s.group, None, None, False
    s.shape = shape
    s.card_top = False
    return True


# ---------------------------------------------------------------- choosing targets and answering


def _matches(change: Change, frame: dict[str, Any], spec: Spec | None) -> bool:
    """Whether ``frame`` is the kind of component the message names ("the table", "the pie")."""
    data = frame.get("data") or {}
    if change.target_kind and frame.get("type") != change.target_kind:
        return False
    if change.target_chart and data.get("chart_type") != change.target_chart:
        return False
    if change.target_over_time and (spec is None or not spec.over_time):
        return False
    if change.target_words:
        source = data.get("source") or {}
        ys = source.get("y")
        names = {
            source.get("x"),
            source.get("group"),
            source.get("table"),
            *(ys if isinstance(ys, list) else [ys]),
        }
        for m in change.target_words:
            if not any(t.column in names or (t.kind == "table" and t.table in names) for t in m.targets):
                return False
    return True


def _conversion(change: Change, spec: Spec) -> int:
    """1 when the change has to turn a card into a chart to apply (a second choice), else 0."""
    reshapes = change.shape not in (None, "card") or change.group or change.grain or change.top_n
    return int(spec.kind == "figure" and bool(reshapes or change.order or change.add_metric))


def _wanted_type(spec: Spec) -> str:
    return {"card": "SimpleComponent", "table": "TableA"}.get(spec.shape, "ChartComponent")


async def _render(
    spec: Spec, schema: Schema, dialect: str, limits: Limits, run: Run
) -> dict[str, Any] | None:
    results = await asyncio.gather(*(piece(run) for piece in specs.pieces(spec, schema, dialect, limits)))
    components = [c for group in results for c in group]
    wanted = _wanted_type(spec)
    return next((c for c in components if c.get("type") == wanted), components[0] if components else None)


async def answer(
    message: str,
    previous: list[dict[str, Any]],
    schema: Schema,
    vocab: Vocabulary,
    dialect: str,
    limits: Limits,
    run: Run,
) -> list[dict[str, Any]] | None:
    """The components a follow-up sends, or None to answer ``message`` as a fresh question."""
    frames = [f for f in previous if isinstance(f, dict) and isinstance(f.get("id"), str)]
    if not frames:
        return None
    change = read(message, schema, vocab)
    if change is None:
        return None
    recent = list(reversed(frames))  # most recently changed first
    named = bool(change.target_kind or change.target_chart or change.target_words or change.target_over_time)
    if change.remove and not change.edits():
        chosen = [f for f in recent if _matches(change, f, specs.from_component(f, schema, dialect))]
        if not chosen:
            return None
        chosen = chosen if change.scope_all else chosen[:1]
        return [{"type": "remove", "id": f["id"]} for f in chosen]

    candidates: list[tuple[dict[str, Any], Spec, Spec]] = []
    for frame in recent:
        before = specs.from_component(frame, schema, dialect)
        if before is None or not _matches(change, frame, before):
            continue
        after = apply(change, before, schema)
        if after is not None:
            candidates.append((frame, before, after))
    if not candidates:
        return None
    if change.scope_all:
        chosen_pairs = candidates
    elif named:
        chosen_pairs = candidates[:1]
    else:
        # The most recent component the change really changes, preferring one it fits as it is:
        # "make it a line chart" after a chart and a card means the chart.
        changed = [c for c in candidates if c[2] != c[1]] or candidates
        chosen_pairs = [min(changed, key=lambda c: _conversion(change, c[1]))]
    rendered = await asyncio.gather(
        *(_render(after, schema, dialect, limits, run) for _, _, after in chosen_pairs)
    )
    out: list[dict[str, Any]] = []
    for (frame, before, _), component in zip(chosen_pairs, rendered, strict=True):
        if component is None:
            continue
        adds = change.new or _adds_card(change, before)
        out.append(component if adds else {**component, "id": frame["id"]})
    return out[: limits.max_components] or None
