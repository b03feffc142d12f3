"""/chat end to end with the Bedrock planner: the real aioboto3 client against the fake Bedrock server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from streamforge import protocol
from streamforge.app import create_app
from streamforge.config import Settings
from tests.fakes.bedrock import FakeBedrock, stream

PLAN = (
    "Here you go:\n$$$"
    + json.dumps(
        [
            {
                "type": "SimpleComponent",
                "data": {"title": "Revenue", "value": 1250000, "unit": "USD", "delta": "+8%"},
            },
            {
                "type": "ChartComponent",
                "data": {
                    "title": "Revenue by month",
                    "chart_type": "line",
                    "x_axis": ["Jan", "Feb", "Mar"],
                    "series": [{"label": "Revenue", "values": [1, 2, 3]}],
                },
            },
            {
                "type": "ChartComponent",
                "data": {
                    "title": "Broken",
                    "chart_type": "pie",
                    "x_axis": ["a"],
                    "series": [{"label": "x", "values": [-1]}],
                },
            },
        ]
    )
    + "$$$"
)


def app_settings(fake: FakeBedrock, data_dir: Path) -> Settings:
    return Settings(
        provider="bedrock",
        bedrock_endpoint_url=fake.url,
        data_dir=data_dir,
        state_url="memory://",
        llm_data=False,
        _env_file=None,
    )  # type: ignore[call-arg]


async def test_chat_streams_a_bedrock_plan_in_every_format(fake_bedrock: FakeBedrock, data_dir: Path) -> None:
    fake_bedrock.push(stream([PLAN[i : i + 40] for i in range(0, len(PLAN), 40)]))
    app = create_app(app_settings(fake_bedrock, data_dir))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client,
    ):
        response = await client.post(
            "/chat", json={"message": "analyze revenue"}, headers={"Accept": "text/event-stream"}
        )
        frames = protocol.decode_sse(response.text)
        assert [f["type"] for f in frames] == [
            "SimpleComponent",
            "ChartComponent",
            "end",
        ]  # the bad pie dropped
        assert frames[-1]["provider"] == "bedrock" and frames[-1]["from_cache"] is False
        assert all(f["data"]["sample"] is True for f in frames[:-1])  # no SQL: badged as sample data
        again = protocol.decode_text((await client.post("/chat", json={"message": "Analyze  revenue"})).text)
        assert again[-1]["from_cache"] is True and fake_bedrock.calls == 1
        assert {f["id"] for f in again[:-1]}.isdisjoint(f["id"] for f in frames[:-1])
        metrics = (await client.get("/metrics")).text
        assert f'streamforge_llm_answer_chars_total{{provider="bedrock"}} {float(len(PLAN))}' in metrics


async def test_chat_falls_back_to_offline_when_bedrock_is_down(
    fake_bedrock: FakeBedrock, data_dir: Path
) -> None:
    assert fake_bedrock.default is None  # with nothing scripted, every call answers 500
    settings = app_settings(fake_bedrock, data_dir).model_copy(
        update={"provider_retries": 1, "retry_backoff_base": 0.01}
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client,
    ):
        frames = protocol.decode_ndjson(
            (
                await client.post(
                    "/chat",
                    json={"message": "analyze revenue by region"},
                    headers={"Accept": "application/x-ndjson"},
                )
            ).text
        )
    end = frames[-1]
    assert end["type"] == "end" and end["provider"] == "offline"  # the last resort answered, with real data
    assert fake_bedrock.calls == 2
    assert all(f["data"]["source"] for f in frames[:-1] if f["type"] == "ChartComponent")
