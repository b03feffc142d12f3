"""BedrockProvider against the fake Bedrock Runtime, through the real aioboto3 client."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from botocore.eventstream import EventStreamBuffer

from streamforge.config import Settings
from streamforge.providers.base import (
    ChatMessage,
    CompletionRequest,
    PermanentProviderError,
    Provider,
    TransientProviderError,
)
from streamforge.providers.bedrock import ANTHROPIC_VERSION, BedrockProvider
from tests.fakes.bedrock import (
    FakeBedrock,
    aws_env,
    disconnect,
    encode_event_message,
    error,
    fake_bedrock,
    message,
    stream,
    text,
)

__all__ = ["aws_env", "fake_bedrock"]  # fixtures, imported for pytest

REQUEST = CompletionRequest(
    system="You design dashboards.",
    messages=(ChatMessage("user", "revenue by month"),),
    max_tokens=512,
    temperature=0.0,
)


class CountingSession(aioboto3.Session):  # type: ignore[misc]
    """A real session that counts the clients made from it."""

    def __init__(self) -> None:
        super().__init__()
        self.clients = 0

    def client(self, *args: Any, **kwargs: Any) -> Any:
        self.clients += 1
        return super().client(*args, **kwargs)


def _settings(fake: FakeBedrock, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "provider": "bedrock",
        "bedrock_endpoint_url": fake.url,
        "provider_timeout": 5.0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def provider(fake_bedrock: FakeBedrock) -> AsyncIterator[BedrockProvider]:
    bedrock = BedrockProvider(_settings(fake_bedrock))
    yield bedrock
    await bedrock.aclose()


async def _collect(stream_: AsyncIterator[str]) -> list[str]:
    return [piece async for piece in stream_]


def test_is_a_provider(fake_bedrock: FakeBedrock) -> None:
    bedrock = BedrockProvider(_settings(fake_bedrock))
    assert isinstance(bedrock, Provider)
    assert bedrock.name == "bedrock"
    assert bedrock.model_id == "us.anthropic.claude-3-5-haiku-20241022-v1:0"


# -- complete ---------------------------------------------------------------------------------------


async def test_complete_returns_the_text_and_sends_the_anthropic_body(
    fake_bedrock: FakeBedrock, provider: BedrockProvider
) -> None:
    fake_bedrock.push(text("$$$[]$$$"))
    assert await provider.complete(REQUEST) == "$$$[]$$$"
    [seen] = fake_bedrock.requests
    assert seen.operation == "invoke"
    assert seen.model_id == "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    assert seen.body == {
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": 512,
        "temperature": 0.0,
        "system": "You design dashboards.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "revenue by month"}]}],
    }
    # Signed with the dummy credentials of the standard chain (the environment here).
    assert seen.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/us-east-1/bedrock/aws4_request" in seen.headers["Authorization"]


async def test_text_blocks_are_concatenated_and_others_skipped(
    fake_bedrock: FakeBedrock, provider: BedrockProvider
) -> None:
    fake_bedrock.push(
        message(
            [
                {"type": "text", "text": "$$$[{"},
                {"type": "tool_use", "id": "t1", "name": "x", "input": {}},
                {"type": "text", "text": '"a": 1}]$$$'},
            ]
        )
    )
    assert await provider.complete(REQUEST) == '$$$[{"a": 1}]$$$'


async def test_max_tokens_stop_still_returns_the_text(
    fake_bedrock: FakeBedrock, provider: BedrockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake_bedrock.push(text("$$$[{", stop_reason="max_tokens"))
    assert await provider.complete(REQUEST) == "$$$[{"
    assert "max_tokens" in caplog.text


async def test_model_id_and_region_come_from_settings(fake_bedrock: FakeBedrock) -> None:
    settings = _settings(
        fake_bedrock, model_id="anthropic.claude-3-haiku-20240307-v1:0", aws_region="eu-west-3"
    )
    bedrock = BedrockProvider(settings)
    try:
        fake_bedrock.push(text("ok"))
        await bedrock.complete(REQUEST)
    finally:
        await bedrock.aclose()
    [seen] = fake_bedrock.requests
    assert seen.model_id == "anthropic.claude-3-haiku-20240307-v1:0"
    assert "/eu-west-3/bedrock/aws4_request" in seen.headers["Authorization"]


async def test_endpoint_url_is_honoured(fake_bedrock: FakeBedrock, provider: BedrockProvider) -> None:
    fake_bedrock.push(text("ok"))
    await provider.complete(REQUEST)
    assert fake_bedrock.calls == 1
    assert fake_bedrock.requests[0].headers["Host"] == fake_bedrock.url.removeprefix("http://")


# -- one client -------------------------------------------------------------------------------------


async def test_one_client_serves_every_call(fake_bedrock: FakeBedrock) -> None:
    session = CountingSession()
    bedrock = BedrockProvider(_settings(fake_bedrock), session=session)
    fake_bedrock.default = text("ok")
    try:
        # Concurrent first calls must not race to make several clients.
        await asyncio.gather(*(bedrock.complete(REQUEST) for _ in range(8)))
        await bedrock.complete(REQUEST)
        await _collect(bedrock.stream(REQUEST))
        assert session.clients == 1
        assert fake_bedrock.calls == 10
    finally:
        await bedrock.aclose()
    # After aclose a call opens a new client (and aclose is safe to repeat).
    try:
        await bedrock.complete(REQUEST)
        assert session.clients == 2
    finally:
        await bedrock.aclose()
        await bedrock.aclose()


# -- stream -----------------------------------------------------------------------------------------


async def test_stream_yields_each_text_delta(fake_bedrock: FakeBedrock, provider: BedrockProvider) -> None:
    fake_bedrock.push(stream(["$$$[", '{"type": ', '"TableA"}', "]$$$"], chunk_delay=0.01))
    assert await _collect(provider.stream(REQUEST)) == ["$$$[", '{"type": ', '"TableA"}', "]$$$"]
    [seen] = fake_bedrock.requests
    assert seen.operation == "stream"
    assert seen.body["anthropic_version"] == ANTHROPIC_VERSION


async def test_stream_of_a_plain_text_reply(fake_bedrock: FakeBedrock, provider: BedrockProvider) -> None:
    fake_bedrock.push(text("hello there, world", chunk_size=5))
    assert "".join(await _collect(provider.stream(REQUEST))) == "hello there, world"


async def test_stream_pieces_arrive_before_the_answer_ends(
    fake_bedrock: FakeBedrock, provider: BedrockProvider
) -> None:
    fake_bedrock.push(stream(["a", "b", "c"], chunk_delay=0.1))
    pieces = aiter(provider.stream(REQUEST))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await anext(pieces) == "a"
    first_at = loop.time() - started
    assert [p async for p in pieces] == ["b", "c"]
    assert first_at < loop.time() - started  # the first piece did not wait for the last


async def test_leaving_a_stream_early_closes_it(fake_bedrock: FakeBedrock, provider: BedrockProvider) -> None:
    fake_bedrock.push(stream(["a", "b", "c", "d"], chunk_delay=0.05), text("next"))
    async for piece in provider.stream(REQUEST):
        assert piece == "a"
        break
    assert await provider.complete(REQUEST) == "next"  # the client is still usable


@pytest.mark.parametrize(
    ("exception_type", "expected"),
    [
        ("throttlingException", TransientProviderError),
        ("modelStreamErrorException", TransientProviderError),
        ("internalServerException", TransientProviderError),
        ("validationException", PermanentProviderError),
    ],
)
async def test_in_stream_exceptions_are_mapped(
    fake_bedrock: FakeBedrock, provider: BedrockProvider, exception_type: str, expected: type[Exception]
) -> None:
    fake_bedrock.push(stream(["$$$[", "{"], stream_error=exception_type))
    got: list[str] = []
    with pytest.raises(expected):
        async for piece in provider.stream(REQUEST):
            got.append(piece)
    assert got == ["$$$[", "{"]


async def test_stream_open_errors_are_mapped(fake_bedrock: FakeBedrock, provider: BedrockProvider) -> None:
    fake_bedrock.push(error(429, "ThrottlingException"), error(403, "AccessDeniedException"))
    with pytest.raises(TransientProviderError):
        await _collect(provider.stream(REQUEST))
    with pytest.raises(PermanentProviderError):
        await _collect(provider.stream(REQUEST))


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, "ThrottlingException", TransientProviderError),
        (503, "ServiceUnavailableException", TransientProviderError),
        (500, "InternalServerException", TransientProviderError),
        (408, "ModelTimeoutException", TransientProviderError),
        (502, "SomethingNewException", TransientProviderError),  # any 5xx
        (400, "ValidationException", PermanentProviderError),
        (403, "AccessDeniedException", PermanentProviderError),
        (404, "ResourceNotFoundException", PermanentProviderError),
        (403, "UnrecognizedClientException", PermanentProviderError),
        (400, "SomethingNewException", PermanentProviderError),  # any other 4xx
    ],
)
async def test_error_mapping(
    fake_bedrock: FakeBedrock,
    provider: BedrockProvider,
    status: int,
    code: str,
    expected: type[Exception],
) -> None:
    fake_bedrock.push(error(status, code, "nope"))
    with pytest.raises(expected) as caught:
        await provider.complete(REQUEST)
    err = caught.value
    assert isinstance(err, TransientProviderError | PermanentProviderError)
    assert err.status == status
    assert err.provider == "bedrock"
    assert code in str(err)
    assert fake_bedrock.calls == 1  # botocore's own retries are off: tenacity is the one policy


async def test_read_timeout_is_transient(fake_bedrock: FakeBedrock) -> None:
    bedrock = BedrockProvider(_settings(fake_bedrock, provider_timeout=0.2))
    fake_bedrock.push(text("late", delay=2.0))
    try:
        with pytest.raises(TransientProviderError):
            await bedrock.complete(REQUEST)
    finally:
        await bedrock.aclose()
    assert fake_bedrock.calls == 1


async def test_dropped_connection_is_transient(fake_bedrock: FakeBedrock, provider: BedrockProvider) -> None:
    fake_bedrock.push(disconnect())
    with pytest.raises(TransientProviderError):
        await provider.complete(REQUEST)
    assert fake_bedrock.calls == 1


async def test_unreachable_endpoint_is_transient(aws_env: None) -> None:
    with FakeBedrock() as gone:
        url = gone.url  # a port that was just free and is now closed
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, provider="bedrock", bedrock_endpoint_url=url, provider_timeout=2.0
    )
    bedrock = BedrockProvider(settings)
    try:
        with pytest.raises(TransientProviderError):
            await bedrock.complete(REQUEST)
    finally:
        await bedrock.aclose()


async def test_missing_credentials_are_permanent(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    bedrock = BedrockProvider(_settings(fake_bedrock))
    try:
        with pytest.raises(PermanentProviderError, match="credentials"):
            await bedrock.complete(REQUEST)
    finally:
        await bedrock.aclose()
    assert fake_bedrock.calls == 0


# -- the fake's own wire format ---------------------------------------------------------------------


def test_event_stream_encoding_round_trips_through_botocore() -> None:
    payload = json.dumps({"bytes": base64.b64encode(b'{"type": "message_stop"}').decode()}).encode()
    raw = encode_event_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
    )
    assert struct.unpack("!I", raw[:4])[0] == len(raw)
    buffer = EventStreamBuffer()
    buffer.add_data(raw + raw)
    messages = list(buffer)
    assert len(messages) == 2
    assert messages[0].headers[":event-type"] == "chunk"
    assert messages[0].payload == payload
