"""The sample database: deterministic, the promised tables and ranges, safe to build concurrently."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from streamforge.data.sample import SAMPLE_FILENAME, ensure_sample_db, write_sample_db
from tests.fixtures import dbs

# Shared fixtures (see tests/fixtures/dbs.py).
sample_path = dbs.sample_path


def _dump(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        rows: list[tuple[object, ...]] = []
        for table in ("users", "products", "orders", "sessions"):
            rows += conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        return rows
    finally:
        conn.close()


def test_two_builds_hold_the_same_rows(tmp_path: Path) -> None:
    a = write_sample_db(tmp_path / "a.sqlite")
    b = write_sample_db(tmp_path / "b.sqlite")
    assert _dump(a) == _dump(b)


def test_content_matches_the_issue(sample_path: Path) -> None:
    conn = sqlite3.connect(sample_path)
    try:
        counts = {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("users", "products", "orders", "sessions")
        }
        assert counts == {"users": 2000, "products": 40, "orders": 30000, "sessions": 20000}
        assert conn.execute("SELECT MIN(order_date), MAX(order_date) FROM orders").fetchone() == (
            "2024-01-01",
            "2025-12-31",
        )
        regions = {r for (r,) in conn.execute("SELECT DISTINCT region FROM orders")}
        assert regions == {"North America", "Europe", "APAC", "LATAM"}
        features = {r for (r,) in conn.execute("SELECT DISTINCT feature FROM sessions")}
        assert features == {"Dashboard", "Reports", "Settings", "API"}
        # growth and seasonality: 2025 beats 2024, and Q4 beats Q3 in both years
        by_year = dict(
            conn.execute("SELECT substr(order_date, 1, 4), SUM(revenue) FROM orders GROUP BY 1").fetchall()
        )
        assert by_year["2025"] > by_year["2024"] * 1.2
        q = dict(
            conn.execute(
                "SELECT substr(order_date, 1, 4) || '-' || "
                "((CAST(substr(order_date, 6, 2) AS INT) + 2) / 3), SUM(revenue) FROM orders GROUP BY 1"
            ).fetchall()
        )
        assert q["2024-4"] > q["2024-3"] and q["2025-4"] > q["2025-3"]
        # nobody orders before signing up
        assert conn.execute(
            "SELECT COUNT(*) FROM orders o JOIN users u USING (user_id) WHERE o.order_date < u.signup_date"
        ).fetchone() == (0,)
    finally:
        conn.close()


def test_ensure_builds_once_even_when_raced(tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_sample_db(tmp_path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [tmp_path / SAMPLE_FILENAME] * 3
    assert [p.name for p in tmp_path.iterdir()] == [SAMPLE_FILENAME]  # no temporary files left
    mtime = (tmp_path / SAMPLE_FILENAME).stat().st_mtime_ns
    ensure_sample_db(tmp_path)
    assert (tmp_path / SAMPLE_FILENAME).stat().st_mtime_ns == mtime
