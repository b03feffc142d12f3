"""Fuzzing: the HTTP API from its own OpenAPI schema, and the parsers fed what no model would write.

The API part is schemathesis against a real ``streamforge serve`` subprocess on loopback (rate limit
lifted, conversations in memory), so requests travel through uvicorn's own HTTP parsing. It checks
two promises for every generated request: never a 5xx, and every 4xx explains itself in the JSON
error body ``{"error": {"code": ..., "message": ...}}``. ``max_examples`` keeps the run bounded.

The rest are hypothesis properties the parser and protocol tests do not state yet: the streaming
component parser, fed any text in any chunks (biased towards the characters that steer it), never
raises and yields only dicts; ``parse_chat_request`` on any bytes raises nothing but ``APIError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from streamforge.api.chat import ChatRequest, parse_chat_request
from streamforge.api.errors import APIError
from streamforge.config import Settings
from streamforge.planner.parse import StreamingComponentParser, parse_components
from tests.conftest import free_port, start_server

# -- the HTTP API, from its schema --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        {
            "STREAMFORGE_DATA_DIR": str(data_dir),
            "STREAMFORGE_STATE_URL": "memory://",
            "STREAMFORGE_RATE_LIMIT": "1000000/minute",
            "STREAMFORGE_PATTERN_DELAY": "0",
            "STREAMFORGE_LOG_LEVEL": "warning",
        }
    )
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    with start_server(free_port(), env, log) as base:
        yield base


@pytest.fixture(scope="module")
def api_schema(fuzz_server: str) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")


def _check(case: Any) -> None:
    response = case.call(timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type") or [""]  # schemathesis: lists of values
        assert content_type[0].startswith("application/json"), response.text[:200]
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_api_never_fails_and_explains_every_4xx(api_schema: Any, mode: GenerationMode) -> None:
    """Each operation of the schema, with requests that follow it and requests that break it.

    Driven through hypothesis with schemathesis strategies rather than ``schemathesis.pytest``,
    whose lazy-schema plugin relies on a pytest internal that pytest 9 no longer has.
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {f"{o.method.upper()} {o.path}" for o in operations} >= {"POST /chat", "GET /healthz"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=50,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            _check(case)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # Nothing of this operation can be made invalid (GET /healthz takes no input at all).
            assert mode == GenerationMode.NEGATIVE, operation.path


# -- parse_chat_request --------------------------------------------------------------------------------

_SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)
_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"message": _json_values | st.text(max_size=1200)},
        optional={"session_id": _json_values},
    ).map(lambda v: json.dumps(v).encode()),
)


@given(body=_bodies)
@hypothesis.settings(max_examples=300, deadline=None)
def test_parse_chat_request_raises_only_api_errors(body: bytes) -> None:
    try:
        request = parse_chat_request(body, _SETTINGS)
    except APIError as exc:
        assert 400 <= exc.status < 500 and exc.code and exc.message
        return
    assert isinstance(request, ChatRequest)
    assert request.message.strip() and len(request.message) <= _SETTINGS.max_message_length


# -- the streaming component parser ---------------------------------------------------------------------

# Text made mostly of what steers the parser: brackets, quotes, escapes, delimiters, fences, commas.
_steering = st.lists(
    st.sampled_from(["{", "}", "[", "]", '"', "\\", ",", ":", "$$$", "```", "```json\n", "\n", " ", "$"])
    | st.sampled_from(['"type"', '"data"', '"components"', '"a"', "1", "null", "true", "\\u00"])
    | st.text(max_size=4),
    max_size=80,
).map("".join)


@given(text=st.one_of(_steering, st.text(max_size=300)), data=st.data())
@hypothesis.settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_streaming_parser_never_raises_on_garbage(text: str, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    parser = StreamingComponentParser()
    out: list[Any] = []
    start = 0
    for cut in [*cuts, len(text)]:
        out.extend(parser.feed(text[start:cut]))
        start = cut
    out.extend(parser.close())
    assert all(isinstance(c, dict) for c in out)
    # Chunking never loses what the one-shot parse finds.
    whole = parse_components(text)
    assert len(out) >= len(whole)


@given(raw=st.binary(max_size=400), data=st.data())
@hypothesis.settings(max_examples=200, deadline=None)
def test_streaming_parser_takes_decoded_random_bytes(raw: bytes, data: st.DataObject) -> None:
    """Bytes from a broken server, decoded as a lenient client would (replacement characters and
    lone surrogates included)."""
    errors = data.draw(st.sampled_from(["replace", "surrogateescape", "ignore"]))
    text = raw.decode("utf-8", errors=errors)
    parser = StreamingComponentParser()
    out = parser.feed(text[: len(text) // 2]) + parser.feed(text[len(text) // 2 :]) + parser.close()
    assert all(isinstance(c, dict) for c in out)
