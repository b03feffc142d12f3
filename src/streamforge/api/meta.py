"""Small routes: liveness, readiness, and the sessions API.

``/healthz`` is liveness: the process answers. ``/readyz`` is readiness: it probes each dependency
(Redis, when rate limits and the plan cache use it; the conversation store) within its timeout, and
answers 200 when all are up, 503 naming the ones that are down. The service keeps answering while one
is down (see ``docs/protocol.md``), so a 503 here means "degraded", not "dead".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from streamforge.api.chat import store_unavailable
from streamforge.api.errors import APIError
from streamforge.config import VERSION
from streamforge.sessions import SessionStore, StoreUnavailable

router = APIRouter()
sessions_router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": VERSION}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    probes: dict[str, Callable[[], Awaitable[None]]] = {"state_store": state.sessions.ping}
    if state.access.uses_redis:
        probes["redis"] = state.access.ping
    results = await asyncio.gather(*(_probe(p) for p in probes.values()))
    report = dict(zip(probes, results, strict=True))
    down = sorted(name for name, r in report.items() if r["status"] != "up")
    body = {
        "status": "unavailable" if down else "ready",
        "version": VERSION,
        "down": down,
        "dependencies": report,
    }
    return JSONResponse(body, status_code=503 if down else 200, headers={"Cache-Control": "no-store"})


async def _probe(ping: Callable[[], Awaitable[None]]) -> dict[str, str]:
    try:
        await ping()
    except Exception as exc:  # down, hung (the probe's own timeout), refusing: all "down"
        reason = str(exc) if isinstance(exc, StoreUnavailable) else type(exc).__name__
        return {"status": "down", "error": reason or type(exc).__name__}
    return {"status": "up"}


def _store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


@sessions_router.get("/sessions/{session_id}")
async def get_session(session_id: str, request: Request) -> dict[str, Any]:
    try:
        session = await _store(request).get(session_id, getattr(request.state, "owner", None))
    except StoreUnavailable as exc:
        raise store_unavailable(exc) from exc
    if session is None:
        raise APIError(404, "unknown_session", "no such session")
    return session.to_json()


@sessions_router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
async def delete_session(session_id: str, request: Request) -> Response:
    try:
        deleted = await _store(request).delete(session_id, getattr(request.state, "owner", None))
    except StoreUnavailable as exc:
        raise store_unavailable(exc) from exc
    if not deleted:
        raise APIError(404, "unknown_session", "no such session")
    return Response(status_code=204)
