"""AnthropicProvider against the fake Messages API, driven by the real ``anthropic`` SDK.

Nothing inside our package or the SDK is patched: the provider talks HTTP to a loopback server that
answers in Anthropic's wire format, so what is tested is what runs against api.anthropic.com.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from streamforge.config import Settings
from streamforge.providers.anthropic import DEFAULT_MODEL, AnthropicProvider
from streamforge.providers.base import (
    ChatMessage,
    CompletionRequest,
    PermanentProviderError,
    Provider,
    ProviderError,
    TransientProviderError,
)
from tests.conftest import free_port
from tests.fakes import anthropic as fakes
from tests.fakes.anthropic import (
    API_VERSION,
    FakeAnthropic,
    cut,
    disconnect,
    error,
    stream,
    text,
)

# The fake's fixtures, made visible to pytest in this module.
fake_anthropic = fakes.fake_anthropic
anthropic_env = fakes.anthropic_env

KEY = "sk-ant-test"
REQUEST = CompletionRequest(
    system="You plan dashboards.",
    messages=(
        ChatMessage("user", "revenue by region"),
        ChatMessage("assistant", "$$$[]$$$"),
        ChatMessage("user", "as a bar chart"),
    ),
    max_tokens=256,
)


@pytest.fixture
def anthropic_settings(settings: Settings, fake_anthropic: FakeAnthropic) -> Settings:
    return settings.model_copy(update={"anthropic_base_url": fake_anthropic.url, "provider_timeout": 5.0})


@pytest.fixture
async def provider(anthropic_settings: Settings) -> AsyncIterator[AnthropicProvider]:
    p = AnthropicProvider(anthropic_settings, api_key=KEY)
    yield p
    await p.aclose()


async def _collect(provider: AnthropicProvider, request: CompletionRequest = REQUEST) -> list[str]:
    return [piece async for piece in provider.stream(request)]


def test_is_a_provider(provider: AnthropicProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "anthropic"


async def test_complete_returns_the_text_and_sends_a_messages_request(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.push(text('$$$[{"type": "card"}]$$$'))

    assert await provider.complete(REQUEST) == '$$$[{"type": "card"}]$$$'

    sent = fake_anthropic.last
    assert sent.path == "/v1/messages"  # base_url honoured: the call reached the fake
    assert sent.operation == "complete"
    assert sent.body["model"] == DEFAULT_MODEL  # the Bedrock default id is not sent to this API
    assert sent.body["system"] == "You plan dashboards."
    assert sent.body["max_tokens"] == 256
    assert sent.body["messages"] == [
        {"role": "user", "content": "revenue by region"},
        {"role": "assistant", "content": "$$$[]$$$"},
        {"role": "user", "content": "as a bar chart"},
    ]
    assert "temperature" not in sent.body  # removed in API version 2026-10-21
    assert sent.headers["anthropic-version"] == API_VERSION
    assert KEY in sent.headers.get("authorization", "") + sent.headers.get("x-api-key", "")


async def test_an_explicit_model_id_is_sent_as_is(
    anthropic_settings: Settings,
    fake_anthropic: FakeAnthropic,
) -> None:
    provider = AnthropicProvider(
        anthropic_settings.model_copy(update={"model_id": "claude-sonnet-5"}), api_key=KEY
    )
    fake_anthropic.push(text("ok"))
    try:
        await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert provider.model_id == "claude-sonnet-5"
    assert fake_anthropic.last.body["model"] == "claude-sonnet-5"


async def test_an_empty_system_prompt_is_left_out(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.push(text("ok"))
    await provider.complete(CompletionRequest(system="", messages=(ChatMessage("user", "hi"),)))
    assert "system" not in fake_anthropic.last.body


async def test_stream_yields_the_pieces_in_order_as_they_come(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
) -> None:
    chunks = ['$$$[{"type": ', '"card", ', '"data": {}}', "]$$$"]
    fake_anthropic.push(stream(chunks, chunk_delay=0.05))

    arrivals: list[float] = []
    pieces: list[str] = []
    async for piece in provider.stream(REQUEST):
        arrivals.append(time.monotonic())
        pieces.append(piece)

    assert pieces == chunks
    assert arrivals[-1] - arrivals[0] >= 0.1  # streamed as generated, not buffered to the end
    assert fake_anthropic.last.operation == "stream"
    assert fake_anthropic.last.body["stream"] is True


_STATUS_ERRORS = [
    (429, "rate_limit_error", TransientProviderError),
    (529, "overloaded_error", TransientProviderError),
    (500, "api_error", TransientProviderError),
    (503, "api_error", TransientProviderError),
    (504, "timeout_error", TransientProviderError),
    (401, "authentication_error", PermanentProviderError),
    (403, "permission_error", PermanentProviderError),
    (400, "invalid_request_error", PermanentProviderError),
    (404, "not_found_error", PermanentProviderError),
    (413, "request_too_large", PermanentProviderError),
]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("status", "error_type", "expected"), _STATUS_ERRORS)
async def test_error_statuses_map_to_transient_or_permanent(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
    mode: str,
    status: int,
    error_type: str,
    expected: type[ProviderError],
) -> None:
    fake_anthropic.push(error(status, error_type))
    with pytest.raises(ProviderError) as caught:
        if mode == "complete":
            await provider.complete(REQUEST)
        else:
            await _collect(provider)
    assert type(caught.value) is expected
    assert caught.value.status == status
    assert caught.value.provider == "anthropic"
    assert error_type in str(caught.value)
    assert fake_anthropic.calls == 1  # the SDK's own retries are off


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_a_dropped_connection_is_transient(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
    mode: str,
) -> None:
    fake_anthropic.push(disconnect())
    with pytest.raises(TransientProviderError):
        if mode == "complete":
            await provider.complete(REQUEST)
        else:
            await _collect(provider)
    assert fake_anthropic.calls == 1


async def test_a_stream_broken_half_way_raises_transient_after_its_pieces(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.push(cut(["$$$[", '{"type": "card"'], chunk_delay=0.01))
    pieces: list[str] = []
    with pytest.raises(TransientProviderError):
        async for piece in provider.stream(REQUEST):
            pieces.append(piece)
    assert pieces == ["$$$[", '{"type": "card"']


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [("overloaded_error", TransientProviderError), ("invalid_request_error", PermanentProviderError)],
)
async def test_an_error_event_inside_the_stream_is_mapped_by_its_type(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
    error_type: str,
    expected: type[ProviderError],
) -> None:
    fake_anthropic.push(stream(["$$$[", "{"], stream_error=error_type))
    pieces: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for piece in provider.stream(REQUEST):
            pieces.append(piece)
    assert type(caught.value) is expected
    assert pieces == ["$$$[", "{"]


async def test_a_timeout_is_transient(
    anthropic_settings: Settings,
    fake_anthropic: FakeAnthropic,
) -> None:
    provider = AnthropicProvider(anthropic_settings.model_copy(update={"provider_timeout": 0.3}), api_key=KEY)
    fake_anthropic.push(text("too late", delay=2.0))
    started = time.monotonic()
    try:
        with pytest.raises(TransientProviderError):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 1.5


async def test_one_client_and_connection_serve_every_call(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.push(text("one"), stream(["two", "!"]), text("three"))
    assert await provider.complete(REQUEST) == "one"
    assert await _collect(provider) == ["two", "!"]
    assert await provider.complete(REQUEST) == "three"
    # A client per call would open a connection per call; one client keeps its connection alive.
    assert len({r.client_port for r in fake_anthropic.requests}) == 1


async def test_leaving_a_stream_early_frees_the_connection_for_the_next_call(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.push(stream(["a", "b", "c", "d"], chunk_delay=0.02), text("next"))
    async for piece in provider.stream(REQUEST):
        assert piece == "a"
        break
    assert await provider.complete(REQUEST) == "next"


async def test_aclose_then_use_again_opens_a_new_client(
    provider: AnthropicProvider,
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.push(text("one"), text("two"))
    assert await provider.complete(REQUEST) == "one"
    await provider.aclose()
    await provider.aclose()  # idempotent
    assert await provider.complete(REQUEST) == "two"


async def test_an_unreachable_base_url_is_transient(settings: Settings, anthropic_env: None) -> None:
    unreachable = settings.model_copy(
        update={"anthropic_base_url": f"http://127.0.0.1:{free_port()}", "provider_timeout": 2.0}
    )
    provider = AnthropicProvider(unreachable, api_key=KEY)
    try:
        with pytest.raises(TransientProviderError):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()


async def test_no_credentials_at_all_is_permanent_and_sends_nothing(
    anthropic_settings: Settings,
    fake_anthropic: FakeAnthropic,
) -> None:
    provider = AnthropicProvider(anthropic_settings)  # no key, none in the environment, no profile
    try:
        with pytest.raises(PermanentProviderError):
            await provider.complete(REQUEST)
    finally:
        await provider.aclose()
    assert fake_anthropic.calls == 0


async def test_the_key_may_come_from_the_environment(
    anthropic_settings: Settings,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    provider = AnthropicProvider(anthropic_settings)
    fake_anthropic.push(text("ok"))
    try:
        assert await provider.complete(REQUEST) == "ok"
    finally:
        await provider.aclose()
    headers = fake_anthropic.last.headers
    assert "sk-ant-from-env" in headers.get("authorization", "") + headers.get("x-api-key", "")
