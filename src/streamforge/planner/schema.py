"""JSON schemas that constrain what a model may write: a whole plan, or a choice among candidates.

A server with structured output (llama.cpp turns the schema into a grammar; OpenAI, vLLM and others
accept it too) can then only produce text of that shape, which is what makes a small local model
usable at all: without it, a 135M-parameter model rarely writes valid JSON.

Why the plan schema is not simply :func:`streamforge.components.component_schema`:

- **Everything is bounded.** A grammar forces the JSON to be valid, not to end: an array or string
  without ``maxItems``/``maxLength`` lets a small model go on until ``max_tokens`` and the JSON is cut.
  Arrays get our :class:`~streamforge.components.Limits` (components, rows, columns, series, points),
  strings the models' own ``max_length`` or a tighter cap for text a model writes (a title is a line,
  not a page).
- **Only what the model should write.** Server-owned fields (``id``, ``timestamp``, ``sample``,
  ``source``) are left out, as in the prompt. With a data source connected, the model writes only a
  title, the chart type and ``sql``: the grounder fills ``value``, ``columns``, ``rows``, ``x_axis``
  and ``series`` from our run of that SQL, and free text (``delta``, ``description``) is where a
  small model invents figures or repeats itself until ``max_tokens``. Fewer fields also means fewer
  tokens, which is most of the time a local model takes.
- **Plain JSON Schema.** ``$ref`` is inlined and pydantic's extras (``discriminator``, ``title``,
  ``default``) dropped, since not every server's schema-to-grammar converter knows them; every object
  says ``additionalProperties: false`` so nothing is invented beside the fields.

The root is ``{"components": [...]}`` (decisions.md); :func:`streamforge.planner.parse.parse_components`
reads it, whole or streamed. The choose schema's root is ``{"choices": [...]}``, each choice an ``id``
from an enum of the candidates' ids (the model cannot name one that does not exist) and an optional
new ``title``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamforge.components import Limits, component_schema

__all__ = ["CHOOSE_TITLE_MAX", "SQL_MAX", "choose_schema", "plan_schema"]

# Fields of ``data`` the server owns.
_SERVER_FIELDS = frozenset({"id", "timestamp", "sample", "source"})
# With a data source, the model writes only these (and ``sql``): the grounder rebuilds the numbers,
# labels and axes from the query's rows, and free text beside them (``delta``, ``description``) is
# where a small model invents figures or loops until ``max_tokens``.
_WITH_SQL_FIELDS = frozenset({"title", "chart_type"})
# Caps on text a model writes, tighter than the validator's (titles 200, descriptions 2000): enough
# for a readable line, short enough that a rambling model stops soon.
_TEXT_MAX = 80
_LONG_TEXT_MAX = 160
# A dashboard query is a few lines; a longer one is usually a model repeating itself.
SQL_MAX = 400
CHOOSE_TITLE_MAX = 80
# Keys a schema-to-grammar converter may not know; none of them constrains the output.
_DROP = frozenset({"title", "default", "discriminator", "description"})


def plan_schema(limits: Limits, *, with_sql: bool, previous_ids: Sequence[str] = ()) -> dict[str, Any]:
    """The schema of a whole plan: ``{"components": [...]}``, at most ``limits.max_components``.

    ``with_sql`` (a data source is connected): each component's ``data`` is its title, chart type and
    ``sql``, the numbers coming from our run of that SQL. Without: the full component, sample numbers
    included, each array bounded by ``limits``. ``previous_ids`` (a follow-up): a component may carry
    one of those ids to replace it, and ``{"type": "remove", "id": ...}`` takes one away, as the
    prompt describes; no other id can be written.
    """
    full = component_schema()
    defs: dict[str, Any] = full.get("$defs", {})
    ids = list(dict.fromkeys(previous_ids))
    variants = [
        _component(_inline(ref, defs), limits, with_sql=with_sql, ids=ids)
        for ref in full.get("oneOf", full.get("anyOf", []))
    ]
    if ids:
        variants.append(
            _object(
                {"type": {"type": "string", "const": "remove"}, "id": {"type": "string", "enum": ids}},
                ["type", "id"],
            )
        )
    return _object(
        {
            "components": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.max_components,
                "items": {"anyOf": variants},
            }
        },
        ["components"],
    )


def choose_schema(ids: Sequence[str], max_choices: int) -> dict[str, Any]:
    """The schema of a choice: ``{"choices": [{"id": <one of ids>, "title"?: str}, ...]}``.

    The enum is what keeps a model honest: it can order and retitle the candidates, never invent one.
    """
    if not ids:
        raise ValueError("choose_schema needs at least one candidate id")
    choice = _object(
        {
            "id": {"type": "string", "enum": list(dict.fromkeys(ids))},
            "title": {"type": "string", "minLength": 1, "maxLength": CHOOSE_TITLE_MAX},
        },
        ["id"],
    )
    return _object(
        {"choices": {"type": "array", "minItems": 1, "maxItems": max(1, max_choices), "items": choice}},
        ["choices"],
    )


# -- building ---------------------------------------------------------------------------------------


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _component(schema: dict[str, Any], limits: Limits, *, with_sql: bool, ids: list[str]) -> dict[str, Any]:
    """One component type: its ``type`` constant, its bounded ``data``, an earlier id if any."""
    props = schema.get("properties", {})
    kind = props.get("type", {}).get("const")
    if not isinstance(kind, str):
        raise ValueError(f"component schema without a constant type: {schema!r}")
    data = _data(props["data"], limits, with_sql=with_sql)
    properties: dict[str, Any] = {"type": {"type": "string", "const": kind}, "data": data}
    if ids:
        properties["id"] = {"type": "string", "enum": ids}
    return _object(properties, ["type", "data"])


def _data(schema: dict[str, Any], limits: Limits, *, with_sql: bool) -> dict[str, Any]:
    fields = {
        k: v
        for k, v in schema.get("properties", {}).items()
        if k not in _SERVER_FIELDS and (not with_sql or k in _WITH_SQL_FIELDS)
    }
    required = [k for k in schema.get("required", []) if k in fields]
    if "title" in fields and "title" not in required:
        required.insert(0, "title")  # a table without a title is legal, but a dashboard wants one
    properties = {name: _bounded(_required_form(spec), limits, name) for name, spec in fields.items()}
    if "title" in properties:
        properties["title"].setdefault("minLength", 1)
    if with_sql:
        properties["sql"] = {"type": "string", "minLength": 1, "maxLength": SQL_MAX}
        required.append("sql")
    # Required fields first, in this order (a grammar writes them in order): title, kind, then SQL.
    ordered = {name: properties[name] for name in required} | {
        name: spec for name, spec in properties.items() if name not in required
    }
    return _object(ordered, required)


def _required_form(spec: dict[str, Any]) -> dict[str, Any]:
    """``X | None`` becomes ``X``: an optional field the model has nothing for is left out, not null."""
    options = spec.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in spec.items() if k != "anyOf"}
            return {**rest, **kept[0]}
    return spec


def _bounded(node: Any, limits: Limits, field: str, depth: int = 0) -> Any:
    """A copy of ``node`` with every string and array bounded and pydantic's extras dropped."""
    if isinstance(node, list):
        return [_bounded(n, limits, field, depth) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: _bounded(v, limits, field, depth + 1)
        for k, v in node.items()
        if k not in _DROP and k != "properties"
    }
    if out.get("type") == "string" and "enum" not in out and "const" not in out:
        cap = _text_cap(field)
        out["maxLength"] = min(out.get("maxLength", cap), cap)
    if out.get("type") == "array":
        cap = _items_cap(field, limits, depth)
        out["maxItems"] = min(out.get("maxItems", cap), cap)
        out.setdefault("items", {})
    if isinstance(node.get("properties"), dict):
        out["additionalProperties"] = False
        out["properties"] = {
            name: _bounded(spec, limits, name, 0) for name, spec in node["properties"].items()
        }
    return out


def _text_cap(field: str) -> int:
    return _LONG_TEXT_MAX if field in ("description", "rows") else _TEXT_MAX


def _items_cap(field: str, limits: Limits, depth: int) -> int:
    """How many items an array of this field may have; ``depth`` tells a table's rows from a row."""
    if field == "rows":
        return limits.max_rows if depth == 0 else limits.max_columns
    return {
        "components": limits.max_components,
        "columns": limits.max_columns,
        "series": limits.max_series,
    }.get(field, limits.max_points)


def _inline(node: Any, defs: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    """``node`` with every ``$ref`` to ``#/$defs/...`` replaced by its definition."""
    if isinstance(node, list):
        return [_inline(n, defs, seen) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen or name not in defs:
            raise ValueError(f"cannot inline {ref!r}")
        return _inline(defs[name], defs, seen | {name})
    return {k: _inline(v, defs, seen) for k, v in node.items() if k != "$defs"}
