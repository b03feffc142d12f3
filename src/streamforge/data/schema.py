"""Schema introspection: what each column *is*, and how tables join.

A planner that has never seen a database needs more than column types. Each column gets one role:

- ``temporal``: dates and timestamps, including ISO dates stored as text (SQLite, CSV files);
- ``measure``: numbers worth adding up or averaging;
- ``dimension``: few distinct values worth grouping by (text, booleans, small integer codes);
- ``identifier``: keys, declared or named so (``id``, ``*_id``), never summed;
- ``text``: free text and high-cardinality labels (names, e-mails).

Roles come from the declared type first, then from a sample of the values (at most ``_SAMPLE_ROWS``
rows, so introspection stays cheap on big tables), then from the name. Dimensions also keep their most
frequent values, so "in Europe" can be matched to ``region = 'Europe'``, and temporal columns their range,
so "last month" and a chart's time grain can be resolved against the data's own calendar.

Foreign keys are the declared ones plus those inferred by name (``orders.user_id`` -> ``users.user_id``,
``dept_id`` -> ``departments.id``), because CSV files and many real databases declare none.

Introspection runs once per :class:`~streamforge.data.source.DataSource` and is cached there.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "ColumnInfo",
    "ForeignKey",
    "Kind",
    "RawColumn",
    "RawTable",
    "Schema",
    "TableInfo",
    "introspect",
    "singular",
    "split_words",
]

Kind = Literal["temporal", "measure", "dimension", "identifier", "text"]

_SAMPLE_ROWS = 1000
_MAX_VALUES = 100
_DIMENSION_MAX_DISTINCT = 60
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?$")
_LABEL_NAMES = ("name", "title", "label", "full_name", "display_name", "product_name", "username")
_ORDINAL_NAMES = frozenset({"year", "month", "quarter", "week", "day", "weekday", "hour", "level", "grade"})
_TEXT_NAMES = frozenset({"phone", "zip", "zipcode", "postal_code", "postcode", "address", "email", "url"})


def split_words(name: str) -> tuple[str, ...]:
    """``signupDate`` / ``signup_date`` / ``Signup Date`` -> ``("signup", "date")``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return tuple(w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w)


def singular(word: str) -> str:
    """A rough English singular: enough to match ``orders``/``order`` and ``categories``/``category``."""
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


@dataclass(frozen=True)
class RawColumn:
    """A column as the database declares it, before classification."""

    name: str
    type_name: str
    nullable: bool = True


@dataclass(frozen=True)
class RawTable:
    name: str
    columns: tuple[RawColumn, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[tuple[str, str, str], ...] = ()  # (column, referred table, referred column)


@dataclass
class ColumnInfo:
    table: str
    name: str
    type_name: str
    kind: Kind
    words: tuple[str, ...]
    nullable: bool = True
    primary_key: bool = False
    numeric: bool = False
    integer: bool = False
    boolean: bool = False
    stored_as_text: bool = False  # a temporal column kept as text (needs a cast outside SQLite)
    distinct: int | None = None  # exact when below _MAX_VALUES, else a lower bound
    values: tuple[Any, ...] = ()  # the most frequent values of a dimension
    min_value: str | None = None  # ISO date range of a temporal column
    max_value: str | None = None


@dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    ref_table: str
    ref_column: str
    declared: bool = True


@dataclass
class TableInfo:
    name: str
    columns: dict[str, ColumnInfo]
    primary_key: str | None
    row_count: int
    words: tuple[str, ...]
    label: str | None = None  # the column that names a row for people (products.name)

    def of_kind(self, *kinds: Kind) -> list[ColumnInfo]:
        return [c for c in self.columns.values() if c.kind in kinds]

    @property
    def temporal(self) -> ColumnInfo | None:
        """The column that dates a row: the event date rather than an update or birth date."""
        best: tuple[int, ColumnInfo] | None = None
        for col in self.of_kind("temporal"):
            words = set(col.words)
            score = 0
            if words & {"date", "at", "time", "timestamp", "day", "created", "started", "ordered"}:
                score += 2
            if words & {"updated", "modified", "deleted", "end", "ended", "birth", "dob", "expires", "due"}:
                score -= 3
            if col.min_value is None:
                score -= 5
            if best is None or score > best[0]:
                best = (score, col)
        return best[1] if best else None


@dataclass
class Schema:
    tables: dict[str, TableInfo]
    foreign_keys: list[ForeignKey] = field(default_factory=list)

    def column(self, table: str, name: str) -> ColumnInfo:
        return self.tables[table].columns[name]

    def join_path(self, start: str, goal: str) -> list[ForeignKey] | None:
        """The shortest chain of foreign keys from ``start`` to ``goal`` (either direction), or None."""
        if start == goal:
            return []
        seen = {start}
        queue: deque[tuple[str, list[ForeignKey]]] = deque([(start, [])])
        while queue:
            table, path = queue.popleft()
            for fk in self.foreign_keys:
                for here, there in ((fk.table, fk.ref_table), (fk.ref_table, fk.table)):
                    if here == table and there not in seen:
                        if there == goal:
                            return [*path, fk]
                        seen.add(there)
                        queue.append((there, [*path, fk]))
        return None


Execute = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]
Quote = Callable[[str], str]

_NUMERIC = re.compile(r"int|num|dec|real|double|float|money|serial|hugeint", re.I)
_INTEGER = re.compile(r"int|serial", re.I)
_TEMPORAL = re.compile(r"date|time", re.I)
_BOOLEAN = re.compile(r"bool|bit\b", re.I)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    return text if _ISO_DATE.match(text) else None


def _classify(raw: RawColumn, table: RawTable, sample: Sequence[Any], fk_columns: set[str]) -> ColumnInfo:
    words = split_words(raw.name)
    name = raw.name.lower()
    type_name = raw.type_name.upper()
    values = [v for v in sample if v is not None]
    is_pk = raw.name in table.primary_key
    numeric = bool(_NUMERIC.search(type_name)) or (
        bool(values) and all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values)
    )
    boolean = bool(_BOOLEAN.search(type_name)) or (bool(values) and all(isinstance(v, bool) for v in values))
    if numeric and not boolean and values and set(values) <= {0, 1} and words and words[0] in ("is", "has"):
        boolean = True
    temporal = bool(_TEMPORAL.search(type_name)) and not numeric
    as_text = False
    if not temporal and not numeric and values and all(isinstance(v, str) for v in values):
        temporal = sum(1 for v in values if _ISO_DATE.match(v)) >= 0.9 * len(values)
        as_text = temporal
    col = ColumnInfo(
        table=table.name,
        name=raw.name,
        type_name=raw.type_name,
        kind="text",
        words=words,
        nullable=raw.nullable,
        primary_key=is_pk,
        numeric=numeric and not boolean,
        integer=bool(_INTEGER.search(type_name)) or (numeric and all(isinstance(v, int) for v in values)),
        boolean=boolean,
        stored_as_text=as_text,
    )
    distinct = len(set(map(str, values)))
    named_id = (
        name == "id"
        or (words[-1:] in (("id",), ("uuid",), ("key",)) if words else False)
        or (name.endswith("id") and len(name) > 3 and name[-3] not in "aeiou" and numeric)
    )
    if boolean:
        col.kind = "dimension"
    elif temporal:
        col.kind = "temporal"
    elif is_pk or raw.name in fk_columns or named_id:
        col.kind = "identifier"
    elif numeric:
        ordinal = bool(set(words) & _ORDINAL_NAMES) and distinct <= _DIMENSION_MAX_DISTINCT
        col.kind = "dimension" if ordinal else "measure"
    elif set(words) & _TEXT_NAMES or any("@" in str(v) for v in values[:20]):
        col.kind = "text"
    else:
        avg_len = sum(len(str(v)) for v in values) / len(values) if values else 0
        few = distinct <= _DIMENSION_MAX_DISTINCT and (distinct <= 0.5 * len(values) or distinct <= 12)
        col.kind = "dimension" if few and avg_len <= 40 else "text"
    return col


def _label(table: TableInfo) -> str | None:
    by_name = {c.name.lower(): c for c in table.columns.values() if c.kind in ("text", "dimension")}
    for name in _LABEL_NAMES:
        if name in by_name:
            return by_name[name].name
    for kinds in (("text",), ("dimension",)):  # free text first; a low-cardinality name column after
        for col in table.columns.values():
            if col.kind in kinds and {"name", "title"} & set(col.words):
                return col.name
    return None


def _abbreviates(short: str, long: str) -> bool:
    """``dept`` abbreviates ``department``, ``cust`` ``customer``: same first letter, letters in order."""
    if len(short) < 3 or short[0] != long[:1]:
        return False
    rest = iter(long)
    return all(ch in rest for ch in short)


# Words that mark a table's role rather than what it holds (tbl_items, dim_customer, fact_sales).
_TABLE_AFFIXES = frozenset({"tbl", "tb", "t", "dim", "fact", "vw", "v", "stg", "raw"})


def _without_affixes(words: tuple[str, ...]) -> tuple[str, ...]:
    """``tbl_items`` -> ``("items",)``: so ``itemId`` can find the table it points to."""
    trimmed = words
    if len(trimmed) > 1 and trimmed[0] in _TABLE_AFFIXES:
        trimmed = trimmed[1:]
    if len(trimmed) > 1 and trimmed[-1] in _TABLE_AFFIXES:
        trimmed = trimmed[:-1]
    return trimmed


def _infer_foreign_keys(tables: dict[str, TableInfo], declared: list[ForeignKey]) -> list[ForeignKey]:
    """Foreign keys by name, for databases (and CSV folders) that declare none."""
    known = {(fk.table, fk.column) for fk in declared}
    inferred: list[ForeignKey] = []
    for table in tables.values():
        for col in table.columns.values():
            if col.kind != "identifier" or col.primary_key or (table.name, col.name) in known:
                continue
            words = col.words
            if len(words) < 2 or words[-1] != "id":
                continue
            stem = "_".join(words[:-1])
            for other in tables.values():
                if other.name == table.name or other.primary_key is None:
                    continue
                other_words = tuple(singular(w) for w in _without_affixes(split_words(other.name)))
                other_stem = "_".join(other_words)
                pk_name = other.primary_key.lower()
                same_key = pk_name == col.name.lower() and pk_name != "id"
                by_table = stem in (
                    other_stem,
                    "_".join(_without_affixes(split_words(other.name))),
                ) or _abbreviates(stem, other_stem)
                if same_key or by_table:
                    inferred.append(ForeignKey(table.name, col.name, other.name, other.primary_key, False))
                    break
    return inferred


def introspect(
    raw_tables: Sequence[RawTable],
    execute: Execute,
    quote: Quote,
) -> Schema:
    """Classify every column of ``raw_tables`` using samples fetched with ``execute``.

    ``execute`` runs one statement through the data source's read-only path; ``quote`` quotes an
    identifier for its dialect. The statements are built here from schema names only.
    """
    tables: dict[str, TableInfo] = {}
    declared: list[ForeignKey] = []
    for raw in raw_tables:
        q_table = quote(raw.name)
        columns, rows = execute(f"SELECT * FROM {q_table} LIMIT {_SAMPLE_ROWS}")
        index = {name: i for i, name in enumerate(columns)}
        fk_columns = {c for c, _, _ in raw.foreign_keys}
        infos: dict[str, ColumnInfo] = {}
        for rc in raw.columns:
            i = index.get(rc.name)
            sample = [r[i] for r in rows] if i is not None else []
            infos[rc.name] = _classify(rc, raw, sample, fk_columns)
        pk = raw.primary_key[0] if len(raw.primary_key) == 1 else None
        if pk is None:
            ids = [
                c
                for c in infos.values()
                if c.kind == "identifier" and c.name.lower() in ("id", f"{singular(raw.name.lower())}_id")
            ]
            pk = ids[0].name if ids else None
            if pk:
                infos[pk].primary_key = True
        temporal = [c for c in infos.values() if c.kind == "temporal"]
        stats = ", ".join(f"MIN({quote(c.name)}), MAX({quote(c.name)})" for c in temporal)
        _, agg = execute(f"SELECT COUNT(*){', ' + stats if stats else ''} FROM {q_table}")
        row = agg[0] if agg else (0,)
        for i, c in enumerate(temporal):
            c.min_value, c.max_value = _iso(row[1 + 2 * i]), _iso(row[2 + 2 * i])
        for c in infos.values():
            if c.kind == "dimension":
                q_col = quote(c.name)
                _, counts = execute(
                    f"SELECT {q_col}, COUNT(*) AS n FROM {q_table} GROUP BY {q_col} "
                    f"ORDER BY n DESC LIMIT {_MAX_VALUES}"
                )
                c.values = tuple(v for v, _ in counts if v is not None)
                c.distinct = len(counts)
        table = TableInfo(
            name=raw.name,
            columns=infos,
            primary_key=pk,
            row_count=int(row[0] or 0),
            words=tuple(singular(w) for w in split_words(raw.name)),
        )
        table.label = _label(table)
        tables[raw.name] = table
        declared.extend(
            ForeignKey(raw.name, col, ref_table, ref_col)
            for col, ref_table, ref_col in raw.foreign_keys
            if ref_table in {t.name for t in raw_tables}
        )
    fks = declared + _infer_foreign_keys(tables, declared)
    for fk in fks:
        col = tables[fk.table].columns.get(fk.column)
        if col is not None and col.kind in ("measure", "dimension"):
            col.kind = "identifier"
    return Schema(tables=tables, foreign_keys=fks)
