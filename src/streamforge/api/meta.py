"""Small routes: health, and the sessions API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from streamforge.api.errors import APIError
from streamforge.config import VERSION
from streamforge.sessions import SessionStore

router = APIRouter()
sessions_router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": VERSION}


def _store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


@sessions_router.get("/sessions/{session_id}")
async def get_session(session_id: str, request: Request) -> dict[str, Any]:
    session = await _store(request).get(session_id, getattr(request.state, "owner", None))
    if session is None:
        raise APIError(404, "unknown_session", "no such session")
    return session.to_json()


@sessions_router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
async def delete_session(session_id: str, request: Request) -> Response:
    if not await _store(request).delete(session_id, getattr(request.state, "owner", None)):
        raise APIError(404, "unknown_session", "no such session")
    return Response(status_code=204)
