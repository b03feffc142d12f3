"""Each validation rule and limit of the one validator, and its properties under hypothesis."""

from __future__ import annotations

import json
from typing import Any

import pytest
import uuid_utils
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.components import Limits, validate_component, validate_components
from streamforge.protocol import decode_text, encode_text


def chart(chart_type: str = "bar", **data: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "T",
        "chart_type": chart_type,
        "x_axis": ["a", "b"],
        "series": [{"label": "s", "values": [1, 2]}],
    }
    return {"type": "ChartComponent", "data": {**base, **data}}


def test_valid_components_get_uuid7_and_timestamp() -> None:
    card = validate_component({"type": "SimpleComponent", "data": {"title": "Revenue", "value": 12.5}})
    assert card is not None
    assert uuid_utils.UUID(card.id).version == 7
    assert card.data.timestamp.endswith("Z")
    assert card.data.sample is True and card.data.source is None


def test_existing_uuid7_is_kept_and_other_ids_rejected() -> None:
    keep = str(uuid_utils.uuid7())
    assert validate_component({**chart(), "id": keep}).id == keep  # type: ignore[union-attr]
    assert validate_component({**chart(), "id": str(uuid_utils.uuid4())}) is None
    assert validate_component({**chart(), "id": "not-a-uuid"}) is None


@pytest.mark.parametrize(
    "raw, why",
    [
        ({"type": "SimpleComponent", "data": {"value": 1}}, "card without title"),
        ({"type": "SimpleComponent", "data": {"title": "x", "value": True}}, "boolean value"),
        ({"type": "SimpleComponent", "data": {"title": "x", "value": float("nan")}}, "NaN value"),
        ({"type": "SimpleComponent", "data": {"title": "", "value": 1}}, "empty title"),
        ({"type": "TableA", "data": {"columns": [], "rows": []}}, "table without columns"),
        ({"type": "TableA", "data": {"columns": ["a", "b"], "rows": [[1]]}}, "short row"),
        (chart("donut"), "unknown chart type"),
        (chart(series=[{"label": "s", "values": [1]}]), "series shorter than x_axis"),
        (chart(series=[]), "no series"),
        (chart(series=[{"label": "s", "values": ["1", "2"]}]), "string values"),
        (
            chart("pie", series=[{"label": "a", "values": [1, 2]}, {"label": "b", "values": [1, 2]}]),
            "two pies",
        ),
        (chart("pie", series=[{"label": "a", "values": [1, -2]}]), "negative pie"),
        (chart("scatter", x_axis=[], series=[{"label": "s", "values": [1, 2]}]), "scatter without points"),
        (chart("line", series=[{"label": "s", "values": [[1, 2], [3, 4]]}]), "points on a line chart"),
        ({"type": "Gauge", "data": {"title": "x"}}, "unknown type"),
        ({"data": {"title": "x", "value": 1}}, "no type"),
        ("a string", "not an object"),
        ({"type": "SimpleComponent", "data": "x"}, "data not an object"),
    ],
)
def test_invalid_components_are_dropped(raw: object, why: str) -> None:
    assert validate_component(raw) is None, why


def test_limits_truncate_rows_and_points_and_count() -> None:
    limits = Limits(max_components=2, max_rows=3, max_points=4)
    table = {"type": "TableA", "data": {"columns": ["n"], "rows": [[i] for i in range(10)]}}
    long_chart = chart("line", x_axis=list(range(9)), series=[{"label": "s", "values": list(range(9))}])
    out = validate_components([table, long_chart, table], limits)
    assert len(out) == 2
    assert len(out[0].data.rows) == 3  # type: ignore[union-attr]
    assert out[1].data.x_axis == [0, 1, 2, 3]  # type: ignore[union-attr]


def test_default_limits_come_from_settings() -> None:
    from streamforge.config import Settings

    limits = Limits.from_settings(Settings(max_rows=7, max_points=9, max_components=2, _env_file=None))  # type: ignore[call-arg]
    assert (limits.max_rows, limits.max_points, limits.max_components) == (7, 9, 2)


def test_source_marks_data_as_real() -> None:
    source = {"sql": "SELECT 1", "table": "orders", "x": None, "y": "revenue", "aggregate": "sum"}
    card = validate_component(
        {"type": "SimpleComponent", "data": {"title": "x", "value": 1, "source": source, "sample": True}}
    )
    assert card is not None and card.data.sample is False and card.data.source is not None


# --- properties -----------------------------------------------------------------------------------
text = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s)
numbers = st.one_of(st.integers(-(10**9), 10**9), st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False))
cells = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))


@st.composite
def raw_components(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["SimpleComponent", "TableA", "ChartComponent"]))
    if kind == "SimpleComponent":
        data: dict[str, Any] = {
            "title": draw(text),
            "value": draw(st.one_of(numbers, text)),
            "unit": draw(st.none() | text),
            "delta": draw(st.none() | text),
        }
    elif kind == "TableA":
        width = draw(st.integers(1, 5))
        data = {
            "columns": draw(st.lists(text, min_size=width, max_size=width)),
            "rows": draw(st.lists(st.lists(cells, min_size=width, max_size=width), max_size=30)),
        }
    else:
        chart_type = draw(st.sampled_from(["line", "bar", "area", "pie", "scatter"]))
        n = draw(st.integers(0, 60))
        if chart_type == "scatter":
            series = [
                {
                    "label": draw(text),
                    "values": draw(st.lists(st.tuples(numbers, numbers).map(list), max_size=60)),
                }
            ]
            data = {"title": draw(text), "chart_type": chart_type, "series": series}
        else:
            positive = st.integers(0, 10**6) if chart_type == "pie" else numbers
            count = 1 if chart_type == "pie" else draw(st.integers(1, 3))
            series = [
                {"label": draw(text), "values": draw(st.lists(positive, min_size=n, max_size=n))}
                for _ in range(count)
            ]
            data = {
                "title": draw(text),
                "chart_type": chart_type,
                "x_axis": draw(st.lists(text, min_size=n, max_size=n)),
                "series": series,
            }
    return {"type": kind, "data": data}


@settings(max_examples=150, deadline=None)
@given(raw_components())
def test_accepted_components_survive_encode_decode_unchanged(raw: dict[str, Any]) -> None:
    component = validate_component(raw)
    assert component is not None
    frame = component.model_dump(mode="json")
    assert len(frame["data"].get("rows", [])) <= 20
    for s in frame["data"].get("series", []):
        assert len(s["values"]) <= 50
    decoded = decode_text(encode_text(frame))
    assert decoded == [frame]
    again = validate_component(decoded[0])
    assert again is not None and again.model_dump(mode="json") == frame


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | numbers | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )
)
def test_validator_never_raises_on_arbitrary_json(value: Any) -> None:
    for candidate in (value, {"type": "ChartComponent", "data": value}, {"type": "TableA", "data": value}):
        result = validate_component(candidate)
        if result is not None:
            json.dumps(result.model_dump(mode="json"))
