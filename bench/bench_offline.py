"""Offline planner latency: median cold plan (no plan cache) on the sample and on 1 million orders.

"Cold" means every call plans from scratch: understanding, SQL generation, the guard, the queries and
rendering all run each time. What is kept across calls is what a running server keeps: the data
source's connection and its introspected schema (introspection time is reported on its own line).

The 1M-order databases are built here from the sample: the orders table is repeated 34 times with
fresh ids (same dates, so the same seasonality), once in SQLite and once in DuckDB. Each figure is
reported with its ratio to a bare ``SELECT COUNT(*) FROM orders`` run through the same source in the
same process, so the numbers travel between machines.

Per set, p50 and p95 of the per-question medians (each question planned cold ``rounds`` times) and
their ratio to the baseline: the sample set is the requests below on the sample database; the
nvbench-dev set is every question of ``../shared/eval/nvbench-dev/items.jsonl`` (read from beside the
repository, never copied into it; skipped with a message when it is missing), each planned on its own
database with one DataSource and OfflinePlanner per database. There the baseline is a bare
``SELECT COUNT(*)`` on the database's first table, and a question's ratio is to its own database's
baseline; introspection (opening the database and building the planner's vocabulary) is reported
on its own line, per database.

Run: ``uv run python -m bench.bench_offline`` (prints Markdown tables; ``--quick`` for fewer rounds).
"""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from streamforge.components import Limits
from streamforge.data.sample import write_sample_db
from streamforge.data.source import DataSource
from streamforge.offline.planner import OfflinePlanner

# Varied requests of every shape; not the scored query set.
QUERIES = [
    "show me sales trends",
    "revenue by region",
    "top 5 products by revenue",
    "share of orders by channel",
    "how many users do we have",
    "total revenue in Q4 2025",
    "compare Q1 vs Q2 revenue",
    "revenue over time by region",
    "relationship between quantity and revenue",
    "average session duration by feature",
    "daily active users over time",
    "list recent orders",
    "new signups per month",
    "orders by status",
    "what is the average order value",
    "distribution of revenue",
    "pie chart of revenue by product category",
    "which country has the most users",
    "revenue in Europe vs APAC",
    "dashboard overview",
]
_COPIES = 34  # 30,000 sample orders x 34 = 1,020,000
# nvBench questions on Spider databases, kept beside the repository (never copied into it).
NVBENCH_DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "nvbench-dev"


def _orders_columns(conn: sqlite3.Connection) -> list[str]:
    return [r[1] for r in conn.execute("PRAGMA table_info(orders)")]


def build_sqlite_1m(sample: Path, target: Path) -> Path:
    target.write_bytes(sample.read_bytes())
    conn = sqlite3.connect(target)
    cols = _orders_columns(conn)
    rest = ", ".join(cols[1:])
    conn.executescript(
        f"""
        PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
        CREATE TABLE orders_base AS SELECT * FROM orders;
        WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {_COPIES - 1})
        INSERT INTO orders SELECT order_id + i * 30000, {rest} FROM orders_base, k;
        DROP TABLE orders_base;
        ANALYZE;
        """
    )
    conn.close()
    return target


def build_duckdb_1m(sample: Path, target: Path, scratch: Path) -> Path:
    lite = sqlite3.connect(sample)
    db = duckdb.connect(str(target))
    for table in ("users", "products", "orders", "sessions"):
        cur = lite.execute(f"SELECT * FROM {table}")
        path = scratch / f"{table}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([d[0] for d in cur.description])
            writer.writerows(cur)
        source = f"read_csv_auto('{path}')"
        if table == "orders":
            db.execute(
                f"CREATE TABLE orders AS SELECT * REPLACE (order_id + k * 30000 AS order_id) "
                f"FROM {source}, range({_COPIES}) AS r(k)"
            )
        else:
            db.execute(f"CREATE TABLE {table} AS SELECT * FROM {source}")
    db.close()
    lite.close()
    return target


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _percentile(samples: list[float], pct: int) -> float:
    """The ``pct``-th percentile (inclusive method: within the observed range)."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def _percentile_ms(samples: list[float], pct: int) -> float:
    return _percentile(samples, pct) * 1000


async def measure(location: Path, rounds: int) -> dict[str, Any]:
    t = time.perf_counter()
    source = DataSource(location)
    planner = OfflinePlanner(source, Limits())
    await planner.prepare()
    introspect = time.perf_counter() - t
    baseline = []
    for _ in range(rounds * 5):
        t = time.perf_counter()
        await source.run("SELECT COUNT(*) FROM orders")
        baseline.append(time.perf_counter() - t)
    per_query: list[float] = []
    everything: list[float] = []
    for message in QUERIES:
        samples = []
        for _ in range(rounds):
            t = time.perf_counter()
            await planner.plan(message)
            samples.append(time.perf_counter() - t)
        per_query.append(statistics.median(samples))
        everything += samples
    source.close()
    return {
        "introspect_ms": introspect * 1000,
        "baseline_ms": _median_ms(baseline),
        "plan_median_ms": _median_ms(per_query),
        "plan_p90_ms": statistics.quantiles(everything, n=10)[-1] * 1000,
        "plan_max_query_ms": max(per_query) * 1000,
        "per_query": per_query,
    }


@dataclass
class SetResult:
    """One set's cold plans: each question's median time (s), and its ratio to its database's baseline."""

    name: str
    questions: int
    databases: int
    plans: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    baselines: list[float] = field(default_factory=list)
    introspections: list[float] = field(default_factory=list)
    slowest: list[tuple[float, str, str, str]] = field(default_factory=list)  # (s, id, db_id, query)
    failures: int = 0  # plans that raised (each round counts)


def load_nvbench(folder: Path) -> dict[Path, list[dict[str, Any]]] | None:
    """The nvbench-dev questions grouped by their database file, or ``None`` when the set is missing."""
    items_file = folder / "items.jsonl"
    if not items_file.is_file():
        return None
    groups: dict[Path, list[dict[str, Any]]] = {}
    with items_file.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                groups.setdefault(folder / item["database"], []).append(item)
    return groups


async def measure_nvbench(groups: dict[Path, list[dict[str, Any]]], rounds: int) -> SetResult:
    result = SetResult("nvbench-dev", sum(len(g) for g in groups.values()), len(groups))
    timed: list[tuple[float, str, str, str]] = []
    for location, items in groups.items():
        t = time.perf_counter()
        source = DataSource(location)
        planner = OfflinePlanner(source, Limits())
        await planner.prepare()
        result.introspections.append(time.perf_counter() - t)
        first = source.tables[0]
        baseline = []
        for _ in range(rounds * 5):
            t = time.perf_counter()
            await source.run(f"SELECT COUNT(*) FROM {source.quote(first)}")
            baseline.append(time.perf_counter() - t)
        base = statistics.median(baseline)
        result.baselines.append(base)
        for item in items:
            samples = []
            for _ in range(rounds):
                t = time.perf_counter()
                try:
                    await planner.plan(item["query"])
                except Exception as exc:  # timed all the same; counted and named on stderr
                    result.failures += 1
                    print(f"{item['id']}: {type(exc).__name__}: {exc}", file=sys.stderr)
                samples.append(time.perf_counter() - t)
            took = statistics.median(samples)
            result.plans.append(took)
            result.ratios.append(took / base)
            timed.append((took, item["id"], item["db_id"], item["query"]))
        source.close()
    result.slowest = sorted(timed, reverse=True)[:10]
    return result


def sample_set(r: dict[str, Any]) -> SetResult:
    base = r["baseline_ms"] / 1000
    return SetResult(
        "sample queries (sample SQLite)",
        len(QUERIES),
        1,
        plans=list(r["per_query"]),
        ratios=[q / base for q in r["per_query"]],
        baselines=[base],
        introspections=[r["introspect_ms"] / 1000],
    )


def print_sets(sets: list[SetResult], rounds: int) -> None:
    print(f"\nCold plan per set: p50 / p95 of the per-question medians ({rounds} rounds each).\n")
    print(
        "| set | questions | databases | p50 plan | p95 plan | slowest | COUNT(*) baseline (median) "
        "| p50 ratio | p95 ratio | introspection p50 / p95 / total |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in sets:
        print(
            f"| {s.name} | {s.questions} | {s.databases} | {_percentile_ms(s.plans, 50):.1f} ms "
            f"| {_percentile_ms(s.plans, 95):.1f} ms | {max(s.plans) * 1000:.1f} ms "
            f"| {_median_ms(s.baselines):.2f} ms | {_percentile(s.ratios, 50):.1f}x "
            f"| {_percentile(s.ratios, 95):.1f}x | {_percentile_ms(s.introspections, 50):.0f} / "
            f"{_percentile_ms(s.introspections, 95):.0f} / {sum(s.introspections) * 1000:.0f} ms |"
        )
    for s in sets:
        if s.failures:
            print(f"\n{s.name}: {s.failures} plans raised (named on standard error).")
        if s.slowest:
            print(f"\nSlowest {len(s.slowest)} questions of {s.name} (by id; the text stays in the set):\n")
            print("| question | database | median plan |")
            print("|---|---|---:|")
            for took, ident, db, query in s.slowest:
                print(f"| {ident} | {db} | {took * 1000:.1f} ms |")
                print(f"  {ident}: {query}", file=sys.stderr)


def main() -> None:
    rounds = 3 if "--quick" in sys.argv else 7
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        sample = write_sample_db(folder / "sample.sqlite")
        build = time.perf_counter() - t
        print(f"sample build: {build * 1000:.0f} ms", file=sys.stderr)
        t = time.perf_counter()
        big_sqlite = build_sqlite_1m(sample, folder / "orders-1m.sqlite")
        big_duckdb = build_duckdb_1m(sample, folder / "orders-1m.duckdb", folder)
        print(f"1M builds: {(time.perf_counter() - t) * 1000:.0f} ms", file=sys.stderr)
        rows = [
            ("sample (SQLite, 30k orders)", asyncio.run(measure(sample, rounds))),
            ("1M orders, DuckDB", asyncio.run(measure(big_duckdb, rounds))),
            ("1M orders, SQLite", asyncio.run(measure(big_sqlite, max(1, rounds // 2)))),
        ]
    print(f"Offline planner, {len(QUERIES)} requests, median of per-request medians ({rounds} rounds).\n")
    print(
        "| database | median plan | p90 plan | slowest request | COUNT(*) baseline | ratio | introspection |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        ratio = r["plan_median_ms"] / r["baseline_ms"] if r["baseline_ms"] else float("nan")
        print(
            f"| {name} | {r['plan_median_ms']:.1f} ms | {r['plan_p90_ms']:.1f} ms "
            f"| {r['plan_max_query_ms']:.1f} ms | {r['baseline_ms']:.2f} ms | {ratio:.1f}x "
            f"| {r['introspect_ms']:.0f} ms |"
        )
    sets = [sample_set(rows[0][1])]
    groups = load_nvbench(NVBENCH_DEV)
    if groups is None:
        print(f"nvbench-dev set skipped: no {NVBENCH_DEV / 'items.jsonl'}", file=sys.stderr)
    else:
        t = time.perf_counter()
        sets.append(asyncio.run(measure_nvbench(groups, rounds)))
        print(f"nvbench-dev: {(time.perf_counter() - t):.0f} s", file=sys.stderr)
    print_sets(sets, rounds)


if __name__ == "__main__":
    main()
