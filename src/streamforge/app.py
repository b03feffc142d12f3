"""create_app(settings) -> FastAPI: every object the service needs is built here, from one Settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from streamforge.api import chat, meta
from streamforge.api.access import AccessControl, require_access
from streamforge.api.edges import HostCheckMiddleware, allowed_hosts
from streamforge.api.errors import install_error_handlers
from streamforge.api.observability import Metrics, ObservabilityMiddleware
from streamforge.config import VERSION, Settings
from streamforge.planner.factory import build_planner_service
from streamforge.sessions import SqlSessionStore, StoreUnavailable, build_session_store

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.planner = await build_planner_service(
            settings, on_answer=lambda provider, chars: metrics.answer_chars.labels(provider).inc(chars)
        )
        app.state.sessions = await asyncio.to_thread(
            lambda: build_session_store(
                settings.state_url,
                settings.data_dir,
                ttl=settings.session_ttl,
                max_sessions=settings.max_memory_sessions,
                timeout=settings.state_timeout,
                breaker_threshold=settings.dependency_breaker_threshold,
                breaker_cooldown=settings.dependency_breaker_cooldown,
            )
        )
        if isinstance(app.state.sessions, SqlSessionStore):
            try:  # bounded: a store that is down or hung at start-up delays it by state_timeout at most
                await app.state.sessions.start()
            except StoreUnavailable as exc:
                log.warning("conversation store unavailable at start-up (%s); /readyz reports it", exc)
        log.info("streamforge %s ready: planner chain %s", VERSION, app.state.planner.chain_name)
        try:
            yield
        finally:
            await app.state.planner.aclose()
            await app.state.sessions.aclose()

    app = FastAPI(title="StreamForge", version=VERSION, lifespan=lifespan)
    app.state.settings = settings
    app.state.access = AccessControl(settings)
    app.state.metrics = metrics = Metrics()
    install_error_handlers(app)
    guarded = [Depends(require_access)]
    app.include_router(chat.router, dependencies=guarded)
    app.include_router(meta.sessions_router, dependencies=guarded)
    app.include_router(meta.router)

    @app.get("/metrics", include_in_schema=False, dependencies=guarded)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    if settings.cors_origins:
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-Id"],
            expose_headers=["X-Session-Id", "X-Request-Id"],
        )
    app.add_middleware(HostCheckMiddleware, allowed=allowed_hosts(settings))
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_bundle() -> FileResponse:
        """The chart library, from the installed plotly package: the page never loads another host."""
        return FileResponse(
            str(files("plotly") / "package_data" / "plotly.min.js"),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    if (STATIC_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="web")
    return app


def create_app_from_env() -> FastAPI:
    """The app of each worker process of ``streamforge serve --workers N`` (settings from the environment)."""
    return create_app(Settings())
