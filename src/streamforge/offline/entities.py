"""From a message to a resolved request: which figure, over which table, split how, filtered how.

The steps, each a small rule that holds for any schema:

1. Matches (:mod:`~streamforge.offline.match`) get roles from the words around them: after "by", "per",
   "across" or "each" a match is a grouping; a value ("Europe") is a filter; a numeric column is a
   measure; a table name is what is counted, or, when a measure of another table is named too ("top
   products by revenue"), what the measure is grouped by.
2. The figure (:class:`Metric`) is the first measure named, with the aggregate the message names or
   the one that suits the column (prices and durations are averaged, amounts summed). Without a
   measure, the answer counts rows: of the table named last (English puts the head noun last: "user
   engagement" counts engagement), of the table whose date column was named ("signups" counts users
   by ``signup_date``), or it shows the default figure of the main table.
3. Every other column is resolved relative to the figure's table: ``region`` means ``orders.region``
   when counting orders and ``users.region`` when counting users; a column elsewhere is reached along
   the shortest chain of foreign keys.
4. Periods become filters on the table's date column; words that match nothing are kept, so the answer
   can say what it could not use.

A few roles depend on the sentence's shape rather than on single words: a measure compared with a
number ("salary over 80000") is a filter, not the figure; a whole-number measure after "by" ("reviews
by rating") is a grouping; two figures set against each other ("discount vs revenue") are a
relationship; "the highest order revenue" is one record's figure (MAX), not a ranking; and "the best
category" ranks a lookup table's groups by the dated table that points to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from streamforge.data.schema import ColumnInfo, Schema, TableInfo
from streamforge.offline.intent import IntentInfo, detect
from streamforge.offline.lexicon import (
    AGGREGATE_WORDS,
    CHART_WORDS,
    INTENSIVE_WORDS,
    MONEY_WORDS,
    SYNONYMS,
    Token,
    is_function_word,
    tokens,
)
from streamforge.offline.match import Mention, Target, Vocabulary, find_mentions
from streamforge.offline.periods import Period, find_periods, resolve

__all__ = ["Col", "Cond", "Metric", "Request", "default_metric", "humanize", "main_table", "understand"]

# A rate or ratio of rows: "churn rate", "percentage of active users", "share of cancelled orders".
_RATE = re.compile(
    r"\b(?:rates?|ratios?|percentages?|percent|pct|shares?|fractions?|proportions?)\s+of\b"
    r"|\b(?:what|which)\s+(?:percentage|percent|share|fraction|proportion)\b"
    r"|\b[a-z]+\s+(?:rates?|ratios?)\b|%\s*of\b"
)
_RATE_WORDS = re.compile(
    r"\b(?:what|which)\s+(?:percentage|percent|share|fraction|proportion)\s+of\b"
    r"|\b(?:rates?|ratios?|percentages?|percent|pct|shares?|fractions?|proportions?)\b\s*(?:of\b)?|%\s*(?:of\b)?"
)
_GROUP_WORDS = frozenset({"by", "per", "across", "each", "every"})
_ACTIVE_USERS = re.compile(r"\b(?:active\s+(?:users?|customers?|members?|accounts?|people)|dau|wau|mau)\b")
COMPARATOR = re.compile(
    r"\b(over|above|more than|greater than|at least|exceeding|under|below|less than|at most|fewer than)"
    r"\s+\$?(\d+(?:\.\d+)?)\s*(k|m)?\b|([<>]=?)\s*\$?(\d+(?:\.\d+)?)"
)
_OPS = {
    "over": ">",
    "above": ">",
    "more than": ">",
    "greater than": ">",
    "exceeding": ">",
    "at least": ">=",
    "under": "<",
    "below": "<",
    "less than": "<",
    "fewer than": "<",
    "at most": "<=",
}


@dataclass(frozen=True)
class Col:
    table: str
    name: str


@dataclass(frozen=True)
class Metric:
    table: str
    column: str | None  # None: count rows
    aggregate: str  # sum avg min max count
    distinct: bool = False
    label: str = ""
    # A rate: the percentage of rows whose ``column`` is true (``rate_value`` None) or equals
    # ``rate_value``; computed as 100 * AVG(CASE WHEN ... THEN 1.0 ELSE 0 END), aggregate "avg".
    rate: bool = False
    rate_value: Any = None


@dataclass(frozen=True)
class Cond:
    col: Col
    op: str  # = != < <= > >= in between like
    value: Any


@dataclass
class Request:
    message: str
    info: IntentInfo
    metric: Metric
    metric_named: bool  # the message named the figure (otherwise a default was taken)
    dims: list[Col] = field(default_factory=list)  # groupings, in the order written
    time: Col | None = None  # the date column of the figure's table (or a joined one)
    time_named: bool = False  # a date column or a time grain was asked for
    conds: list[Cond] = field(default_factory=list)
    periods: list[Period] = field(default_factory=list)
    compare_values: list[Cond] = field(default_factory=list)  # "Europe vs APAC"
    second_metric: Metric | None = None  # relationships
    extra_metrics: list[Metric] = field(default_factory=list)  # more series beside ``metric`` (follow-ups)
    entity: str | None = None  # a table named as a thing to list or rank ("products")
    aggregate_named: bool = False  # "total", "average", "how many": the figure, not the rows, is wanted
    notes: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    matched: bool = False  # anything at all was recognised


def main_table(schema: Schema) -> TableInfo:
    """The table most questions are about: the biggest one with a date and a measure (the fact table)."""

    def rank(t: TableInfo) -> tuple[int, int, int]:
        return (
            int(t.temporal is not None and bool(t.of_kind("measure"))),
            int(bool(t.of_kind("measure"))),
            t.row_count,
        )

    return max(schema.tables.values(), key=rank)


def _money(col: ColumnInfo) -> bool:
    return bool(set(col.words) & MONEY_WORDS)


def default_measure(table: TableInfo) -> ColumnInfo | None:
    measures = table.of_kind("measure")
    money = [c for c in measures if _money(c) and not set(c.words) & INTENSIVE_WORDS]
    return money[0] if money else None


def default_metric(table: TableInfo) -> Metric:
    """The figure a table stands for when nobody names one: its money measure summed, or its row count."""
    measure = default_measure(table)
    if measure is not None:
        return Metric(table.name, measure.name, "sum", label=humanize(measure.name))
    return Metric(table.name, None, "count", label=humanize(table.name))


def humanize(name: str) -> str:
    """``duration_seconds`` -> "Duration seconds", for titles and labels."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def aggregate_for(col: ColumnInfo) -> str:
    return "avg" if set(col.words) & INTENSIVE_WORDS else "sum"


def metric_label(metric: Metric) -> str:
    if metric.label:
        return metric.label
    return humanize(metric.column or metric.table)


def _explicit_aggregate(text: str) -> str | None:
    if re.search(r"\b(how many|number of|count of|count|how often)\b", text):
        return "count"
    for word in re.findall(r"[a-z]+", text):
        agg = AGGREGATE_WORDS.get(word)
        if agg and agg != "count":
            return agg
    return None


def in_group_role(toks: list[Token], mention: Mention, mentions: list[Mention]) -> bool:
    k = mention.start - 1
    while k >= 0 and toks[k].text in ("the", "a", "an", "their", "its", "different", "all", "each"):
        if toks[k].text == "each":
            return True
        k -= 1
    if k >= 0 and toks[k].text in _GROUP_WORDS:
        return True
    if k >= 0 and toks[k].text in ("and", "or", "then"):
        before = [m for m in mentions if m.end == k]
        return bool(before) and in_group_role(toks, before[0], mentions)
    return False


def resolve_column(schema: Schema, base: str, candidates: list[Target]) -> Col | None:
    """Of same-named columns, the one in ``base`` or the nearest by foreign keys."""
    best: tuple[int, float, Col] | None = None
    for t in candidates:
        if t.column is None:
            continue
        path = schema.join_path(base, t.table)
        if path is None:
            continue
        key = (len(path), -t.score, Col(t.table, t.column))
        if best is None or key[:2] < best[:2]:
            best = key
    return best[2] if best else None


def _activity_table(schema: Schema, people: str | None) -> tuple[str, str] | None:
    """The events table for "active users": dated rows that point to the people table."""
    session_words = {"session", *SYNONYMS.get("session", ())}
    found: list[tuple[int, str, str]] = []
    for fk in schema.foreign_keys:
        if people is not None and fk.ref_table != people:
            continue
        table = schema.tables[fk.table]
        if table.temporal is None:
            continue
        score = 2 if set(table.words) & session_words else 0
        score += 1 if not table.of_kind("measure") or not default_measure(table) else 0
        found.append((score, fk.table, fk.column))
    if not found:
        return None
    found.sort(key=lambda f: -f[0])
    return found[0][1], found[0][2]


def _people_table(schema: Schema) -> str | None:
    people_words = {"user", *SYNONYMS.get("user", ())}
    for table in schema.tables.values():
        if set(table.words) & people_words:
            return table.name
    return None


def mention_kind(schema: Schema, mention: Mention) -> str:
    top = mention.targets[0]
    if top.kind != "column":
        return top.kind
    return schema.column(top.table, top.column or "").kind


def understand(message: str, schema: Schema, vocab: Vocabulary) -> Request:
    """Resolve ``message`` against ``schema``; never raises for odd wording."""
    text = " ".join(message.lower().split())
    info = detect(text)
    toks = tokens(message)
    mentions = [m for m in find_mentions(toks, vocab) if keep_mention(m, toks)]
    named_columns = {(t.table, t.column) for m in mentions for t in m.targets if t.kind == "column"}

    values: list[Mention] = []
    measures: list[Mention] = []
    operands: list[Mention] = []  # measures only compared with a number: "salary over 80000"
    dims: list[tuple[Mention, bool]] = []
    tables: list[tuple[Mention, bool]] = []
    temporals: list[Mention] = []
    for m in mentions:
        value_targets = [
            t for t in m.targets if t.kind == "value" and (not t.weak or (t.table, t.column) in named_columns)
        ]
        m.targets = [t for t in m.targets if t.kind != "value"] + value_targets
        if not m.targets:
            continue
        group = in_group_role(toks, m, mentions)
        kind = mention_kind(schema, m) if m.targets[0].kind != "value" else "value"
        if kind == "value":
            values.append(m)
        elif kind == "table":
            tables.append((m, group))
        elif kind == "measure" and _compared(toks, m):
            operands.append(m)
        elif kind == "measure" and group and info.intent != "ranking" and _groupable(schema, m):
            dims.append((m, group))
        elif kind == "measure":
            measures.append(m)
        elif kind == "temporal":
            temporals.append(m)
        else:
            dims.append((m, group))

    notes = [f"Read “{m.text}” as {_describe(m.targets[0])}." for m in mentions if m.fuzzy and m.targets]
    rate_cue = bool(_RATE.search(text)) and not measures and info.intent != "relationship"
    aggregate = _explicit_aggregate(text)
    metric: Metric | None = None
    metric_named = True
    from_measure = False
    second: Metric | None = None
    time_col: Col | None = None
    time_named = info.grain is not None
    entity: str | None = None

    if _ACTIVE_USERS.search(text) and (
        info.intent == "trend" or info.grain or "dau" in text or "mau" in text
    ):
        activity = _activity_table(schema, _people_table(schema))
        if activity:
            metric = Metric(activity[0], activity[1], "count", distinct=True, label="Active users")
            tables = [(m, g) for m, g in tables if m.targets[0].table == activity[0]]
            dims = [(m, g) for m, g in dims if m.targets[0].column not in ("is_active", activity[1])]

    if metric is None and measures:
        first = measures[0]
        from_measure = True
        col = schema.column(first.targets[0].table, first.targets[0].column or "")
        if aggregate == "count":
            metric = Metric(col.table, None, "count", label=humanize(col.table))
        else:
            metric = Metric(col.table, col.name, aggregate or aggregate_for(col), label=humanize(col.name))
        others = [m for m in measures[1:] if m.targets[0].column != col.name]
        if others:
            o = schema.column(others[0].targets[0].table, others[0].targets[0].column or "")
            second = Metric(o.table, o.name, aggregate_for(o), label=humanize(o.name))
    if metric is None and temporals and not tables:
        t = temporals[0].targets[0]
        metric = Metric(t.table, None, "count", label=humanize(t.table))
        time_col = Col(t.table, t.column or "")
        time_named = True
    ranked_by_table = False
    grouped_base = False  # the counted table was only named as a grouping ("by department")
    if metric is None and tables:
        counted = [m for m, group in tables if not group] or [m for m, _ in tables]
        after_by = [m for m, group in tables if group]
        if info.intent == "ranking" and after_by and len(after_by) < len(tables):
            # "top departments by headcount": ranked by how many employees, grouped by department.
            counted = after_by
        ranked_by_table = info.intent == "ranking" and len({m.targets[0].table for m, _ in tables}) > 1
        dim_tables = {t.table for m, _ in dims for t in m.targets}
        direct = [m for m in counted if m.targets[0].table in dim_tables]
        chosen = (direct or counted)[-1]
        grouped_base = any(m is chosen and g for m, g in tables)
        table = schema.tables[chosen.targets[0].table]
        measure = default_measure(table) if aggregate in ("sum", "avg", "min", "max") else None
        if measure is not None and aggregate is not None:
            metric = Metric(table.name, measure.name, aggregate, label=humanize(measure.name))
        else:
            metric = Metric(table.name, None, "count", label=humanize(table.name))
        entity = table.name
    if metric is None and dims and info.intent == "ranking":
        metric = _fact_metric(schema, dims[0][0])
        metric_named = metric is None
    if metric is None and values and not dims:
        owners = [schema.tables[t.table] for t in values[0].targets if t.kind == "value"]
        metric = default_metric(max(owners, key=lambda t: t.row_count)) if owners else None
        entity = metric.table if metric else None
        metric_named = False
    if metric is None and operands:
        metric = default_metric(schema.tables[operands[0].targets[0].table])
        entity = metric.table
        metric_named = False
    if metric is None and dims:
        owners = [schema.tables[t.table] for t in dims[0][0].targets if t.column]
        metric = default_metric(max(owners, key=lambda t: t.row_count)) if owners else None
        metric_named = False
    if metric is None:
        metric = default_metric(main_table(schema))
        metric_named = False
    base = metric.table

    # Groupings, relative to the figure's table.
    group_cols: list[Col] = []
    for m, _group in dims:
        found = resolve_column(schema, base, m.targets)
        if found is None:
            notes.append(f"“{m.text}” is not linked to {base}, so it was left out.")
        elif found not in group_cols:
            group_cols.append(found)
    for m, group in tables:
        table = schema.tables[m.targets[0].table]
        if table.name == base or (not group and entity == table.name):
            entity = entity or table.name
            continue
        if group or from_measure or ranked_by_table:
            label = table.label or table.primary_key
            if label and schema.join_path(base, table.name) is not None:
                entity_col = Col(table.name, label)
                if entity_col not in group_cols:
                    group_cols.append(entity_col)
                entity = entity or table.name
    for m in temporals:
        t = m.targets[0]
        if schema.join_path(base, t.table) is not None:
            time_col = Col(t.table, t.column or "")
            time_named = True
    if time_col is None:
        time_col = time_of(schema, base)

    # Filters: values, booleans named as adjectives, numeric comparisons, periods.
    conds: list[Cond] = []
    compare_values: list[Cond] = []
    by_column: dict[Col, list[Any]] = {}
    for m in values:
        where = resolve_column(schema, base, [t for t in m.targets if t.kind == "value"])
        if where is None:
            notes.append(f"“{m.text}” is not linked to {base}, so that filter was left out.")
            continue
        value = next(
            t.value
            for t in m.targets
            if t.kind == "value" and t.column == where.name and t.table == where.table
        )
        by_column.setdefault(where, []).append(value)
    for where, vals in by_column.items():
        if len(vals) > 1 and info.intent == "comparison" and where not in group_cols:
            compare_values.append(Cond(where, "in", vals))
        elif len(vals) > 1:
            conds.append(Cond(where, "in", vals))
        else:
            conds.append(Cond(where, "=", vals[0]))
    for grouping in list(group_cols):
        info_col = schema.column(grouping.table, grouping.name)
        grouped = any(
            in_group_role(toks, m, mentions) for m, _ in dims if m.targets[0].column == grouping.name
        )
        if info_col.boolean and not grouped and (info.intent not in ("share", "comparison") or rate_cue):
            group_cols.remove(grouping)
            conds.append(Cond(grouping, "=", True))
    conds.extend(comparisons(text, schema, base, [*measures, *operands], metric))
    # A column named only beside one of its values ("employees working remotely", work_mode) is
    # that filter, not a grouping.
    filtered = {c.col for c in conds if c.op in ("=", "in")}
    loose = {c for m, group in dims if not group for c in [resolve_column(schema, base, m.targets)] if c}
    group_cols = [c for c in group_cols if not (c in filtered and c in loose)]

    if rate_cue:
        # A table named only as the grouping ("by department") is not what the rate is a share of.
        loose_base = not metric_named or grouped_base or any(g.table == base for g in group_cols)
        rate_conds = [c for c in conds if c.col not in group_cols]
        found_rate = _rate_metric(schema, base, loose_base, rate_conds)
        if found_rate is None:
            guessed = _rate_cond(text, schema, base, loose_base)
            if guessed is not None and guessed.col not in group_cols:
                conds.append(guessed)
                found_rate = _rate_metric(schema, base, loose_base, [guessed])
        if found_rate is not None:
            metric, used_cond = found_rate
            conds = [c for c in conds if c is not used_cond]
            label = schema.tables[base].label or schema.tables[base].primary_key
            if grouped_base and metric.table != base and label and not group_cols:
                group_cols.append(Col(base, label))
            base = metric.table
            time_col = time_col if time_col is not None and time_named else time_of(schema, base)
            info = _rate_intent(text, info, bool(group_cols))
            entity = None
            metric_named = True

    periods: list[Period] = []
    refs = find_periods(text)
    if refs:
        if time_col is None:
            notes.append(f"{base} has no date column, so the period was ignored.")
        else:
            tc = schema.column(time_col.table, time_col.name)
            if tc.min_value and tc.max_value:
                periods = resolve(
                    refs, date.fromisoformat(tc.min_value[:10]), date.fromisoformat(tc.max_value[:10])
                )

    # Words that matched nothing.
    used = {k for m in mentions for k in range(m.start, m.end)}
    period_words = {w for ref in refs for w in ref.text.split()}
    unmatched = [
        t.text
        for k, t in enumerate(toks)
        if k not in used
        and not is_function_word(t.text)
        and t.text not in period_words
        and not is_function_word(t.norm)
        and not t.text.isdigit()
        and len(t.text) > 2
        and t.text not in ("active", "new", "signed", "sold", "spent", "made", "value")
    ]
    if (
        info.intent == "comparison"
        and second is not None
        and not group_cols
        and not compare_values
        and len(periods) < 2
    ):
        info = replace(info, intent="relationship")  # "discount vs revenue": two figures, one scatter
    if (
        info.intent == "ranking"
        and from_measure
        and info.top_n is None
        and info.grain is None
        and not group_cols
        and aggregate in (None, "max", "min")
        and all(m.targets[0].table == base for m, _ in tables)
    ):
        # "the highest single order revenue": one record's figure, not a ranking of groups.
        agg = "max" if info.descending is not False else "min"
        metric = replace(metric, aggregate=agg)
        info = replace(info, intent="single")
        entity = base
    return Request(
        message=message,
        info=info,
        metric=metric,
        metric_named=metric_named,
        dims=group_cols,
        time=time_col,
        time_named=time_named,
        conds=conds,
        periods=periods,
        compare_values=compare_values,
        second_metric=second,
        entity=entity,
        aggregate_named=aggregate is not None,
        notes=notes,
        unmatched=unmatched,
        matched=bool(mentions),
    )


def _rate_metric(
    schema: Schema, base: str, loose_base: bool, conds: list[Cond]
) -> tuple[Metric, Cond] | None:
    """The rate a message asks for: the share of rows whose flag is set or whose category matches.

    The first filter on a boolean column (``is_active``) or on a categorical value (``status =
    'cancelled'``) becomes the figure instead: 100 * AVG(CASE WHEN ... THEN 1.0 ELSE 0 END), over the
    table that holds the column. A filter on another table than the one counted is used only when the
    counted table was a default, so "share of orders" never turns into a share of users.
    """
    for cond in conds:
        if cond.op not in ("=", "in"):
            continue
        info = schema.column(cond.col.table, cond.col.name)
        if info.boolean:
            if cond.value is not True:
                continue
            value: Any = None
            label = re.sub(r"^(?:is|has|was)\s+", "", humanize(cond.col.name).lower())
        elif info.kind in ("measure", "temporal"):
            continue
        else:
            value = list(cond.value) if cond.op == "in" else cond.value
            label = " or ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        if cond.col.table != base and (not loose_base or schema.join_path(cond.col.table, base) is None):
            continue
        rate = Metric(
            cond.col.table, cond.col.name, "avg", rate=True, rate_value=value, label=humanize(f"{label} rate")
        )
        return rate, cond
    return None


_RATE_NOUN = re.compile(r"\b([a-z]{4,})\s+(?:rates?|ratios?)\b")


def _rate_cond(text: str, schema: Schema, base: str, loose_base: bool) -> Cond | None:
    """The flag or category behind a rate noun that matched no column: "churn rate" -> ``churned``.

    The noun before "rate" is cut to its first five letters and compared with the boolean columns and
    the categorical values of the counted table (of any table when none was named): "cancellation"
    finds ``status = 'cancelled'``, "conversion" a ``converted`` flag, "refund" ``refunded``.
    """
    m = _RATE_NOUN.search(text)
    if m is None:
        return None
    stem = m.group(1)[:5]
    tables = [schema.tables[base]]
    if loose_base:
        tables += sorted((t for t in schema.tables.values() if t.name != base), key=lambda t: -t.row_count)
    for table in tables:
        for col in table.columns.values():
            if col.boolean and any(w.startswith(stem) for w in re.split(r"[^a-z]+", col.name.lower())):
                return Cond(Col(table.name, col.name), "=", True)
        for col in table.columns.values():
            if col.kind in ("measure", "temporal") or col.boolean:
                continue
            for value in col.values:
                if isinstance(value, str) and value.lower().startswith(stem):
                    return Cond(Col(table.name, col.name), "=", value)
    return None


def _rate_intent(text: str, info: IntentInfo, grouped: bool) -> IntentInfo:
    """How a rate is drawn: the intent of the message without its rate words ("share of" is no pie)."""
    bare = detect(_RATE_WORDS.sub(" ", text))
    intent = bare.intent
    if intent in ("share", "list", "distribution"):
        intent = "none"
    if intent == "none" and not grouped and bare.grain is None:
        intent = "single"
    return replace(info, intent=intent, grain=bare.grain or info.grain)


def _compared(toks: list[Token], m: Mention) -> bool:
    """The measure is followed by a comparison with a number ("salary over 80000")."""
    after = " ".join(t.text for t in toks[m.end : m.end + 4])
    return COMPARATOR.match(after) is not None


def _groupable(schema: Schema, m: Mention) -> bool:
    """A whole-number, non-money measure after "by" ("reviews by rating") groups rather than figures.

    Integer scores, levels and counts take few values, so each is a sensible bar; an amount after "by"
    is left a measure, since "top products by revenue" ranks by it.
    """
    top = m.targets[0]
    col = schema.column(top.table, top.column or "")
    return col.integer and not _money(col)


def _fact_metric(schema: Schema, dim: Mention) -> Metric | None:
    """For "best category": the figure of the dated table that points to the grouping's table.

    A grouping that lives in a lookup table (``products.category``, no date of its own) is ranked by
    what happens to it (orders), not by how many lookup rows it has.
    """
    owners = [schema.tables[t.table] for t in dim.targets if t.column]
    if not owners or owners[0].temporal is not None:
        return None
    owner = owners[0].name
    facts = [
        schema.tables[fk.table]
        for fk in schema.foreign_keys
        if fk.ref_table == owner and schema.tables[fk.table].temporal is not None
    ]
    if not facts:
        return None
    return default_metric(max(facts, key=lambda t: (default_measure(t) is not None, t.row_count)))


def keep_mention(m: Mention, toks: list[Token]) -> bool:
    """Drop matches that are really steering words: "area chart", a bare "total"."""
    if not m.weak:
        return True
    word = toks[m.start].text
    if word in CHART_WORDS or m.targets[0].score < 1.0:
        return False
    return word not in AGGREGATE_WORDS


def _describe(target: Target) -> str:
    if target.kind == "value":
        return f"{target.column} = {target.value!r}"
    return f"{target.table}.{target.column}" if target.column else target.table


def time_of(schema: Schema, base: str) -> Col | None:
    table = schema.tables[base]
    if table.temporal is not None:
        return Col(base, table.temporal.name)
    for fk in schema.foreign_keys:  # a dated parent: order_items -> orders.order_date
        if fk.table == base:
            parent = schema.tables[fk.ref_table]
            if parent.temporal is not None:
                return Col(parent.name, parent.temporal.name)
    return None


def comparisons(text: str, schema: Schema, base: str, measures: list[Mention], metric: Metric) -> list[Cond]:
    conds = []
    for m in COMPARATOR.finditer(text):
        op = _OPS.get(m.group(1) or "", m.group(4) or ">")
        number = float(m.group(2) or m.group(5))
        number *= {"k": 1_000, "m": 1_000_000}.get(m.group(3) or "", 1)
        target_col = None
        for x in reversed(measures):
            col = resolve_column(schema, base, x.targets)
            if col is not None:
                target_col = col
                break
        if target_col is None and metric.column is not None:
            target_col = Col(metric.table, metric.column)
        if target_col is None:
            fallback = default_measure(schema.tables[base])
            target_col = Col(base, fallback.name) if fallback else None
        if target_col is not None:
            conds.append(Cond(target_col, op, int(number) if number.is_integer() else number))
    return conds
