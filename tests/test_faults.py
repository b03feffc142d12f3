"""Faults of the network and of the providers, end to end: every request still gets a valid answer,
in bounded time, and leaves nothing behind.

Each of the three vendors' fakes (real HTTP servers on 127.0.0.1, driven by the real SDKs) is made to
time out, throttle, fail with a 5xx, reset the connection, answer with bytes that are not HTTP, not
UTF-8 or not JSON, stop half-way, answer 10 MB, or never stop. Whatever happens, the planner service
yields valid components (the LLM's, or the fallback cards), the retry policy makes exactly the calls
it promises, and afterwards no asyncio task and no connection to the fake is left open. Through
``POST /chat`` the same faults end in an ``end`` frame, with the offline planner answering instead.

Time bounds here are generous ceilings that prove "bounded", never performance claims.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest

from streamforge import protocol
from streamforge.app import create_app
from streamforge.components import Limits, validate_component
from streamforge.config import Settings
from streamforge.planner.factory import build_planner_service
from streamforge.planner.service import LayoutResult, PlannerService
from tests.fakes import faults
from tests.fakes.bedrock import Reply, disconnect, error, text
from tests.fakes.faults import FIRST_COMPONENT, FaultyBedrock, endless, garbage, huge, noise, random_bytes

faulty_bedrock = faults.faulty_bedrock
faulty_anthropic = faults.faulty_anthropic
faulty_openai = faults.faulty_openai

VENDORS = ("bedrock", "anthropic", "openai")
RETRIES = 1  # so "retried" is exactly two calls at the fake
# Bounds of the planner under test, not of the machine: the first Bedrock attempt also loads
# botocore's service model, which on a busy 2-core machine took longer than 0.5 s and turned a
# "throttled, retried once" case into a timeout.
PROVIDER_TIMEOUT = 2.0
STREAM_TOTAL = 4.0
CEILING = 15.0  # seconds: far above any case's expected time; proves the request was bounded

COMPONENTS: list[dict[str, Any]] = [
    FIRST_COMPONENT,
    {"type": "TableA", "data": {"title": "Regions", "columns": ["Region"], "rows": [["Europe"], ["APAC"]]}},
    {
        "type": "ChartComponent",
        "data": {
            "title": "Trend",
            "chart_type": "line",
            "x_axis": ["Jan", "Feb"],
            "series": [{"label": "Revenue", "values": [1, 2]}],
        },
    },
]
PLAN = "$$$" + json.dumps(COMPONENTS) + "$$$"
_SECOND = PLAN.index('{"type"', 10)
# The first component whole and the second begun: what a stream sends before it fails.
FIRST_AND_A_HALF = [PLAN[: _SECOND // 2], PLAN[_SECOND // 2 : _SECOND], PLAN[_SECOND : _SECOND + 25]]

THROTTLED = {
    "bedrock": (429, "ThrottlingException"),
    "anthropic": (429, "rate_limit_error"),
    "openai": (429, "rate_limit_exceeded"),
}
SERVER_ERROR = {
    "bedrock": (500, "InternalServerException"),
    "anthropic": (529, "overloaded_error"),
    "openai": (503, "server_error"),
}


def _cut(pieces: list[str]) -> Reply:
    return Reply("cut", chunks=tuple(pieces))


@dataclass(frozen=True)
class Fault:
    """One fault, and what must come of it when the answer is streamed and when it is not.

    Outcomes: ``retried`` (every attempt made, then the fallback), ``refused`` (one call, not retried,
    then the fallback), ``kept`` (the component completed before the fault is kept, nothing retried),
    ``fallback`` (the fallback, after at most every attempt).
    """

    name: str
    reply: Callable[[str], Reply]
    streamed: str
    whole: str


FAULTS = [
    Fault("timeout", lambda v: text(PLAN, delay=PROVIDER_TIMEOUT * 4), "retried", "retried"),
    Fault("throttled", lambda v: error(*THROTTLED[v]), "retried", "retried"),
    Fault("server_error", lambda v: error(*SERVER_ERROR[v]), "retried", "retried"),
    Fault("connection_reset", lambda v: disconnect(), "retried", "retried"),
    Fault("not_http", lambda v: noise(random_bytes(512)), "retried", "retried"),
    Fault("random_bytes", lambda v: garbage(random_bytes(4096)), "retried", "retried"),
    Fault(
        "random_bytes_mid_stream",
        lambda v: garbage(random_bytes(4096), before=FIRST_AND_A_HALF),
        "kept",
        "retried",
    ),
    Fault("not_json", lambda v: garbage(b"<html><body>502 Bad Gateway</body></html>"), "fallback", "retried"),
    Fault("stops_half_way", lambda v: _cut(FIRST_AND_A_HALF), "kept", "retried"),
    Fault("ten_megabytes", lambda v: huge(10 * 1024 * 1024), "kept", "refused"),
    Fault("never_ends", lambda v: endless(chunk_delay=0.005, before=FIRST_AND_A_HALF[:2]), "kept", "retried"),
]


# -- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture(params=VENDORS)
def vendor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    name: str = request.param
    fake = request.getfixturevalue(f"faulty_{name}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")  # after the fake's fixture clears ANTHROPIC_*
    return name, fake


def llm_settings(base: Settings, vendor: str, fake: Any, *, stream: bool, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "provider": vendor,
        "llm_stream": stream,
        "llm_data": False,
        "offline_last_resort": False,
        "provider_timeout": PROVIDER_TIMEOUT,
        "stream_total_timeout": STREAM_TOTAL,
        "provider_retries": RETRIES,
        "retry_backoff_base": 0.01,
        "retry_backoff_max": 0.02,
        "bedrock_endpoint_url": fake.url,
        "anthropic_base_url": fake.url,
        "openai_base_url": f"{fake.url}/v1",
    }
    values.update(overrides)
    return base.model_copy(update=values)


def open_connections_to(port: int) -> list[Any]:
    """This process's TCP connections to ``port`` that are still open (TIME_WAIT has no owner)."""
    return [
        c
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status != psutil.CONN_TIME_WAIT
    ]


async def assert_nothing_left(tasks_before: set[asyncio.Task[Any]], port: int) -> None:
    """No task started by the request is still alive, and no connection to the fake is open.

    Closing is asynchronous in places (a transport closes on the next loop turn), so this waits up
    to two seconds for both to settle before it fails.
    """
    deadline = time.monotonic() + 2.0
    while True:
        current = asyncio.current_task()
        tasks = {
            t for t in asyncio.all_tasks() if t is not current and not t.done() and not _is_loop_singleton(t)
        } - tasks_before
        sockets = open_connections_to(port)
        if not tasks and not sockets:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: tasks {tasks}, connections {sockets}")
        await asyncio.sleep(0.02)


def _is_loop_singleton(task: asyncio.Task[Any]) -> bool:
    """sse-starlette's shutdown watcher: one per event loop, started by the first SSE response."""
    return getattr(task.get_coro(), "__name__", "") == "_shutdown_watcher"


def port_of(fake: Any) -> int:
    return int(fake.url.rsplit(":", 1)[1].split("/")[0])


async def run_plan(svc: PlannerService, message: str) -> tuple[list[dict[str, Any]], LayoutResult]:
    frames: list[dict[str, Any]] = []
    async for event in svc.stream_layout(message):
        if isinstance(event, LayoutResult):
            return frames, event
        frames.append(event)
    raise AssertionError("stream_layout ended without a LayoutResult")


def assert_valid_components(frames: list[dict[str, Any]], limits: Limits) -> None:
    assert frames, "no component at all"
    for frame in frames:
        assert validate_component(frame, limits) is not None, frame
    ids = [f["id"] for f in frames]
    assert len(ids) == len(set(ids))


# -- the planner service against each vendor ---------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault_ends_in_valid_components_and_leaves_nothing(
    fault: Fault, stream: bool, vendor: tuple[str, Any], settings: Settings
) -> None:
    name, fake = vendor
    fake.default = fault.reply(name)
    tasks_before = set(asyncio.all_tasks())
    svc = await build_planner_service(llm_settings(settings, name, fake, stream=stream))
    started = time.monotonic()
    try:
        frames, result = await run_plan(svc, "revenue dashboard")
    finally:
        await svc.aclose()
    elapsed = time.monotonic() - started

    assert elapsed < CEILING
    assert_valid_components(frames, svc.limits)
    assert result.components == frames
    assert result.errors, "the fault was not reported"
    expected = fault.streamed if stream else fault.whole
    if expected == "retried":
        assert fake.calls == RETRIES + 1
        assert result.fallback
    elif expected == "refused":
        assert fake.calls == 1
        assert result.fallback
    elif expected == "kept":
        assert fake.calls == 1  # text had arrived: a half-sent answer is never asked for again
        assert not result.fallback and result.provider == name
        assert [f["data"]["title"] for f in frames] == ["Revenue"]
    else:
        assert 1 <= fake.calls <= RETRIES + 1
        assert result.fallback
    if stream and fault.name in ("ten_megabytes", "never_ends"):
        # We stopped reading: the fake's next write found the connection closed.
        outcome = fake.wait_stream_ended(0)
        assert outcome.client_left and not outcome.finished
    await assert_nothing_left(tasks_before, port_of(fake))


async def test_an_answer_that_never_ends_is_cut_at_the_total_timeout(
    faulty_openai: Any, settings: Settings
) -> None:
    """Pieces keep coming (so no per-piece timeout fires); the total bound still ends the answer."""
    faulty_openai.default = endless(chunk_delay=0.01)
    svc = await build_planner_service(llm_settings(settings, "openai", faulty_openai, stream=True))
    started = time.monotonic()
    try:
        _, result = await run_plan(svc, "revenue dashboard")
    finally:
        await svc.aclose()
    elapsed = time.monotonic() - started
    assert STREAM_TOTAL <= elapsed < STREAM_TOTAL + PROVIDER_TIMEOUT + 2.0
    assert result.fallback and "did not end" in result.errors[0]
    assert faulty_openai.wait_stream_ended(0).client_left


async def test_a_throttling_storm_is_bounded_by_the_circuit_breaker(
    faulty_anthropic: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten requests into a wall of 429s: after three failed requests the breaker stops calling."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    faulty_anthropic.default = error(429, "rate_limit_error")
    svc = await build_planner_service(
        llm_settings(settings, "anthropic", faulty_anthropic, stream=True, breaker_threshold=3)
    )
    try:
        results = [await run_plan(svc, f"revenue dashboard {i}") for i in range(10)]
    finally:
        await svc.aclose()
    assert faulty_anthropic.calls == 3 * (RETRIES + 1)
    for frames, result in results:
        assert_valid_components(frames, svc.limits)
        assert result.fallback
    assert "paused" in results[-1][1].errors[0]


async def test_concurrent_requests_under_faults_all_end(
    faulty_bedrock: FaultyBedrock, settings: Settings
) -> None:
    """Twenty requests at once while the provider resets, throttles and garbles in turn."""
    script = [disconnect(), error(429, "ThrottlingException"), garbage(random_bytes(256)), text(PLAN)]
    for i in range(40):
        faulty_bedrock.push(script[i % len(script)])
    tasks_before = set(asyncio.all_tasks())
    svc = await build_planner_service(
        llm_settings(settings, "bedrock", faulty_bedrock, stream=True, breaker_threshold=100)
    )
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(run_plan(svc, f"revenue dashboard {i}") for i in range(20))), CEILING
        )
    finally:
        await svc.aclose()
    for frames, _ in results:
        assert_valid_components(frames, svc.limits)
    assert faulty_bedrock.calls <= 20 * (RETRIES + 1)
    await assert_nothing_left(tasks_before, port_of(faulty_bedrock))


# -- through POST /chat --------------------------------------------------------------------------------

_FORMATS: tuple[protocol.Format, ...] = ("text", "sse", "ndjson")


@pytest.mark.parametrize(
    ("fault", "name", "fmt"),
    [(f, VENDORS[i % 3], _FORMATS[(i // 3 + i) % 3]) for i, f in enumerate(FAULTS)],
    ids=[f"{f.name}-{VENDORS[i % 3]}-{_FORMATS[(i // 3 + i) % 3]}" for i, f in enumerate(FAULTS)],
)
async def test_chat_under_a_fault_ends_with_an_end_frame(
    fault: Fault,
    name: str,
    fmt: protocol.Format,
    settings: Settings,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each fault once, the vendors and the three formats in rotation; the offline planner is the
    chain's last resort, so the answer is real components, and the stream ends with ``end``."""
    fake = request.getfixturevalue(f"faulty_{name}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    fake.default = fault.reply(name)
    tasks_before = set(asyncio.all_tasks())
    app = create_app(llm_settings(settings, name, fake, stream=True, offline_last_resort=True))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            started = time.monotonic()
            response = await http.post(
                "/chat", json={"message": "revenue by region"}, headers={"accept": protocol.MEDIA_TYPES[fmt]}
            )
            assert time.monotonic() - started < CEILING
    assert response.status_code == 200
    frames = protocol.decode(response.text, fmt)
    assert frames[-1]["type"] == "end"
    assert not [f for f in frames if f["type"] == "error"]  # a provider's fault is not the request's
    components = [f for f in frames if f["type"] not in protocol.CONTROL_TYPES]
    assert_valid_components(components, Limits.from_settings(settings))
    assert "offline" in frames[-1]["provider"]  # the offline planner answered what the LLM could not
    await assert_nothing_left(tasks_before, port_of(fake))


async def test_the_leak_check_sees_a_live_connection(faulty_openai: Any, settings: Settings) -> None:
    """The check above is not vacuous: the provider's kept-alive connection shows until it is closed."""
    faulty_openai.default = text(PLAN)
    svc = await build_planner_service(llm_settings(settings, "openai", faulty_openai, stream=False))
    try:
        _, result = await run_plan(svc, "revenue dashboard")
        assert not result.fallback
        assert open_connections_to(port_of(faulty_openai))
    finally:
        await svc.aclose()
    assert not open_connections_to(port_of(faulty_openai))


async def test_a_pathological_answer_is_parsed_off_the_event_loop(
    faulty_openai: Any, settings: Settings
) -> None:
    """json-repair needs about a second of CPU for 12,000 unclosed brackets; the loop must not wait."""
    faulty_openai.default = text("[" + "{" * 12_000)
    svc = await build_planner_service(llm_settings(settings, "openai", faulty_openai, stream=True))
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    try:
        frames, result = await run_plan(svc, "revenue dashboard")
    finally:
        beat.cancel()
        await svc.aclose()
    assert result.fallback and frames
    assert max(gaps, default=0.0) < 0.5  # on the loop, a slow parse would be one long gap
