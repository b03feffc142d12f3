"""Load benchmark: a real ``streamforge serve`` subprocess on loopback, many concurrent streaming clients.

What it measures, with the offline planner over the bundled sample database:

1. warm cache, 50 concurrent clients for 30 s; then 200 concurrent clients for 30 s. Each client posts
   one of a few questions (all planned once beforehand, so every answer is a cache hit), reads the
   whole stream to its ``end`` frame, and asks again at once;
2. 1,000 distinct questions (measures x dimensions x periods of the sample data, each asked once, so
   none is in the cache), 50 at a time.

For each: requests, errors (a status other than 200, a stream without its ``end`` frame, or a
transport error), requests per second, and p50/p99 of the time to the whole answer. The server's
resident memory is read before the first run (after warm-up) and after the last; more than 10 %
growth is flagged. The server runs with ``STREAMFORGE_RATE_LIMIT=1000000/minute`` (the limiter still
runs on every request), ``STREAMFORGE_STATE_URL=memory://`` (conversations in the process) and its
default in-process plan cache.

Bounded and self-stopping: loopback only, every phase ends at its time or request count, every request
has a timeout, and the server is terminated at the end (killed if it does not stop). Clients and
server share the machine, so the numbers are a floor for the server, not a ceiling.

Run: ``uv run python -m bench.load`` (``--quick`` for 5 s phases and 200 distinct questions;
``--write`` to rewrite ``docs/benchmarks-load.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import random
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks-load.md"
END_MARK = b'"type":"end"'
REQUEST_TIMEOUT = 60.0

WARM_QUESTIONS = [
    "revenue by region",
    "orders by month",
    "revenue by channel in 2025",
    "top 10 products by revenue",
    "average discount by category",
    "revenue dashboard",
    "sessions by feature",
    "signups by month in 2024",
]

MEASURES = ["revenue", "number of orders", "quantity sold", "average discount", "average revenue"]
DIMENSIONS = ["region", "channel", "status", "product category", "customer plan", "country"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]  # fmt: skip
PERIODS = (
    ["in 2024", "in 2025", "in the last 3 months", "in the last 6 months", "in the last 12 months"]
    + [f"in Q{q} {y}" for y in (2024, 2025) for q in range(1, 5)]
    + [f"in {m} {y}" for y in (2024, 2025) for m in MONTHS]
)


def distinct_questions(n: int) -> list[str]:
    """``n`` different questions the sample data can answer, in a fixed shuffled order."""
    combos = [f"{m} by {d} {p}" for m, d, p in itertools.product(MEASURES, DIMENSIONS, PERIODS)]
    random.Random(20240101).shuffle(combos)
    if n > len(combos):
        raise ValueError(f"only {len(combos)} distinct questions are defined")
    return combos[:n]


@dataclass
class Phase:
    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    server_cpu: float = 0.0  # CPU seconds the server used during the run
    client_cpu: float = 0.0  # CPU seconds this (client) process used during the run

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors

    def failed(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def row(self) -> str:
        rps = self.requests / self.elapsed if self.elapsed else 0.0
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.error_kinds.items())) or "-"
        return (
            f"| {self.name} | {self.concurrency} | {self.elapsed:.1f} s | {self.requests} | {self.errors} "
            f"({kinds}) | {rps:.1f} | {self.percentile(0.5) * 1000:.0f} ms | "
            f"{self.percentile(0.99) * 1000:.0f} ms | {self.server_cpu / self.elapsed * 100:.0f} % | "
            f"{self.client_cpu / self.elapsed * 100:.0f} % |"
        )


async def ask(client: httpx.AsyncClient, message: str, phase: Phase) -> None:
    started = time.perf_counter()
    try:
        async with client.stream("POST", "/chat", json={"message": message}) as response:
            if response.status_code != 200:
                await response.aread()
                phase.failed(f"HTTP {response.status_code}")
                return
            tail = b""
            async for chunk in response.aiter_bytes():
                tail = (tail + chunk)[-4096:]
            if END_MARK not in tail:
                phase.failed("no end frame")
                return
    except httpx.HTTPError as exc:
        phase.failed(type(exc).__name__)
        return
    phase.latencies.append(time.perf_counter() - started)


_TLS = ssl.create_default_context()  # unused on http://, but httpx builds one per client otherwise


@contextlib.asynccontextmanager
async def _clients(base: str, n: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per simulated user, each with its own single kept-alive connection, made before
    the clock starts. (One pool shared by hundreds of connections costs the client more CPU per
    request than the server spends on it, and so does building a client.)"""
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, limits=one, timeout=REQUEST_TIMEOUT, verify=_TLS)
            )
            for _ in range(n)
        ]


async def for_a_while(base: str, phase: Phase, seconds: float, questions: list[str]) -> Phase:
    """``phase.concurrency`` clients, each asking again as soon as its answer ends, for ``seconds``."""
    async with _clients(base, phase.concurrency) as clients:
        stop = time.perf_counter() + seconds

        async def one_client(i: int) -> None:
            for n in itertools.count():
                if time.perf_counter() >= stop:
                    return
                await ask(clients[i], questions[(i + n) % len(questions)], phase)

        started = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(phase.concurrency)))
        phase.elapsed = time.perf_counter() - started
    return phase


async def each_once(base: str, phase: Phase, questions: list[str]) -> Phase:
    """Every question once, ``phase.concurrency`` at a time."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for q in questions:
        queue.put_nowait(q)
    async with _clients(base, phase.concurrency) as clients:

        async def worker(client: httpx.AsyncClient) -> None:
            while not queue.empty():
                await ask(client, queue.get_nowait(), phase)

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        phase.elapsed = time.perf_counter() - started
    return phase


def start_server(data_dir: Path, log: Path, workers: int, state: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        {
            "STREAMFORGE_DATA_DIR": str(data_dir),
            "STREAMFORGE_RATE_LIMIT": "1000000/minute",
            "STREAMFORGE_LOG_LEVEL": "warning",
        }
    )
    if state == "memory":
        env["STREAMFORGE_STATE_URL"] = "memory://"  # unset: SQLite under the data directory
    command = [sys.executable, "-m", "streamforge", "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise TimeoutError("the server did not start within 60 s")


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system) of the server and its worker processes so far."""
    root = psutil.Process(process.pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


async def measured(process: subprocess.Popen[bytes], run: Awaitable[Phase]) -> Phase:
    """``run``, with the CPU time the server and this client process spent on it."""
    server, client = cpu_seconds(process), time.process_time()
    phase = await run
    phase.server_cpu = cpu_seconds(process) - server
    phase.client_cpu = time.process_time() - client
    return phase


def rss_mib(process: subprocess.Popen[bytes]) -> float:
    """Resident memory of the server and its worker processes, in MiB."""
    root = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{psutil.cpu_count(logical=True)} logical cores ({model or cpu}), {memory:.0f} GiB memory, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


@dataclass
class Result:
    phases: list[Phase]
    rss: dict[str, float]  # MiB at each checkpoint
    log_tail: str


async def run(seconds: float, distinct: int, workers: int, state: str) -> Result:
    with tempfile.TemporaryDirectory(prefix="streamforge-load-") as tmp:
        data_dir = Path(tmp)
        process, base = start_server(data_dir, data_dir / "server.log", workers, state)
        rss: dict[str, float] = {}
        try:
            warm = Phase("warm-up (each question once)", 1)
            for q in WARM_QUESTIONS * 2:  # the second pass is served from the cache
                await each_once(base, warm, [q])
            if warm.errors:
                raise RuntimeError(f"warm-up failed: {warm.error_kinds}")
            rss["after warm-up"] = rss_mib(process)
            phases = [
                await measured(process, for_a_while(base, Phase("warm cache", 50), seconds, WARM_QUESTIONS))
            ]
            rss["after 50 clients"] = rss_mib(process)
            phases.append(
                await measured(process, for_a_while(base, Phase("warm cache", 200), seconds, WARM_QUESTIONS))
            )
            rss["after 200 clients"] = rss_mib(process)
            uncached = Phase(f"{distinct} distinct, uncached", 50)
            phases.append(await measured(process, each_once(base, uncached, distinct_questions(distinct))))
            rss["after the uncached run"] = rss_mib(process)
            log_tail = (data_dir / "server.log").read_text()[-1500:]
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return Result(phases, rss, log_tail)


def report(result: Result, workers: int, state: str) -> str:
    # Filling what is bounded (the rate limiter's one-minute window, the session store's cap, the
    # database's page cache) happens in the first run; a leak would go on growing in the second.
    first = (result.rss["after 50 clients"] - result.rss["after warm-up"]) / result.rss["after warm-up"] * 100
    base = result.rss["after 50 clients"]
    growth = (result.rss["after 200 clients"] - base) / base * 100
    verdict = "within the 10 % bound" if growth <= 10 else "OVER the 10 % bound"
    rss = ", ".join(f"{v:.0f} MiB {k}" for k, v in result.rss.items())
    lines = [
        "| run | clients | time | requests | errors | requests/s | p50 | p99 | server CPU | client CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(p.row() for p in result.phases),
        "",
        f"Server: {workers} worker{'s' if workers > 1 else ''}, conversations in "
        f"{'memory (memory://)' if state == 'memory' else 'SQLite (the default)'}. "
        f"RSS: {rss}. First run {first:+.1f} %, second run {growth:+.1f} % ({verdict}).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s phases and 200 distinct questions")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each warm-cache run")
    parser.add_argument("--distinct", type=int, default=1000, help="distinct uncached questions")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--state",
        choices=["sqlite", "memory", "both"],
        default="both",
        help="where the server keeps conversations (both: one run each)",
    )
    parser.add_argument("--write", action="store_true", help=f"write the results to {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else min(args.seconds, 120.0)
    distinct = 200 if args.quick else min(args.distinct, 2000)
    print(f"Machine: {machine()}")
    tables = {}
    for state in ["sqlite", "memory"] if args.state == "both" else [args.state]:
        result = asyncio.run(run(seconds, distinct, args.workers, state))
        tables[state] = report(result, args.workers, state)
        print("\n" + tables[state])
        if any(p.errors for p in result.phases):
            print("\nServer log tail:\n" + result.log_tail, file=sys.stderr)
    if args.write:
        table = "\n\n".join(tables.values())
        DOC.write_text(DOC_TEMPLATE.format(machine=machine(), table=table, seconds=seconds))
        print(f"\nwrote {DOC.relative_to(ROOT)}")


DOC_TEMPLATE = """# Load benchmark

Command: `uv run python -m bench.load --write` (about four minutes; `--quick` for a short run,
`--state sqlite|memory` for one of the two runs). It rewrites this file up to "Findings", which
is written by hand from the run.

A real `streamforge serve` subprocess (one worker) on 127.0.0.1, the offline planner over the bundled
sample database (SQLite, 30,000 orders), the in-process plan cache, and
`STREAMFORGE_RATE_LIMIT=1000000/minute` (the limiter runs on every request but never refuses). The
whole benchmark runs twice: with conversations in SQLite (the default, `STREAMFORGE_STATE_URL` unset)
and in memory (`STREAMFORGE_STATE_URL=memory://`). Clients are `httpx.AsyncClient`s in one process
on the same machine, one client (and one kept-alive connection) per simulated user, all made before
the clock starts: each posts to `/chat`, reads the `$$$` stream to its `end` frame, and asks again at
once. Latency is the time to the whole answer (the `end` frame), not to the first byte.

- **warm cache**: eight questions, each planned once before the runs, so every answer is a cache hit
  ({seconds:.0f} s per run, 50 then 200 clients);
- **distinct, uncached**: measures x dimensions x periods of the sample data ("average discount by
  customer plan in Q3 2025"), every question asked once by 50 clients, so each is planned and its SQL
  run.

An error is a status other than 200, a stream without its `end` frame, or a transport error. CPU is
the share of one core that the server (all its processes) and the client process used during the run.
Memory (RSS) is the server's, read after warm-up, after each warm-cache run and after the uncached
run. The first run fills what is bounded (the rate limiter's one-minute window, the `memory://`
session store's cap of `STREAMFORGE_MAX_MEMORY_SESSIONS`, SQLite's page cache); the bound of at most
10 % growth applies to the second run, where a leak would keep growing. The uncached run fills the
plan cache, bounded by `STREAMFORGE_CACHE_MAX_ENTRIES`.

Machine: {machine}.

{table}

## Reading the numbers

- Client and server share the machine's two cores, so these are floors for the server. The machine
  is also shared with other work: an earlier run on a busy machine measured less than half these
  rates (see Findings).
- A cache hit still costs a session (created, then saved with the answer), the rate-limit check, a
  fresh id and timestamp for every component, and framing; an uncached question adds the offline
  planner's understanding, SQL and rendering (see `docs/benchmarks-offline.md` for the planner alone).
- With 200 clients on one worker, requests queue in the event loop: throughput stays about flat and
  latency grows with the queue, as expected for one process. More throughput needs more processes:
  `streamforge serve --workers N` with Redis and PostgreSQL (see `docs/deploy.md`).
"""


if __name__ == "__main__":
    main()
