"""`streamforge serve` as a real subprocess, spoken to over a socket."""

from __future__ import annotations

import time

import httpx

from streamforge import protocol


def test_serve_streams_a_progressive_table_over_a_socket(live_server: str) -> None:
    arrivals: list[tuple[float, dict[str, object]]] = []
    decoder = protocol.TextFrameDecoder()
    started = time.perf_counter()
    with httpx.stream(
        "POST", f"{live_server}/chat", json={"message": "show me sales table"}, timeout=30
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        for chunk in r.iter_text():
            for frame in decoder.feed(chunk):
                arrivals.append((time.perf_counter() - started, frame))
    frames = [f for _, f in arrivals]
    assert frames[-1]["type"] == "end"
    tables = [f for f in frames if f["type"] == "TableA"]
    assert len({t["id"] for t in tables}) == 1 and len(tables) >= 3
    # Progressive: the first frame arrived well before the last (the server paces updates).
    assert arrivals[0][0] < arrivals[-1][0]


def test_serve_default_planner_is_offline(live_server: str) -> None:
    body = httpx.post(f"{live_server}/chat", json={"message": "revenue by region"}, timeout=30).text
    end = protocol.decode_text(body)[-1]
    assert end["provider"] == "offline"
    assert httpx.get(f"{live_server}/healthz").json()["version"] == "0.6.0"
