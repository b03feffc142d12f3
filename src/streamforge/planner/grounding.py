"""LLM plans over real data: the schema the model is shown, and components filled from SQL we run.

The model writes SQL; we never trust it. Each statement goes through the data source's one guarded,
read-only path (sqlglot: a single SELECT over known tables, LIMIT capped, timeout), and the component
is rebuilt from the result: the model's placeholder numbers are thrown away. Provenance is read from
the SQL itself with sqlglot (the table of the FROM clause, the schema column under each result
column, the aggregate around it), so ``data.source`` names schema columns even when the model aliased
them. A component without SQL is kept as sample data (``source: null``), never dropped for that alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import sqlglot
from sqlglot import exp

from streamforge.components import Limits
from streamforge.data.schema import Schema
from streamforge.data.source import DataSource, QueryResult
from streamforge.data.sqlguard import SQLRejected
from streamforge.planner.base import RawComponent

log = logging.getLogger(__name__)

_AGGREGATES: dict[type[exp.Expression], str] = {
    exp.Sum: "sum",
    exp.Count: "count",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
}


class GroundingError(ValueError):
    """The component's SQL was rejected by the guard or failed to run.

    ``str(error)`` is the full reason, for our logs. ``for_model`` is what the repair prompt may say:
    a model is untrusted, so it learns that a statement was refused or failed, never the guard's exact
    rule, a table it was not shown, or the engine's error text (issue 13: the repair prompt taught the
    model how to get past the guard).
    """

    def __init__(self, message: str, for_model: str | None = None) -> None:
        super().__init__(message)
        self.for_model = for_model or message


def describe_schema(schema: Schema, max_values: int = 6) -> str:
    """The schema as the model sees it: tables, typed and classified columns, sample values, joins."""
    lines = []
    for table in schema.tables.values():
        lines.append(f"table {table.name} ({table.row_count} rows)")
        for col in table.columns.values():
            extra = ""
            if col.kind == "temporal" and col.min_value:
                extra = f" from {col.min_value} to {col.max_value}"
            elif col.values:
                extra = " e.g. " + ", ".join(repr(v) for v in col.values[:max_values])
            lines.append(f"  - {col.name} {col.type_name.lower()} ({col.kind}){extra}")
    for fk in schema.foreign_keys:
        lines.append(f"join {fk.table}.{fk.column} = {fk.ref_table}.{fk.ref_column}")
    return "\n".join(lines)


def _underlying_column(node: exp.Expression) -> str | None:
    column = node if isinstance(node, exp.Column) else node.find(exp.Column)
    return column.name if column is not None else None


def _aggregate(node: exp.Expression) -> str:
    for kind, name in _AGGREGATES.items():
        if node.find(kind) is not None:
            return name
    return "none"


def provenance(sql: str, dialect: str) -> dict[str, Any]:
    """Table, per-result-column schema columns and aggregates, read from the statement."""
    tree = sqlglot.parse_one(sql, read=dialect)
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    table = tree.find(exp.Table)
    columns: list[tuple[str | None, str]] = []
    if select is not None:
        for projection in select.expressions:
            inner = projection.this if isinstance(projection, exp.Alias) else projection
            columns.append((_underlying_column(inner), _aggregate(inner)))
    return {"table": table.name if table is not None else None, "columns": columns}


def _numeric_columns(result: QueryResult) -> list[int]:
    return [
        i
        for i in range(len(result.columns))
        if result.rows
        and all(
            isinstance(r[i], int | float) and not isinstance(r[i], bool)
            for r in result.rows
            if r[i] is not None
        )
        and any(r[i] is not None for r in result.rows)
    ]


def _label(value: Any) -> str | float | int:
    return value if isinstance(value, int | float | str) and not isinstance(value, bool) else str(value)


class SQLGrounder:
    """Runs a component's SQL through the guarded path and rebuilds the component from the rows."""

    def __init__(self, source: DataSource, limits: Limits) -> None:
        self.source = source
        self.limits = limits

    async def ground(self, raw: RawComponent) -> RawComponent:
        data = raw.get("data") if isinstance(raw.get("data"), dict) else None
        if data is None or not isinstance(data.get("sql"), str) or not data["sql"].strip():
            return {**raw, "data": {**(data or {}), "source": None}}  # kept as sample data
        try:
            # Parsing is CPU-bound and the statement is the model's: never on the event loop.
            safe = await asyncio.to_thread(self.source.guard, data["sql"])
            result = await self.source.run(safe)
        except SQLRejected as exc:
            raise GroundingError(
                f"SQLRejected: {exc}",
                "refused: only one read-only SELECT over the tables and columns of the schema shown, "
                "with plain aggregate, date, string and math functions",
            ) from exc
        except Exception as exc:  # QueryError, a driver error
            raise GroundingError(
                f"{type(exc).__name__}: {exc}", "the statement failed when it was run"
            ) from exc
        if not result.rows:
            raise GroundingError("the query returned no rows")
        prov = await asyncio.to_thread(provenance, safe, self.source.dialect)
        filled = self._fill(str(raw.get("type")), data, result, prov)
        source = self._source(safe, prov, filled.pop("_y_index", None))
        clean = {k: v for k, v in data.items() if k not in ("sql", "x", "y", "group")}
        return {**raw, "data": {**clean, **filled, "source": source}}

    def _source(self, sql: str, prov: dict[str, Any], y_index: list[int] | None) -> dict[str, Any]:
        cols: list[tuple[str | None, str]] = prov["columns"]
        x = cols[0][0] if cols else None
        ys = [cols[i][0] for i in (y_index or []) if i < len(cols) and cols[i][0]]
        aggregates = [cols[i][1] for i in (y_index or []) if i < len(cols)]
        return {
            "sql": sql,
            "table": prov["table"],
            "x": x,
            "y": ys[0] if len(ys) == 1 else (ys or None),
            "aggregate": aggregates[0] if aggregates else "none",
            "group": None,
        }

    def _fill(
        self, kind: str, data: dict[str, Any], result: QueryResult, prov: dict[str, Any]
    ) -> dict[str, Any]:
        numeric = _numeric_columns(result)
        if kind == "TableA":
            return {
                "columns": list(result.columns),
                "rows": [list(r) for r in result.rows[: self.limits.max_rows]],
                "_y_index": numeric,
            }
        if kind == "SimpleComponent":
            if not numeric:
                raise GroundingError("a card needs a numeric result column")
            value = result.rows[0][numeric[0]]
            return {"value": round(value, 2) if isinstance(value, float) else value, "_y_index": numeric[:1]}
        if kind == "ChartComponent":
            return self._chart(data, result, numeric)
        raise GroundingError(f"unknown component type {kind!r}")

    def _chart(self, data: dict[str, Any], result: QueryResult, numeric: list[int]) -> dict[str, Any]:
        chart_type = data.get("chart_type")
        rows = result.rows[: self.limits.max_points]
        if chart_type == "scatter":
            if len(numeric) < 2:
                raise GroundingError("a scatter chart needs two numeric result columns")
            a, b = numeric[:2]
            points = [[r[a], r[b]] for r in rows if r[a] is not None and r[b] is not None]
            return {
                "x_axis": [],
                "series": [{"label": result.columns[b], "values": points}],
                "x_label": result.columns[a],
                "y_label": result.columns[b],
                "_y_index": [b],
            }
        values = [i for i in numeric if i != 0]
        if not values:
            raise GroundingError("a chart needs a numeric result column after the x column")
        if chart_type == "pie":
            values = values[:1]
        series = [
            {"label": result.columns[i], "values": [r[i] for r in rows]}
            for i in values[: self.limits.max_series]
        ]
        return {
            "x_axis": [_label(r[0]) for r in rows],
            "series": series,
            "x_label": data.get("x_label") or result.columns[0],
            "_y_index": values,
        }
