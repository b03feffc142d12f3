"""OpenAICompatProvider against the fake chat-completions server, driven by the real ``openai`` SDK.

Nothing inside our package or the SDK is patched: the provider talks HTTP to a loopback server that
answers in OpenAI's wire format (which vLLM, Ollama, llama.cpp and LM Studio copy).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import openai
import pytest

from streamforge.config import Settings
from streamforge.providers.base import (
    ChatMessage,
    CompletionRequest,
    PermanentProviderError,
    Provider,
    ProviderError,
    TransientProviderError,
)
from streamforge.providers.openai_compat import DEFAULT_MODEL, NO_KEY, SCHEMA_NAME, OpenAICompatProvider
from tests.conftest import free_port
from tests.fakes import openai as fakes
from tests.fakes.openai import FakeOpenAI, cut, disconnect, error, stream, text

# The fake's fixtures, made visible to pytest in this module.
fake_openai = fakes.fake_openai
openai_env = fakes.openai_env

SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"components": {"type": "array", "items": {"type": "object"}}},
    "required": ["components"],
}
REQUEST = CompletionRequest(
    system="You plan dashboards.",
    messages=(
        ChatMessage("user", "revenue by region"),
        ChatMessage("assistant", "$$$[]$$$"),
        ChatMessage("user", "as a bar chart"),
    ),
    max_tokens=256,
    temperature=0.0,
    json_schema=SCHEMA,
)


@pytest.fixture
def openai_settings(settings: Settings, fake_openai: FakeOpenAI) -> Settings:
    return settings.model_copy(update={"openai_base_url": fake_openai.base_url, "provider_timeout": 5.0})


@pytest.fixture
async def provider(openai_settings: Settings) -> AsyncIterator[OpenAICompatProvider]:
    p = OpenAICompatProvider(openai_settings)
    yield p
    await p.aclose()


async def _collect(provider: OpenAICompatProvider, request: CompletionRequest = REQUEST) -> list[str]:
    return [piece async for piece in provider.stream(request)]


def test_is_a_provider(provider: OpenAICompatProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "openai"


async def test_complete_returns_the_text_and_sends_a_chat_completion(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(text('$$$[{"type": "card"}]$$$'))

    assert await provider.complete(REQUEST) == '$$$[{"type": "card"}]$$$'

    sent = fake_openai.last
    assert sent.path == "/v1/chat/completions"  # base_url honoured: the call reached the fake
    assert sent.operation == "complete"
    assert sent.body["model"] == DEFAULT_MODEL  # the Bedrock default id is not sent to this server
    assert sent.body["messages"] == [
        {"role": "system", "content": "You plan dashboards."},
        {"role": "user", "content": "revenue by region"},
        {"role": "assistant", "content": "$$$[]$$$"},
        {"role": "user", "content": "as a bar chart"},
    ]
    assert sent.body["max_tokens"] == 256
    assert sent.body["temperature"] == 0.0
    # A local server needs no key, but the SDK sends one: a placeholder.
    assert sent.headers["authorization"] == f"Bearer {NO_KEY}"


async def test_an_explicit_model_id_is_sent_as_is(openai_settings: Settings, fake_openai: FakeOpenAI) -> None:
    provider = OpenAICompatProvider(openai_settings.model_copy(update={"model_id": "llama3.1:8b"}))
    fake_openai.push(text("ok"))
    try:
        await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert fake_openai.last.body["model"] == "llama3.1:8b"


async def test_a_base_url_without_v1_works_too(settings: Settings, fake_openai: FakeOpenAI) -> None:
    provider = OpenAICompatProvider(settings.model_copy(update={"openai_base_url": fake_openai.url}))
    fake_openai.push(text("ok"))
    try:
        assert await provider.complete(REQUEST) == "ok"
    finally:
        await provider.aclose()
    assert fake_openai.last.path == "/chat/completions"


async def test_an_empty_system_prompt_sends_no_system_message(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(text("ok"))
    await provider.complete(CompletionRequest(system="", messages=(ChatMessage("user", "hi"),)))
    assert fake_openai.last.body["messages"] == [{"role": "user", "content": "hi"}]


# -- structured output -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_structured_output_is_off_by_default(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI, mode: str
) -> None:
    fake_openai.push(text("ok"))
    if mode == "complete":
        await provider.complete(REQUEST)
    else:
        await _collect(provider)
    assert fake_openai.last.response_format is None
    assert "response_format" not in fake_openai.last.body


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_structured_output_when_on_sends_the_json_schema(
    openai_settings: Settings, fake_openai: FakeOpenAI, mode: str
) -> None:
    provider = OpenAICompatProvider(openai_settings.model_copy(update={"openai_structured": True}))
    fake_openai.push(text('{"components": []}'))
    try:
        if mode == "complete":
            await provider.complete(REQUEST)
        else:
            await _collect(provider)
    finally:
        await provider.aclose()
    assert fake_openai.last.response_format == {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "schema": SCHEMA, "strict": False},
    }


async def test_structured_output_on_without_a_schema_sends_none(
    openai_settings: Settings, fake_openai: FakeOpenAI
) -> None:
    provider = OpenAICompatProvider(openai_settings.model_copy(update={"openai_structured": True}))
    fake_openai.push(text("ok"))
    try:
        await provider.complete(CompletionRequest(system="s", messages=(ChatMessage("user", "hi"),)))
    finally:
        await provider.aclose()
    assert fake_openai.last.response_format is None


# -- streaming -------------------------------------------------------------------------------------


async def test_stream_yields_the_pieces_in_order_as_they_come(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    chunks = ['$$$[{"type": ', '"card", ', '"data": {}}', "]$$$"]
    fake_openai.push(stream(chunks, chunk_delay=0.05))

    arrivals: list[float] = []
    pieces: list[str] = []
    async for piece in provider.stream(REQUEST):
        arrivals.append(time.monotonic())
        pieces.append(piece)

    assert pieces == chunks  # the empty role chunk and the finish chunk yield nothing
    assert arrivals[-1] - arrivals[0] >= 0.1  # streamed as generated, not buffered to the end
    assert fake_openai.last.operation == "stream"


async def test_a_stream_broken_half_way_raises_transient_after_its_pieces(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(cut(["$$$[", '{"type": "card"'], chunk_delay=0.01))
    pieces: list[str] = []
    with pytest.raises(TransientProviderError):
        async for piece in provider.stream(REQUEST):
            pieces.append(piece)
    assert pieces == ["$$$[", '{"type": "card"']


async def test_an_error_inside_the_stream_is_transient_after_its_pieces(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(stream(["$$$[", "{"], stream_error="server_error"))
    pieces: list[str] = []
    with pytest.raises(TransientProviderError):
        async for piece in provider.stream(REQUEST):
            pieces.append(piece)
    assert pieces == ["$$$[", "{"]


async def test_leaving_a_stream_early_frees_the_connection_for_the_next_call(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(stream(["a", "b", "c", "d"], chunk_delay=0.02), text("next"))
    async for piece in provider.stream(REQUEST):
        assert piece == "a"
        break
    assert await provider.complete(REQUEST) == "next"


# -- errors ----------------------------------------------------------------------------------------

_STATUS_ERRORS = [
    (429, "rate_limit_exceeded", TransientProviderError),
    (500, "server_error", TransientProviderError),
    (502, "bad_gateway", TransientProviderError),
    (503, "engine_overloaded", TransientProviderError),
    (401, "invalid_api_key", PermanentProviderError),
    (403, "unsupported_country_region_territory", PermanentProviderError),
    (400, "context_length_exceeded", PermanentProviderError),
    (404, "model_not_found", PermanentProviderError),
    (429, "insufficient_quota", PermanentProviderError),  # out of credit: waiting will not help
]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("status", "code", "expected"), _STATUS_ERRORS)
async def test_error_statuses_map_to_transient_or_permanent(
    provider: OpenAICompatProvider,
    fake_openai: FakeOpenAI,
    mode: str,
    status: int,
    code: str,
    expected: type[ProviderError],
) -> None:
    fake_openai.push(error(status, code))
    with pytest.raises(ProviderError) as caught:
        if mode == "complete":
            await provider.complete(REQUEST)
        else:
            await _collect(provider)
    assert type(caught.value) is expected
    assert caught.value.status == status
    assert caught.value.provider == "openai"
    assert code in str(caught.value)
    assert fake_openai.calls == 1  # the SDK's own retries are off


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_a_dropped_connection_is_transient(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI, mode: str
) -> None:
    fake_openai.push(disconnect())
    with pytest.raises(TransientProviderError):
        if mode == "complete":
            await provider.complete(REQUEST)
        else:
            await _collect(provider)
    assert fake_openai.calls == 1


async def test_a_timeout_is_transient(openai_settings: Settings, fake_openai: FakeOpenAI) -> None:
    provider = OpenAICompatProvider(openai_settings.model_copy(update={"provider_timeout": 0.3}))
    fake_openai.push(text("too late", delay=2.0))
    started = time.monotonic()
    try:
        with pytest.raises(TransientProviderError):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 1.5


async def test_an_unreachable_base_url_is_transient(settings: Settings, openai_env: None) -> None:
    unreachable = settings.model_copy(
        update={"openai_base_url": f"http://127.0.0.1:{free_port()}/v1", "provider_timeout": 2.0}
    )
    provider = OpenAICompatProvider(unreachable)
    try:
        with pytest.raises(TransientProviderError):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()


# -- client and credentials ------------------------------------------------------------------------


async def test_one_client_and_connection_serve_every_call(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(text("one"), stream(["two", "!"]), text("three"))
    assert await provider.complete(REQUEST) == "one"
    assert await _collect(provider) == ["two", "!"]
    assert await provider.complete(REQUEST) == "three"
    # A client per call would open a connection per call; one client keeps its connection alive.
    assert len({r.client_port for r in fake_openai.requests}) == 1


async def test_aclose_then_use_again_opens_a_new_client(
    provider: OpenAICompatProvider, fake_openai: FakeOpenAI
) -> None:
    fake_openai.push(text("one"), text("two"))
    assert await provider.complete(REQUEST) == "one"
    await provider.aclose()
    await provider.aclose()  # idempotent
    assert await provider.complete(REQUEST) == "two"


async def test_an_explicit_key_is_sent(openai_settings: Settings, fake_openai: FakeOpenAI) -> None:
    provider = OpenAICompatProvider(openai_settings, api_key="sk-explicit")
    fake_openai.push(text("ok"))
    try:
        await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert fake_openai.last.headers["authorization"] == "Bearer sk-explicit"


async def test_the_key_may_come_from_the_environment(
    openai_settings: Settings, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    provider = OpenAICompatProvider(openai_settings)
    fake_openai.push(text("ok"))
    try:
        await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert fake_openai.last.headers["authorization"] == "Bearer sk-from-env"


async def test_openai_itself_without_a_key_is_permanent_and_sends_nothing(
    settings: Settings, openai_env: None
) -> None:
    provider = OpenAICompatProvider(settings)  # no base_url: api.openai.com, which needs a key
    try:
        with pytest.raises(PermanentProviderError):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()


async def test_the_fake_lists_its_models(fake_openai: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0) as client:
        models = [m.id async for m in client.models.list()]
    assert models == fake_openai.models
