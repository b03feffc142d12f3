"""The answer parser: every envelope an LLM uses, damage json-repair mends, and streaming by chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamforge.planner.parse import StreamingComponentParser, parse_components

CARD = {"type": "SimpleComponent", "data": {"title": "Revenue", "value": 1200, "unit": "USD"}}
CHART = {
    "type": "ChartComponent",
    "data": {
        "title": "Trend",
        "chart_type": "line",
        "x_axis": ["Jan", "Feb"],
        "series": [{"label": "Sales", "values": [1.5, 2]}],
    },
}
TABLE = {"type": "TableA", "data": {"columns": ["a", "b"], "rows": [["x]}", 1], ['"q"', None]]}}
THREE = [CARD, CHART, TABLE]


def _dump(items: list[dict[str, Any]]) -> str:
    return json.dumps(items)


# -- one-shot ---------------------------------------------------------------------------------------


def test_delimited_array() -> None:
    assert parse_components(f"$$${_dump(THREE)}$$$") == THREE


def test_delimited_with_prose_around() -> None:
    text = f"Here is your dashboard [v2]:\n$$$\n{_dump(THREE)}\n$$$\nEnjoy {{it}}!"
    assert parse_components(text) == THREE


def test_legacy_one_object_per_frame() -> None:
    text = "".join(f"$$${json.dumps(c)}$$$" for c in THREE)
    assert parse_components(text) == THREE


def test_bare_array() -> None:
    assert parse_components(_dump(THREE)) == THREE


def test_fenced_block_with_prose() -> None:
    text = f"Sure! Here it is:\n\n```json\n{json.dumps(THREE, indent=2)}\n```\n\nLet me know."
    assert parse_components(text) == THREE


def test_fence_without_language_tag() -> None:
    assert parse_components(f"```\n{_dump(THREE)}\n```") == THREE


def test_single_object_becomes_a_list_of_one() -> None:
    assert parse_components(json.dumps(CHART)) == [CHART]
    assert parse_components(f"The chart: {json.dumps(CHART)} done.") == [CHART]


def test_components_root() -> None:
    assert parse_components(json.dumps({"components": THREE})) == THREE


def test_trailing_commas_are_mended() -> None:
    text = '$$$[{"type": "SimpleComponent", "data": {"title": "A", "value": 1,},},]$$$'
    assert parse_components(text) == [{"type": "SimpleComponent", "data": {"title": "A", "value": 1}}]


def test_single_quotes_and_python_literals_are_mended() -> None:
    text = "[{'type': 'SimpleComponent', 'data': {'title': 'A', 'value': 2, 'unit': None}}]"
    assert parse_components(text) == [
        {"type": "SimpleComponent", "data": {"title": "A", "value": 2, "unit": None}}
    ]


def test_truncated_answer_keeps_the_finished_components() -> None:
    whole = _dump(THREE)
    cut = whole[: whole.index('"TableA"') + 20]
    parsed = parse_components("$$$" + cut)
    assert parsed[:2] == [CARD, CHART]


def test_missing_comma_between_objects() -> None:
    text = f"[{json.dumps(CARD)} {json.dumps(CHART)}]"
    assert parse_components(text) == [CARD, CHART]


def test_non_dict_items_are_dropped() -> None:
    assert parse_components(f'[1, "two", null, {json.dumps(CARD)}, [3]]') == [CARD]


def test_nothing_usable_gives_an_empty_list() -> None:
    for text in ["", "   ", "I cannot help with that.", "$$$$$$", "$$$ no json $$$", "[1, 2, 3]", "null"]:
        assert parse_components(text) == []


def test_never_raises_on_garbage() -> None:
    for text in ["{{{{", "]]]]", '["\\', "$$$[{$$$", "```json\n{", "\x00\x01", "{" * 5000]:
        assert isinstance(parse_components(text), list)


# -- property tests ---------------------------------------------------------------------------------

# Strings may hold brackets, quotes, escapes and any Unicode, but not "$" or "`": a "$$$" or "```"
# inside a value would end its envelope early, a known limit of the framing (as in the legacy protocol).
_strings = st.text(
    alphabet=st.characters(blacklist_characters="$`", blacklist_categories=("Cs",)), max_size=12
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | _strings
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_strings, inner, max_size=3),
    max_leaves=8,
)
_component = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["SimpleComponent", "TableA", "ChartComponent", "Other"]),
        "data": st.dictionaries(_strings, _json, max_size=4),
    }
)
# Prose that holds none of the characters that start JSON or an envelope.
_prose = st.text(
    alphabet=st.characters(blacklist_characters="[]{}$`\"'", blacklist_categories=("Cs",)), max_size=30
)


def _envelope(kind: str, items: list[dict[str, Any]], before: str, after: str) -> str:
    body = json.dumps(items)
    if kind == "delimited":
        return f"{before}$$${body}$$${after}"
    if kind == "delimited_pretty":
        return f"{before}$$$\n{json.dumps(items, indent=2)}\n$$$\n{after}"
    if kind == "fenced":
        return f"{before}\n```json\n{json.dumps(items, indent=1)}\n```\n{after}"
    if kind == "components_root":
        return f"{before}{json.dumps({'components': items})}{after}"
    if kind == "legacy_frames":
        return before + "".join(f"$$${json.dumps(i)}$$$" for i in items) + after
    return f"{before}{body}{after}"  # bare


_kinds = st.sampled_from(
    ["delimited", "delimited_pretty", "fenced", "components_root", "legacy_frames", "bare"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(_component, min_size=1, max_size=5), kind=_kinds, before=_prose, after=_prose)
def test_any_envelope_round_trips(kind: str, items: list[dict[str, Any]], before: str, after: str) -> None:
    assert parse_components(_envelope(kind, items, before, after)) == items


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(_component, min_size=1, max_size=5),
    kind=_kinds,
    before=_prose,
    after=_prose,
    data=st.data(),
)
def test_chunked_feeding_matches_one_shot(
    kind: str, items: list[dict[str, Any]], before: str, after: str, data: st.DataObject
) -> None:
    text = _envelope(kind, items, before, after)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    parser = StreamingComponentParser()
    from_feed: list[dict[str, Any]] = []
    for piece in pieces:
        from_feed.extend(parser.feed(piece))
    # A complete envelope gives every component from feed() alone: none waits for close().
    assert from_feed == items
    assert parser.close() == []
    assert from_feed == parse_components(text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200), data=st.data())
def test_chunked_feeding_never_yields_less_than_one_shot(text: str, data: st.DataObject) -> None:
    """On arbitrary text, feed() + close() return what the one-shot parse does (as a multiset)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    parser = StreamingComponentParser()
    got: list[dict[str, Any]] = []
    for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
        got.extend(parser.feed(text[a:b]))
    got.extend(parser.close())
    seen = [json.dumps(c, sort_keys=True) for c in got]
    for item in parse_components(text):
        key = json.dumps(item, sort_keys=True)
        assert key in seen
        seen.remove(key)


# -- streaming --------------------------------------------------------------------------------------


def test_each_component_comes_out_when_its_bracket_closes() -> None:
    text = f"$$${_dump(THREE)}$$$"
    parser = StreamingComponentParser()
    first_end = text.index(json.dumps(CARD)) + len(json.dumps(CARD))
    assert parser.feed(text[: first_end - 1]) == []
    assert parser.feed(text[first_end - 1 : first_end]) == [CARD]
    assert parser.feed(text[first_end:]) == [CHART, TABLE]
    assert parser.close() == []


def test_character_by_character() -> None:
    text = f"Thinking... ```json\n{json.dumps({'components': THREE})}\n``` done"
    parser = StreamingComponentParser()
    got = [c for ch in text for c in parser.feed(ch)]
    assert got == THREE
    assert parser.close() == []


def test_truncated_stream_is_completed_by_close() -> None:
    whole = f"$$${_dump(THREE)}"
    cut = whole[: whole.index('"TableA"') + 30]
    parser = StreamingComponentParser()
    assert parser.feed(cut) == [CARD, CHART]
    rest = parser.close()
    assert all(isinstance(c, dict) for c in rest)
    assert parser.close() == []  # idempotent


def test_feed_after_close_is_ignored() -> None:
    parser = StreamingComponentParser()
    parser.close()
    assert parser.feed(_dump(THREE)) == []


def test_single_object_root_streams_when_closed() -> None:
    parser = StreamingComponentParser()
    text = json.dumps(CHART)
    assert parser.feed(text[:-1]) == []
    assert parser.feed(text[-1]) == [CHART]


def test_brackets_in_prose_before_the_delimiter_do_no_harm() -> None:
    text = f"I'll make [3 items] for {{you}}: $$${_dump(THREE)}$$$"
    parser = StreamingComponentParser()
    got = [c for i in range(0, len(text), 7) for c in parser.feed(text[i : i + 7])]
    got += parser.close()
    assert [c for c in got if c.get("type")] == THREE


def test_comment_like_prose_on_the_same_line() -> None:
    """json-repair reads "#" and "//" as comments; prose with them must not hide the JSON."""
    assert parse_components(f"# Plan: {json.dumps({'components': THREE})}") == THREE
    assert parse_components(f"see http://x // {_dump(THREE)},") == THREE


def test_escaped_surrogate_pairs_survive_repair() -> None:
    text = '[{"type": "SimpleComponent", "data": {"title": "\\ud83d\\ude00", "value": 1}},]'
    assert parse_components(text)[0]["data"]["title"] == "\U0001f600"
    lone = parse_components('[{"type": "SimpleComponent", "data": {"title": "\\ud800"}}]')
    lone[0]["data"]["title"].encode("utf-8")  # no lone surrogate reaches the client


@pytest.mark.parametrize(
    "text", ["[" * 100_000, "{" * 100_000, '{"a": [' * 20_000, "$$$" + "[{" * 50_000 + "$$$"]
)
def test_pathological_nesting_is_refused_not_raised(text: str) -> None:
    # json.loads would hit its recursion limit and json-repair would spend seconds: neither happens.
    assert parse_components(text) == []
