"""Conversations: which session a message belongs to, and what it has been shown so far.

Session ids carry 192 random bits (``secrets.token_urlsafe(24)``), so they cannot be guessed. A
session remembers its turns (message, which path answered, the components sent) so a follow-up can
be routed back to the planner and re-planned from what is on screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import sqlalchemy as sa
from cachetools import TTLCache
from sqlalchemy.pool import NullPool

from streamforge.planner.breaker import CircuitBreaker

T = TypeVar("T")
Route = Literal["planner", "pattern"]
_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")


class StoreUnavailable(Exception):
    """The conversation store did not answer in time, failed, or its circuit breaker is open."""


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def is_session_id(value: str) -> bool:
    """Only well-formed ids are looked up; anything else is simply not found."""
    return bool(_ID.fullmatch(value))


@dataclass
class Turn:
    message: str
    route: Route
    component_ids: list[str]  # sent (new or replaced) in this turn
    removed_ids: list[str] = field(default_factory=list)
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

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Session:
        return cls(
            id=record["id"],
            owner=record.get("owner"),
            created_at=record["created_at"],
            turns=[Turn(**t) for t in record.get("turns", [])],
            components=record.get("components", {}),
        )

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "created_at": self.created_at,
            "messages": [
                {
                    "message": t.message,
                    "route": t.route,
                    "component_ids": t.component_ids,
                    "removed_ids": t.removed_ids,
                    "at": t.at,
                }
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

    async def ping(self) -> None:
        """Raise when the store cannot be reached now (for ``/readyz``)."""
        ...


class MemorySessionStore:
    """Sessions in this process, for tests and single-process runs without persistence.

    Bounded: at most ``max_sessions`` (the least recently used go first) and each forgotten after
    ``ttl`` seconds idle, so a long-running server on ``memory://`` cannot grow without limit (every
    ``/chat`` without a ``session_id`` starts a session).
    """

    def __init__(self, *, max_sessions: int = 10_000, ttl: float = 7 * 24 * 3600) -> None:
        self._sessions: TTLCache[str, Session] = TTLCache(maxsize=max_sessions, ttl=ttl)
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
            self._sessions[session.id] = session  # re-inserting renews its time to live

    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        async with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.owner != owner:
                return False
            del self._sessions[session_id]
            return True

    async def aclose(self) -> None:
        self._sessions.clear()

    async def ping(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._sessions)


_METADATA = sa.MetaData()
_SESSIONS = sa.Table(
    "streamforge_sessions",
    _METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)


def _engine_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here; everything else is passed to SQLAlchemy as is."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class SqlSessionStore:
    """Sessions in a SQL database (SQLite by default, PostgreSQL for several workers).

    A session is one row holding its JSON, written whole after each turn: a conversation is small and
    read whole, so a normalised schema would cost joins for nothing. The synchronous SQLAlchemy engine
    runs in a worker thread, keeping the event loop free without a second (async) driver stack.

    A store that dies must not take the service with it: every call is bounded by ``timeout`` (the
    connection attempt by the driver's own connect timeout, the whole call by ``asyncio.wait_for``),
    and after ``breaker_threshold`` failures in a row the store is not called for ``breaker_cooldown``
    seconds. Either way the call raises :class:`StoreUnavailable`, which the API answers with 503
    (or, for a turn already streamed, ``"saved": false`` in its end frame). Nothing is done at
    construction: the table is created on the first call that reaches the database, so a store that
    is down at start-up delays nothing.
    """

    _EXPIRE_EVERY = 500  # saves between two sweeps of idle sessions

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 30 * 24 * 3600,
        timeout: float = 3.0,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 5.0,
    ) -> None:
        engine_url = _engine_url(url)
        connect_args: dict[str, Any] = {}
        options: dict[str, Any] = {}
        if engine_url.startswith("postgresql"):
            # libpq counts whole seconds (at least 2); the statement timeout bounds a slow query on
            # the server, and wait_for below bounds everything else (a server that never answers).
            connect_args["connect_timeout"] = max(2, math.ceil(timeout))
            connect_args["options"] = f"-c statement_timeout={int(timeout * 1000)}"
            options["pool_timeout"] = timeout
        self._engine = sa.create_engine(engine_url, pool_pre_ping=True, connect_args=connect_args, **options)
        # Probes (/readyz) open a fresh connection each time, bounded by the connect timeout, rather
        # than borrow a pooled one that a server gone silent would hold for ever.
        self._probe_engine = sa.create_engine(engine_url, poolclass=NullPool, connect_args=connect_args)
        if self._engine.dialect.name == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        self._ttl = ttl
        self._saves = 0
        self._timeout = timeout
        self._schema_ready = False
        self.breaker = CircuitBreaker(threshold=breaker_threshold, cooldown=breaker_cooldown)

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            _METADATA.create_all(self._engine)
            self._expire()
            self._schema_ready = True

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a thread, bounded by the timeout and the breaker."""
        if not self.breaker.allow():
            raise StoreUnavailable("the conversation store is unavailable (circuit open)")

        def run() -> T:
            self._ensure_schema()
            return fn(*args)

        try:
            result = await asyncio.wait_for(asyncio.to_thread(run), self._timeout)
        except TimeoutError as exc:
            self.breaker.record_failure()
            raise StoreUnavailable(f"the conversation store did not answer within {self._timeout} s") from exc
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            self.breaker.record_failure()
            raise StoreUnavailable(f"the conversation store failed: {type(exc).__name__}") from exc
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        except Exception:
            self.breaker.record_success()  # the store answered; the fault is ours, not its
            raise
        self.breaker.record_success()
        return result

    async def start(self) -> None:
        """Create the table now (at start-up) if the store answers; if not, the first call will."""
        await self._call(lambda: None)

    async def ping(self) -> None:
        def probe() -> None:
            with self._probe_engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            await asyncio.wait_for(asyncio.to_thread(probe), self._timeout)
        except TimeoutError as exc:
            raise StoreUnavailable(f"no answer within {self._timeout} s") from exc

    @classmethod
    def for_sqlite_file(cls, path: Path) -> SqlSessionStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    def _load(self, session_id: str) -> Session | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(_SESSIONS.c.body).where(_SESSIONS.c.id == session_id)).first()
        return Session.from_record(json.loads(row[0])) if row else None

    def _save(self, session: Session) -> None:
        values = {
            "owner": session.owner,
            "created_at": session.created_at,
            "updated_at": time.time(),
            "body": json.dumps(session.to_record(), separators=(",", ":")),
        }
        with self._engine.begin() as conn:
            updated = conn.execute(sa.update(_SESSIONS).where(_SESSIONS.c.id == session.id).values(**values))
            if updated.rowcount == 0:
                conn.execute(sa.insert(_SESSIONS).values(id=session.id, **values))

    def _expire(self) -> None:
        """Forget sessions idle for longer than the time to live, so the table does not grow forever."""
        with self._engine.begin() as conn:
            conn.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.updated_at < time.time() - self._ttl))

    def _delete(self, session_id: str, owner: str | None) -> bool:
        clause = _SESSIONS.c.owner.is_(None) if owner is None else _SESSIONS.c.owner == owner
        with self._engine.begin() as conn:
            result = conn.execute(sa.delete(_SESSIONS).where(_SESSIONS.c.id == session_id, clause))
        return result.rowcount > 0

    async def create(self, owner: str | None = None) -> Session:
        # Written with its first turn (one write per request instead of two); until then it exists
        # only in the request that made it.
        return Session(id=new_session_id(), owner=owner)

    async def get(self, session_id: str, owner: str | None = None) -> Session | None:
        if not is_session_id(session_id):
            return None
        session = await self._call(self._load, session_id)
        if session is None or session.owner != owner:
            return None
        return session

    async def save(self, session: Session) -> None:
        await self._call(self._save, session)
        self._saves += 1
        if self._saves % self._EXPIRE_EVERY == 0:
            with contextlib.suppress(StoreUnavailable):  # the turn is saved; the sweep waits
                await self._call(self._expire)

    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        if not is_session_id(session_id):
            return False
        return await self._call(self._delete, session_id, owner)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._engine.dispose)
        await asyncio.to_thread(self._probe_engine.dispose)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and the one writer of several threads (or workers) proceed without blocking.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, no fsync per turn
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def build_session_store(
    url: str | None, data_dir: Path, *, ttl: float, max_sessions: int, **bounds: Any
) -> SessionStore:
    """``memory://``, any SQLAlchemy URL, or (unset) SQLite in the data directory.

    ``bounds`` (``timeout``, ``breaker_threshold``, ``breaker_cooldown``) go to the SQL store.
    """
    if url is None:
        path = data_dir / "state.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqlSessionStore(f"sqlite:///{path}", ttl=ttl, **bounds)
    if url.startswith("memory://"):
        return MemorySessionStore(max_sessions=max_sessions, ttl=ttl)
    return SqlSessionStore(url, ttl=ttl, **bounds)
