"""Time to the first component against time to the last, for a streamed three-component plan.

The fake Bedrock server streams the plan at a fixed rate (4 characters, about one token, every 5 ms)
through the real aioboto3 event-stream decoding. The earlier design waited for the whole answer, a
ratio of 1.0; parsing the growing text sends each component as soon as it is whole. The ratio
``first / last`` is measured over several runs in this process and the median reported.

Run: ``uv run python -m bench.bench_streaming``
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from tests.fakes.bedrock import FakeBedrock, stream
from tests.fakes.plans import THREE_COMPONENTS, framed

from streamforge.components import Limits
from streamforge.config import Settings
from streamforge.planner.cache import MemoryCache
from streamforge.planner.llm import LLMPlanner
from streamforge.planner.service import LayoutResult, PlannerService
from streamforge.providers.bedrock import BedrockProvider

TOKEN_CHARS = 4
TOKEN_DELAY = 0.005


def _plan() -> str:
    return framed(THREE_COMPONENTS)


async def one_run(fake: FakeBedrock, svc: PlannerService) -> tuple[float, float]:
    plan = _plan()
    fake.push(
        stream([plan[i : i + TOKEN_CHARS] for i in range(0, len(plan), TOKEN_CHARS)], chunk_delay=TOKEN_DELAY)
    )
    started = time.perf_counter()
    arrivals = []
    async for event in svc.stream_layout("revenue dashboard"):
        if not isinstance(event, LayoutResult):
            arrivals.append(time.perf_counter() - started)
    assert len(arrivals) == 3, arrivals
    return arrivals[0], arrivals[-1]


async def main(runs: int = 7) -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    with FakeBedrock() as fake:
        settings = Settings(provider="bedrock", bedrock_endpoint_url=fake.url, _env_file=None)  # type: ignore[call-arg]
        limits = Limits()
        svc = PlannerService(
            [LLMPlanner(BedrockProvider(settings), settings, limits)],
            MemoryCache(ttl=0, max_entries=1),
            limits,
        )
        try:
            results = [await one_run(fake, svc) for _ in range(runs)]
        finally:
            await svc.aclose()
    first = statistics.median(r[0] for r in results)
    last = statistics.median(r[1] for r in results)
    ratio = statistics.median(r[0] / r[1] for r in results)
    print("| measure | median |")
    print("| --- | --- |")
    print(f"| time to first component | {first * 1000:.0f} ms |")
    print(f"| time to last component | {last * 1000:.0f} ms |")
    print(f"| first / last (whole-answer design: 1.00) | {ratio:.2f} |")
    print(
        f"\n{runs} runs; {len(_plan())} characters streamed {TOKEN_CHARS} at a time "
        f"every {TOKEN_DELAY * 1000:g} ms."
    )


if __name__ == "__main__":
    asyncio.run(main())
