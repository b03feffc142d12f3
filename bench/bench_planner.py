"""Planner overhead, measured as medians and ratios against baselines run in the same process.

1. Cache hit: ``generate_layout`` on a warm cache.
2. Cold path: ``generate_layout`` with the cache cleared each time, against the fake Bedrock server
   answering at once; the baseline is the bare aioboto3 ``invoke_model`` call to the same server, so
   the difference is what the planner itself costs (prompt, parse, validation, cache, single-flight).
3. ``/chat`` on a cache hit against a bare endpoint of the same server that returns the same bytes,
   both over a real socket (uvicorn on 127.0.0.1), so the ratio is the price of the planner path.

Run: ``uv run python -m bench.bench_planner`` (prints a Markdown table).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import uvicorn
from fastapi.responses import PlainTextResponse
from tests.conftest import free_port, wait_for_http
from tests.fakes.bedrock import FakeBedrock, text
from tests.fakes.plans import THREE_COMPONENTS, framed

from streamforge.app import create_app
from streamforge.config import Settings
from streamforge.planner.factory import build_planner_service

PLAN = framed(THREE_COMPONENTS)


async def median_ms(fn: Callable[[], Awaitable[object]], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _aws_env() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )


async def planner_numbers(fake: FakeBedrock, runs: int) -> dict[str, float]:
    settings = Settings(provider="bedrock", bedrock_endpoint_url=fake.url, _env_file=None)  # type: ignore[call-arg]
    service = await build_planner_service(settings)
    try:
        await service.generate_layout("show me revenue")  # warm: client created, cache filled
        hit = await median_ms(lambda: service.generate_layout("show me revenue"), runs)

        async def cold() -> None:
            await service.clear_cache()
            await service.generate_layout("show me revenue")

        cold_ms = await median_ms(cold, runs)
        provider = service.planners[0].provider  # type: ignore[attr-defined]
        request = service.planners[0].request_for("show me revenue", None)  # type: ignore[attr-defined]
        raw_ms = await median_ms(lambda: provider.complete(request), runs)
    finally:
        await service.aclose()
    return {"hit": hit, "cold": cold_ms, "raw": raw_ms}


def chat_numbers(fake: FakeBedrock, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            provider="bedrock",
            bedrock_endpoint_url=fake.url,
            data_dir=Path(data_dir),
            state_url="memory://",
            rate_limit=None,
            _env_file=None,
        )  # type: ignore[call-arg]
        app = create_app(settings)
        body: dict[str, str] = {}

        @app.post("/bench-bare")
        async def bare() -> PlainTextResponse:  # the same bytes, with none of the work
            return PlainTextResponse(body["text"])

        app.router.routes.insert(0, app.router.routes.pop())  # ahead of the web page's catch-all mount

        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/healthz")
            with httpx.Client(base_url=base, timeout=30) as client:
                payload = {"message": "dashboard of revenue"}
                body["text"] = client.post("/chat", json=payload).text  # warm the cache
                routes = {
                    "chat": lambda: client.post("/chat", json=payload),
                    "bare": lambda: client.post("/bench-bare", json=payload),
                }
                times: dict[str, list[float]] = {"chat": [], "bare": []}
                for _ in range(runs):  # interleaved so drift hits both alike
                    for name, call in routes.items():
                        started = time.perf_counter()
                        call().raise_for_status()
                        times[name].append((time.perf_counter() - started) * 1000)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        return {name: statistics.median(values) for name, values in times.items()}


def main(runs: int = 200) -> None:
    _aws_env()
    with FakeBedrock() as fake:
        fake.default = text(PLAN)
        planner = asyncio.run(planner_numbers(fake, runs))
        chat = chat_numbers(fake, runs)
    print("| measure | median |")
    print("| --- | --- |")
    print(f"| cache hit, `generate_layout` | {planner['hit']:.3f} ms |")
    print(f"| cold plan, fake Bedrock answering at once | {planner['cold']:.2f} ms |")
    print(f"| baseline: bare aioboto3 `invoke_model` to the same fake | {planner['raw']:.2f} ms |")
    print(
        f"| planner overhead on the cold path (cold - baseline) | {planner['cold'] - planner['raw']:.2f} ms |"
    )
    print(f"| cold / baseline | {planner['cold'] / planner['raw']:.2f}x |")
    print(f"| `/chat` on a cache hit, over a socket | {chat['chat']:.2f} ms |")
    print(f"| bare endpoint returning the same bytes | {chat['bare']:.2f} ms |")
    print(f"| `/chat` cache hit / bare endpoint | {chat['chat'] / chat['bare']:.2f}x |")
    print(f"\n{runs} runs each; {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
