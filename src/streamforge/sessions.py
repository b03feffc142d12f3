"""Conversations: which session a message belongs to, and what it has been shown so far.

Session ids carry 192 random bits (``secrets.token_urlsafe(24)``), so they cannot be guessed. A
session remembers its turns (message, which path answered, the components sent) so a follow-up can
be routed back to the planner and re-planned from what is on screen.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Route = Literal["planner", "pattern"]
_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def is_session_id(value: str) -> bool:
    """Only well-formed ids are looked up; anything else is simply not found."""
    return bool(_ID.fullmatch(value))


@dataclass
class Turn:
    message: str
    route: Route
    component_ids: list[str]
    at: float = field(default_factory=time.time)


@dataclass
class Session:
    id: str
    owner: str | None = None
    created_at: float = field(default_factory=time.time)
    turns: list[Turn] = field(default_factory=list)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> latest frame

    @property
    def last_route(self) -> Route | None:
        return self.turns[-1].route if self.turns else None

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "created_at": self.created_at,
            "messages": [
                {"message": t.message, "route": t.route, "component_ids": t.component_ids, "at": t.at}
                for t in self.turns
            ],
            "components": list(self.components.values()),
        }


class SessionStore(Protocol):
    async def create(self, owner: str | None = None) -> Session: ...

    async def get(self, session_id: str, owner: str | None = None) -> Session | None: ...

    async def save(self, session: Session) -> None: ...

    async def delete(self, session_id: str, owner: str | None = None) -> bool: ...

    async def aclose(self) -> None: ...


class MemorySessionStore:
    """Sessions in this process: for tests and single-process use without persistence."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = asyncio.Lock()

    async def create(self, owner: str | None = None) -> Session:
        session = Session(id=new_session_id(), owner=owner)
        async with self._lock:
            self._sessions[session.id] = session
        return session

    async def get(self, session_id: str, owner: str | None = None) -> Session | None:
        session = self._sessions.get(session_id) if is_session_id(session_id) else None
        if session is None or session.owner != owner:
            return None
        return session

    async def save(self, session: Session) -> None:
        async with self._lock:
            self._sessions[session.id] = session

    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        async with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.owner != owner:
                return False
            del self._sessions[session_id]
            return True

    async def aclose(self) -> None:
        self._sessions.clear()
