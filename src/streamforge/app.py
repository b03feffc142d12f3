"""create_app(settings) -> FastAPI: every object the service needs is built here, from one Settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from streamforge.api import chat, meta
from streamforge.api.errors import install_error_handlers
from streamforge.config import VERSION, Settings
from streamforge.planner.factory import build_planner_service
from streamforge.sessions import build_session_store

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.planner = await build_planner_service(settings)
        app.state.sessions = await asyncio.to_thread(
            build_session_store, settings.state_url, settings.data_dir
        )
        log.info("streamforge %s ready: planner chain %s", VERSION, app.state.planner.chain_name)
        try:
            yield
        finally:
            await app.state.planner.aclose()
            await app.state.sessions.aclose()

    app = FastAPI(title="StreamForge", version=VERSION, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(meta.router)

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
