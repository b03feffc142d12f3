"""POST /chat end to end in process: formats, routing, sessions, and every kind of bad input."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from streamforge import protocol
from streamforge.config import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, answering the Host the shared client sends ('testserver' or 'localhost')."""
    return settings.model_copy(update={"allowed_hosts": "testserver,localhost"})


async def chat(
    client: httpx.AsyncClient, message: str, accept: str | None = None, **extra: object
) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return await client.post("/chat", json={"message": message, **extra}, headers=headers)


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": "0.6.0"}


@pytest.mark.parametrize(
    "accept, fmt, media",
    [
        (None, "text", "text/plain"),
        ("text/event-stream", "sse", "text/event-stream"),
        ("application/x-ndjson", "ndjson", "application/x-ndjson"),
    ],
)
async def test_three_formats_carry_the_same_frames(
    client: httpx.AsyncClient, accept: str | None, fmt: protocol.Format, media: str
) -> None:
    response = await chat(client, "show me sales table", accept)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    frames = protocol.decode(response.text, fmt)
    assert frames[-1]["type"] == "end"
    assert frames[-1]["session_id"] == response.headers["x-session-id"]
    assert frames[-1]["provider"] == "pattern" and frames[-1]["route"] == "pattern"
    tables = [f for f in frames if f["type"] == "TableA"]
    assert len(tables) > 2 and len({t["id"] for t in tables}) == 1
    assert len(tables[-1]["data"]["rows"]) == 10


async def test_sse_events_are_named(client: httpx.AsyncClient) -> None:
    response = await chat(client, "kpi card", "text/event-stream")
    events = [e for e, _ in protocol.iter_sse(response.text)]
    assert events == ["component", "end"]


@pytest.mark.parametrize(
    "message", ["dashboard overview", "revenue by region", "show me ai dashboard with sales"]
)
async def test_planner_route(client: httpx.AsyncClient, message: str) -> None:
    frames = protocol.decode_text((await chat(client, message)).text)
    end = frames[-1]
    assert end["type"] == "end" and end["route"] == "planner" and end["provider"] == "offline"
    components = frames[:-1]
    assert components and all(c["data"]["source"] for c in components if c["type"] != "SimpleComponent")


async def test_session_continues_and_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    first = await chat(client, "show me sales table")
    sid = first.headers["x-session-id"]
    assert len(sid) >= 32
    second = await chat(client, "line chart", session_id=sid)
    assert second.headers["x-session-id"] == sid
    session = (await client.get(f"/sessions/{sid}")).json()
    assert [m["message"] for m in session["messages"]] == ["show me sales table", "line chart"]
    for bad in ["nope", "A" * 32, "../../etc/passwd"]:
        response = await chat(client, "line chart", session_id=bad)
        assert response.status_code == 404, bad
        assert response.json()["error"]["code"] == "unknown_session"
    assert (await client.delete(f"/sessions/{sid}")).status_code == 204
    assert (await client.get(f"/sessions/{sid}")).status_code == 404


BAD_BODIES: list[tuple[bytes, int, str]] = [
    (b"", 400, "empty_body"),
    (b"not json", 400, "invalid_json"),
    (b"\xff\xfe{}", 400, "invalid_encoding"),
    (b"[1, 2]", 422, "invalid_request"),
    (b"{}", 422, "missing_message"),
    (b'{"message": ""}', 422, "empty_message"),
    (b'{"message": "   "}', 422, "empty_message"),
    (b'{"message": 42}', 422, "invalid_message"),
    (b'{"message": null}', 422, "invalid_message"),
    (b'{"message": ["a"]}', 422, "invalid_message"),
    (b'{"message": "' + b"x" * 1001 + b'"}', 422, "message_too_long"),
    (b'{"message": "hi", "session_id": 5}', 422, "invalid_session_id"),
    (b'{"message": "' + b"x" * (65 * 1024) + b'"}', 413, "body_too_large"),
]


@pytest.mark.parametrize("body, status, code", BAD_BODIES)
async def test_bad_input_gets_a_clear_4xx(
    client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    response = await client.post("/chat", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert (await client.get("/healthz")).status_code == 200  # still serving


async def test_exactly_1000_characters_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await chat(client, "x" * 1000)).status_code == 200


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope-not-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = await client.get("/chat")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


async def test_concurrent_requests_all_complete(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(chat(client, m) for m in ["show me sales table", "bar chart"] * 5))
    for response in responses:
        assert protocol.decode_text(response.text)[-1]["type"] == "end"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("pie chart of revenue by product category", "planner"),  # names the data: real numbers
        ("Draw a bar chart of the average price for each category", "planner"),
        ("show me sales table", "pattern"),  # the earlier backend's phrasing, naming no column
        ("line chart", "pattern"),
        ("kpi card", "pattern"),
    ],
)
async def test_a_chart_request_that_names_the_data_goes_to_the_planner(
    client: httpx.AsyncClient, message: str, expected: str
) -> None:
    frames = protocol.decode_text((await chat(client, message)).text)
    assert frames[-1]["route"] == expected
    if expected == "planner":
        assert all(f["data"]["source"] for f in frames[:-1] if f["type"] == "ChartComponent")
