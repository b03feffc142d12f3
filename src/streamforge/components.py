"""The three dashboard components and the one validator every path goes through.

The pattern mode, the offline planner and LLM answers all produce plain dicts of the wire shape
``{"type": ..., "id"?: ..., "data": {...}}``. :func:`validate_component` is the only door from such a
dict to something we send: it truncates over-long tables and series to the limits (a long answer is
still a useful answer), then validates strictly, and returns ``None`` (with a logged warning) for
anything else. LLM output is untrusted, so nothing here trusts a field it has not checked.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

import uuid_utils
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from streamforge.config import Settings

log = logging.getLogger(__name__)

ComponentType = Literal["SimpleComponent", "TableA", "ChartComponent"]
ChartType = Literal["line", "bar", "area", "pie", "scatter"]
Aggregate = Literal["sum", "count", "avg", "min", "max", "none"]
Grain = Literal["day", "week", "month", "quarter", "year", "weekday"]

# Strict scalar types: a string never becomes a number, nor a boolean a 1, on its way to a chart.
Number = StrictInt | StrictFloat
Cell = StrictStr | StrictInt | StrictFloat | StrictBool | None

_TEXT = 200  # titles, labels, units
_LONG_TEXT = 2000  # descriptions
_SQL_TEXT = 20_000
_VIEW_TEXT = 4_000


@dataclass(frozen=True)
class Limits:
    """How much one response may carry; from :class:`Settings` so operators can tune them."""

    max_components: int = 5
    max_rows: int = 20
    max_points: int = 50
    max_columns: int = 20
    max_series: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_components=settings.max_components,
            max_rows=settings.max_rows,
            max_points=settings.max_points,
        )


def new_id() -> str:
    """A UUID version 7: time-ordered, so ids sort in the order components were made."""
    return str(uuid_utils.uuid7())


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Model(BaseModel):
    # Unknown keys from an LLM are dropped rather than forwarded; types are checked strictly enough
    # that a string never silently becomes a number in a chart.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Filter(_Model):
    column: str = Field(min_length=1, max_length=_TEXT)
    op: Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "between", "like"]
    value: Any


class Source(_Model):
    """Where the numbers came from: bare schema column names, and the SQL as it was run."""

    sql: str = Field(min_length=1, max_length=_SQL_TEXT)
    table: str | None = Field(None, max_length=_TEXT)
    x: str | None = Field(None, max_length=_TEXT)
    y: str | list[str] | None = None
    aggregate: Aggregate | None = None
    group: str | None = Field(None, max_length=_TEXT)
    grain: Grain | None = None
    filters: list[Filter] = Field(default_factory=list, max_length=20)
    # The offline planner's own terms for a chart (its View), so a follow-up changes the view and
    # never has to parse SQL back; a client may ignore it. Checked against the schema before use.
    view: dict[str, Any] | None = None

    @field_validator("view")
    @classmethod
    def _small_view(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > _VIEW_TEXT:
            raise ValueError(f"view is longer than {_VIEW_TEXT} characters")
        return value


class _Data(_Model):
    title: str | None = Field(None, max_length=_TEXT)
    description: str | None = Field(None, max_length=_LONG_TEXT)
    source: Source | None = None
    sample: bool = True
    timestamp: str = Field(default_factory=now_iso)

    @field_validator("timestamp")
    @classmethod
    def _iso(cls, value: str) -> str:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value

    @model_validator(mode="after")
    def _sample_follows_source(self) -> Self:
        # A component is badged as sample data exactly when it carries no provenance.
        self.sample = self.source is None
        return self


def _finite(value: float) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    return value


class SimpleData(_Data):
    title: str = Field(min_length=1, max_length=_TEXT)
    value: Number | str
    unit: str | None = Field(None, max_length=_TEXT)
    delta: str | None = Field(None, max_length=_TEXT)

    @field_validator("value")
    @classmethod
    def _value(cls, value: Number | str) -> Number | str:
        if isinstance(value, bool):
            raise ValueError("value must be a number or a string")
        if isinstance(value, str) and len(value) > _TEXT:
            raise ValueError(f"value text is longer than {_TEXT} characters")
        return _finite(value) if isinstance(value, float) else value


class TableData(_Data):
    columns: list[Annotated[str, Field(min_length=1, max_length=_TEXT)]] = Field(min_length=1)
    rows: list[list[Cell]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rows_match_columns(self) -> Self:
        width = len(self.columns)
        for i, row in enumerate(self.rows):
            if len(row) != width:
                raise ValueError(f"row {i} has {len(row)} cells, expected {width}")
            for cell in row:
                if isinstance(cell, float):
                    _finite(cell)
                if isinstance(cell, str) and len(cell) > _LONG_TEXT:
                    raise ValueError(f"a cell is longer than {_LONG_TEXT} characters")
        return self


class Series(_Model):
    label: str = Field(min_length=1, max_length=_TEXT)
    values: list[Number | None] | list[Annotated[list[Number], Field(min_length=2, max_length=2)]]


class ChartData(_Data):
    title: str = Field(min_length=1, max_length=_TEXT)
    chart_type: ChartType
    x_axis: list[str | Number] = Field(default_factory=list)
    series: list[Series] = Field(min_length=1)
    x_label: str | None = Field(None, max_length=_TEXT)
    y_label: str | None = Field(None, max_length=_TEXT)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        """Scatter series are ``[x, y]`` points, or values over a category ``x_axis`` (counts per
        gender drawn as dots); every other chart pairs values with ``x_axis``."""
        for s in self.series:
            if not s.values and (self.chart_type == "scatter" or not self.x_axis):
                continue  # a progressive frame that has not received its points yet
            is_points = all(isinstance(v, list) for v in s.values)
            on_axis = self.chart_type != "scatter" or bool(self.x_axis)
            if self.chart_type == "scatter" and not self.x_axis:
                if not is_points:
                    raise ValueError(f"scatter series {s.label!r} must be a list of [x, y] points")
            elif is_points or any(isinstance(v, list) for v in s.values):
                raise ValueError(f"{self.chart_type} series {s.label!r} must be a list of numbers")
            if on_axis and len(s.values) != len(self.x_axis):
                raise ValueError(
                    f"series {s.label!r} has {len(s.values)} values but x_axis has {len(self.x_axis)}"
                )
            for v in s.values:
                for n in v if isinstance(v, list) else [v]:
                    if isinstance(n, bool):
                        raise ValueError("chart values must be numbers")
                    if isinstance(n, float):
                        _finite(n)
        if self.chart_type == "pie":
            if len(self.series) != 1:
                raise ValueError("a pie chart has exactly one series")
            if any(v is not None and isinstance(v, int | float) and v < 0 for v in self.series[0].values):
                raise ValueError("a pie chart cannot show negative parts")
        return self


class _Component(_Model):
    id: str = Field(default_factory=new_id)

    @field_validator("id")
    @classmethod
    def _uuid7(cls, value: str) -> str:
        parsed = uuid_utils.UUID(value)
        if parsed.version != 7:
            raise ValueError("id must be a UUID version 7")
        return str(parsed)


class SimpleComponent(_Component):
    type: Literal["SimpleComponent"] = "SimpleComponent"
    data: SimpleData


class TableA(_Component):
    type: Literal["TableA"] = "TableA"
    data: TableData


class ChartComponent(_Component):
    type: Literal["ChartComponent"] = "ChartComponent"
    data: ChartData


Component = Annotated[SimpleComponent | TableA | ChartComponent, Field(discriminator="type")]
COMPONENT_MODELS: tuple[type[_Component], ...] = (SimpleComponent, TableA, ChartComponent)
_ADAPTER: TypeAdapter[SimpleComponent | TableA | ChartComponent] = TypeAdapter(Component)


def _truncate(raw: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Cut tables and series to the limits before validation, so a long answer is shortened, not lost."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    data = dict(data)
    if isinstance(data.get("rows"), list):
        data["rows"] = data["rows"][: limits.max_rows]
    if isinstance(data.get("columns"), list) and len(data["columns"]) > limits.max_columns:
        keep = limits.max_columns
        data["columns"] = data["columns"][:keep]
        if isinstance(data.get("rows"), list):
            data["rows"] = [r[:keep] if isinstance(r, list) else r for r in data["rows"]]
    if isinstance(data.get("x_axis"), list):
        data["x_axis"] = data["x_axis"][: limits.max_points]
    if isinstance(data.get("series"), list):
        series = []
        for s in data["series"][: limits.max_series]:
            if isinstance(s, dict) and isinstance(s.get("values"), list):
                s = {**s, "values": s["values"][: limits.max_points]}
            series.append(s)
        data["series"] = series
    return {**raw, "data": data}


def validate_component(
    raw: object, limits: Limits | None = None
) -> SimpleComponent | TableA | ChartComponent | None:
    """The one validator: a component ready to send, or ``None`` (logged) if ``raw`` is not one."""
    limits = limits or Limits()
    if not isinstance(raw, dict):
        log.warning("dropped component: not an object (%s)", type(raw).__name__)
        return None
    try:
        return _ADAPTER.validate_python(_truncate(raw, limits))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        log.warning("dropped invalid %s component: %s", raw.get("type", "untyped"), problems)
        return None


def validate_components(
    raws: list[Any], limits: Limits | None = None
) -> list[SimpleComponent | TableA | ChartComponent]:
    """Validate each, keep the valid ones, at most ``limits.max_components`` of them."""
    limits = limits or Limits()
    valid = [c for c in (validate_component(r, limits) for r in raws) if c is not None]
    if len(valid) > limits.max_components:
        log.warning("kept %d of %d components (limit)", limits.max_components, len(valid))
    return valid[: limits.max_components]


def component_schema() -> dict[str, Any]:
    """The JSON schema of a component, from the models themselves (the prompt is built from it)."""
    return _ADAPTER.json_schema()
