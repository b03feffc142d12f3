"""POST /chat: validate the request, pick the path, stream the frames in the negotiated format.

The body is read and checked by hand (size, UTF-8, JSON, fields) rather than by FastAPI's automatic
body parsing, because each failure must name its own problem in a 4xx JSON body and an oversized
body must be refused before it is read whole. The OpenAPI schema still describes the body.

Only ``Content-Type: application/json`` is read (415 otherwise): a cross-site form or ``text/plain``
POST, which a browser sends without asking, never reaches the planner. The body must arrive within
``STREAMFORGE_BODY_TIMEOUT`` (408 otherwise), so a client that trickles it holds nothing for long.

When the conversation store is unavailable, a new conversation is still answered; its ``end`` frame
says ``"saved": false`` (the save is tried ``STREAMFORGE_STATE_SAVE_ATTEMPTS`` times first), so a client
knows the turn will not be there for a follow-up. A follow-up (``session_id``) needs its context, so it
answers 503 ``state_unavailable`` with ``Retry-After`` instead of a wrong answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from streamforge import patterns, protocol
from streamforge.api.errors import APIError
from streamforge.api.observability import Metrics
from streamforge.components import Limits
from streamforge.config import Settings
from streamforge.planner.service import LayoutResult, PlannerService
from streamforge.router import route
from streamforge.sessions import Session, SessionStore, StoreUnavailable, Turn

log = logging.getLogger(__name__)
router = APIRouter()


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, description="What the person asked, in plain words.")
    session_id: str | None = Field(None, description="Continue this conversation (from X-Session-Id).")


def require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        shown = media[:80] or "none"
        raise APIError(
            415, "unsupported_media_type", f"send the body as Content-Type: application/json, not {shown}"
        )


def store_unavailable(exc: StoreUnavailable) -> APIError:
    return APIError(
        503,
        "state_unavailable",
        f"conversations cannot be read right now ({exc}); try again shortly",
        headers={"Retry-After": "5"},
    )


async def _read_body(request: Request, limit: int, within: float) -> bytes:
    try:
        return await asyncio.wait_for(_read_body_unbounded(request, limit), within)
    except TimeoutError as exc:
        raise APIError(408, "body_timeout", f"the request body did not arrive within {within} s") from exc


async def _read_body_unbounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, "body_too_large", f"the request body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise APIError(413, "body_too_large", f"the request body is over {limit} bytes")
    return bytes(body)


def parse_chat_request(body: bytes, settings: Settings) -> ChatRequest:
    """Every way a body can be wrong gets its own message."""
    if not body.strip():
        raise APIError(400, "empty_body", 'the request body is empty; send {"message": "..."}')
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, "invalid_encoding", f"the request body is not UTF-8 ({exc.reason})") from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise APIError(400, "invalid_json", f"the request body is not JSON: {exc.msg} at {exc.pos}") from exc
    except RecursionError as exc:
        raise APIError(400, "invalid_json", "the request body is nested too deeply") from exc
    if not isinstance(payload, dict):
        raise APIError(422, "invalid_request", 'the body must be a JSON object like {"message": "..."}')
    if "message" not in payload:
        raise APIError(422, "missing_message", 'the body has no "message" field')
    message = payload["message"]
    if not isinstance(message, str):
        raise APIError(422, "invalid_message", f'"message" must be a string, not {type(message).__name__}')
    if not message.strip():
        raise APIError(422, "empty_message", '"message" is empty')
    if len(message) > settings.max_message_length:
        raise APIError(
            422,
            "message_too_long",
            f'"message" has {len(message)} characters; the limit is {settings.max_message_length}',
        )
    session_id = payload.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise APIError(422, "invalid_session_id", '"session_id" must be a string')
    try:
        return ChatRequest(message=message.strip(), session_id=session_id)
    except ValidationError as exc:  # pragma: no cover - the checks above cover the model
        field = ".".join(str(p) for p in exc.errors()[0]["loc"]) if exc.errors() else "body"
        raise APIError(422, "invalid_request", f'"{field}" is not valid') from exc


class ChatStream:
    """Produces the frames of one answer and records them in the session as they go out."""

    def __init__(
        self,
        *,
        message: str,
        session: Session,
        store: SessionStore,
        planner: PlannerService,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.message = message
        self.session = session
        self.store = store
        self.planner = planner
        self.settings = settings
        self.route = route(message, settings, session.last_route, planner.names_data)
        self.saved = False

    async def frames(self) -> AsyncIterator[protocol.Frame]:
        started = time.perf_counter()
        provider, from_cache = "pattern", False
        sent: dict[str, protocol.Frame] = {}
        removed: list[str] = []
        try:
            if self.route == "pattern":
                limits = Limits.from_settings(self.settings)
                async for frame in patterns.stream(self.message, limits, self.settings.pattern_delay):
                    sent[frame["id"]] = frame
                    yield frame
            else:
                async for event in self.planner.stream_layout(self.message, self._context()):
                    if isinstance(event, LayoutResult):
                        provider, from_cache = event.provider, event.from_cache
                        self._count(event)
                    elif event.get("type") == "remove":
                        removed.append(event["id"])
                        yield event
                    else:
                        sent[event["id"]] = event
                        yield event
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream failed for session %s", self.session.id)
            yield protocol.error_frame(
                "internal_error", "Something went wrong while answering; please try again."
            )
        finally:
            # Shielded: a client that goes away mid-answer must not cost the session its turn.
            await asyncio.shield(self._record(sent, removed))
        yield protocol.end_frame(
            session_id=self.session.id,
            provider=provider,
            from_cache=from_cache,
            processing_time_ms=(time.perf_counter() - started) * 1000,
            route=self.route,
            saved=self.saved,
        )

    def _count(self, result: LayoutResult) -> None:
        if self.metrics is None:
            return
        self.metrics.plans.labels(result.provider, str(result.from_cache).lower()).inc()
        if result.from_cache:
            self.metrics.cache_hits.inc()
        if result.errors:
            self.metrics.provider_errors.inc(len(result.errors))
        for component in result.components:
            self.metrics.components.labels(component.get("type", "?")).inc()

    def _context(self) -> dict[str, Any] | None:
        """What the planner needs for a follow-up: the components on screen and the recent turns."""
        live = self.session.components
        if not live:
            return None
        history = [
            {"message": t.message, "components": [_summary(live[c]) for c in t.component_ids if c in live]}
            for t in self.session.turns[-5:]
        ]
        return {"previous": list(live.values())[-10:], "history": history}

    async def _record(self, sent: dict[str, protocol.Frame], removed: list[str]) -> None:
        """The session's dashboard after this turn: replaced components move to the end, removed go."""
        self.session.turns.append(Turn(self.message, self.route, list(sent), removed))
        for cid in removed:
            self.session.components.pop(cid, None)
        for cid, frame in sent.items():
            self.session.components.pop(cid, None)
            self.session.components[cid] = frame
        attempts = self.settings.state_save_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self.store.save(self.session)
            except StoreUnavailable as exc:
                log.warning(
                    "saving session %s failed (attempt %d/%d): %s", self.session.id, attempt, attempts, exc
                )
                if attempt < attempts:
                    await asyncio.sleep(0.2 * attempt)
            except Exception:
                log.exception("saving session %s failed", self.session.id)
                return
            else:
                self.saved = True
                return


def _summary(frame: protocol.Frame) -> str:
    """One line an LLM can act on: the id to reuse, what the component is, where its data came from."""
    data = frame.get("data", {})
    kind = frame.get("type", "?")
    if kind == "ChartComponent":
        kind = f"{data.get('chart_type')} chart"
    source = data.get("source") or {}
    where = f" from {source.get('table')}: x={source.get('x')}, y={source.get('y')}" if source else ""
    return f'id={frame.get("id")} {kind} "{data.get("title") or ""}"{where}'


def _respond(stream: ChatStream, fmt: protocol.Format, session_id: str) -> Response:
    # X-Accel-Buffering: nginx (and proxies copying it) pass each frame on at once, even where the
    # proxy's own configuration forgot ``proxy_buffering off``.
    headers = {"X-Session-Id": session_id, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if fmt == "sse":

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for frame in stream.frames():
                yield ServerSentEvent(data=protocol.dumps(frame), event=protocol.sse_event_name(frame))

        return EventSourceResponse(events(), headers=headers, ping=15)

    encode = protocol.encode_ndjson if fmt == "ndjson" else protocol.encode_text

    async def body() -> AsyncIterator[str]:
        async for frame in stream.frames():
            yield encode(frame)

    return StreamingResponse(body(), media_type=protocol.MEDIA_TYPES[fmt], headers=headers)


_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatRequest.model_json_schema()}},
    },
    "responses": {
        "200": {
            "description": "A stream of frames: `$$$`-framed JSON (default), SSE, or NDJSON.",
            "content": {t: {} for t in protocol.MEDIA_TYPES.values()},
        },
        "400": {"description": "The body is empty, not UTF-8 or not JSON."},
        "404": {"description": "Unknown session."},
        "408": {"description": "The body did not arrive in time."},
        "413": {"description": "The body is too large."},
        "415": {"description": "The body is not sent as application/json."},
        "422": {"description": "A field is missing or invalid."},
        "503": {"description": "The conversation store is unavailable (a follow-up cannot be answered)."},
    },
}


@router.post("/chat", openapi_extra=_BODY_SCHEMA, response_class=Response)
async def chat(request: Request) -> Response:
    state = request.app.state
    settings: Settings = state.settings
    require_json(request)
    body = await _read_body(request, settings.max_body_bytes, settings.body_timeout)
    chat_request = parse_chat_request(body, settings)
    store: SessionStore = state.sessions
    owner: str | None = getattr(request.state, "owner", None)
    if chat_request.session_id is None:
        session = await store.create(owner)
    else:
        try:
            found = await store.get(chat_request.session_id, owner)
        except StoreUnavailable as exc:
            raise store_unavailable(exc) from exc
        if found is None:
            raise APIError(404, "unknown_session", "no such session; omit session_id to start a new one")
        session = found
    stream = ChatStream(
        message=chat_request.message,
        session=session,
        store=store,
        planner=state.planner,
        settings=settings,
        metrics=state.metrics,
    )
    return _respond(stream, protocol.negotiate(request.headers.get("accept")), session.id)


@router.api_route("/chat", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def chat_wrong_method(request: Request) -> Response:
    """Say 405 in JSON, rather than letting the web page's catch-all mount answer 404."""
    raise APIError(
        405, "method_not_allowed", f"use POST /chat, not {request.method}", headers={"Allow": "POST"}
    )
