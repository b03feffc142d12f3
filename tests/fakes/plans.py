"""A plan an LLM might answer with, shared by the tests and benchmarks that need a realistic one."""

from __future__ import annotations

import json
from typing import Any

THREE_COMPONENTS: list[dict[str, Any]] = [
    {
        "type": "SimpleComponent",
        "data": {"title": "Revenue", "value": 1250000, "unit": "USD", "delta": "+8%"},
    },
    {
        "type": "ChartComponent",
        "data": {
            "title": "Revenue by month",
            "chart_type": "line",
            "x_axis": [f"2025-{m:02d}" for m in range(1, 13)],
            "series": [{"label": "Revenue", "values": [100 + m for m in range(12)]}],
        },
    },
    {
        "type": "TableA",
        "data": {
            "title": "Top regions",
            "columns": ["Region", "Revenue"],
            "rows": [["Europe", 1], ["APAC", 2], ["LATAM", 3], ["North America", 4]],
        },
    },
]


def framed(components: list[dict[str, Any]]) -> str:
    """The answer format the prompt asks for: a JSON array between ``$$$`` delimiters."""
    return "$$$" + json.dumps(components) + "$$$"
