"""The command line: serve, plan, ask, sample-db.

Standard output carries only results (JSON lines for ``plan``); logs always go to standard error, so
``streamforge plan --jsonl`` can be piped into a scorer. Flags win over the environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from streamforge.api.observability import configure_logging
from streamforge.config import VERSION, Settings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="StreamForge: a sentence in, a dashboard out."
)


def _settings(
    *, provider: str | None = None, database: str | None = None, model: str | None = None, **extra: Any
) -> Settings:
    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if provider:
        overrides["provider"] = provider
        overrides["providers"] = None  # --provider beats STREAMFORGE_PROVIDERS
    if database:
        overrides["database_url"] = database
    if model:
        overrides["model_id"] = model
    return Settings(**overrides)


def _logging(level: str) -> None:
    configure_logging(level, json_logs=False)


ProviderOpt = Annotated[
    str | None, typer.Option("--provider", help="Planner provider (offline, bedrock, ...).")
]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL or CSV/Parquet folder.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model id (or a GGUF path for local).")]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8001).")] = None,
    provider: ProviderOpt = None,
    database: DatabaseOpt = None,
    model: ModelOpt = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (share state via Redis/PostgreSQL).")
    ] = 1,
) -> None:
    """Run the HTTP service."""
    import uvicorn

    from streamforge.app import create_app

    settings = _settings(provider=provider, database=database, model=model, host=host, port=port)
    configure_logging(settings.log_level, settings.json_logs)
    from streamforge.api.edges import BoundedH11Protocol

    # The HTTP edges: h11 with a deadline for each request head (slowloris), a bound on its size, and
    # no proxy headers at this level: the app believes X-Forwarded-For from STREAMFORGE_TRUSTED_PROXIES
    # only (uvicorn's default would believe any client on 127.0.0.1).
    edges: dict[str, Any] = {
        "http": BoundedH11Protocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "proxy_headers": False,
    }
    if workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=None,
            **edges,
        )
        return
    # Each worker builds its own app from the environment, so the flags travel as variables.
    for name, value in {"PROVIDER": provider, "DATABASE_URL": database, "MODEL_ID": model}.items():
        if value:
            os.environ[f"STREAMFORGE_{name}"] = value
    if provider:
        os.environ.pop("STREAMFORGE_PROVIDERS", None)
    uvicorn.run(
        "streamforge.app:create_app_from_env",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        **edges,
    )


log = logging.getLogger("streamforge.cli")


def _read_lines(stream: BinaryIO) -> Iterator[str | None]:
    """Each line of ``stream`` as text, or ``None`` for one that is not UTF-8.

    Lines end at ``\\n`` only (a ``\\r`` before it is dropped), so no message is ever split in two; a
    last line without a newline still counts, and a newline at the very end does not open another.
    """
    for raw in stream:
        raw = raw.removesuffix(b"\n").removesuffix(b"\r")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield None


def _refusal(line: str | None, number: int, settings: Settings) -> dict[str, Any] | None:
    """The error object for a line the service would refuse (with the API's codes), else ``None``."""
    from streamforge.api.errors import error_body

    if line is None:
        return error_body("invalid_encoding", f"line {number} is not UTF-8", line=number)
    message = line.strip()
    if not message:
        return error_body("empty_message", f"line {number} is empty", line=number)
    if len(message) > settings.max_message_length:
        return error_body(
            "message_too_long",
            f"line {number} has {len(message)} characters; the limit is {settings.max_message_length}",
            line=number,
        )
    return None


async def _plan_lines(settings: Settings, lines: Iterable[str | None]) -> int:
    """Write exactly one JSON line per input line, in order; return how many of them are errors."""
    from streamforge.api.errors import error_body
    from streamforge.planner.factory import build_planner_service

    errors = 0
    service = await build_planner_service(settings)
    try:
        for number, line in enumerate(lines, start=1):
            error = _refusal(line, number, settings)
            if error is None and line is not None:
                try:
                    result = await service.generate_layout(line.strip())
                except Exception as exc:  # one bad line must neither end the run nor shift the others
                    log.exception("planning line %d failed", number)
                    why = f"line {number}: {type(exc).__name__}: {exc}"
                    error = error_body("plan_failed", why, line=number)
                else:
                    sys.stdout.write(result.model_dump_json() + "\n")  # pydantic: NaN becomes null
            if error is not None:
                errors += 1
                sys.stdout.write(json.dumps(error) + "\n")
            sys.stdout.flush()
    finally:
        await service.aclose()
    return errors


_PLAN_HELP = (
    "Print the planner's layout for a message as JSON (one line per input line with --jsonl).\n\n"
    "Standard output carries only JSON lines; logs go to standard error. A message the service would "
    "refuse (blank, or longer than STREAMFORGE_MAX_MESSAGE_LENGTH) or whose planning fails gets an "
    'error object in its place, shaped like the API\'s JSON errors: {"error": {"code": "empty_message", '
    '"message": "line 2 is empty", "line": 2}}. With --jsonl the run goes on and exits 0; a single '
    "MESSAGE that gets an error object exits 1."
)


@app.command(help=_PLAN_HELP)
def plan(
    message: Annotated[str | None, typer.Argument(help="The request; omit with --jsonl.")] = None,
    provider: ProviderOpt = None,
    database: DatabaseOpt = None,
    model: ModelOpt = None,
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl",
            help="Read one message per line on stdin and print exactly one JSON line per input line, "
            'in order. A line that cannot be planned gets {"error": {"code", "message", "line"}} '
            "(codes: empty_message, message_too_long, invalid_encoding, plan_failed).",
        ),
    ] = False,
) -> None:
    """Print the planner's layout as JSON lines: one per input line, an error object for a refused one."""
    settings = _settings(provider=provider, database=database, model=model)
    _logging("warning")
    if jsonl:
        if message is not None:
            raise typer.BadParameter("give a message or --jsonl, not both")
        asyncio.run(_plan_lines(settings, _read_lines(sys.stdin.buffer)))
    elif message is not None:
        if asyncio.run(_plan_lines(settings, [message])):
            raise typer.Exit(1)
    else:
        raise typer.BadParameter("give a message, or --jsonl and messages on standard input")


async def _ask(settings: Settings, message: str) -> list[dict[str, Any]]:
    from streamforge.api.chat import ChatStream
    from streamforge.planner.factory import build_planner_service
    from streamforge.sessions import MemorySessionStore

    service = await build_planner_service(settings)
    store = MemorySessionStore()
    try:
        session = await store.create()
        stream = ChatStream(message=message, session=session, store=store, planner=service, settings=settings)
        return [frame async for frame in stream.frames()]
    finally:
        await service.aclose()


@app.command()
def ask(
    message: Annotated[str, typer.Argument(help="What to show, in plain words.")],
    provider: ProviderOpt = None,
    database: DatabaseOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print raw frames, one JSON per line.")] = False,
) -> None:
    """Answer one request in this process and draw it in the terminal."""
    from streamforge.terminal import print_frames

    settings = _settings(provider=provider, database=database, pattern_delay=0.0)
    _logging("warning")
    frames = asyncio.run(_ask(settings, message))
    if as_json:
        for frame in frames:
            sys.stdout.write(json.dumps(frame) + "\n")
    else:
        print_frames(frames)


@app.command("sample-db")
def sample_db(path: Annotated[Path, typer.Argument(help="Where to write the SQLite file.")]) -> None:
    """Write the bundled sample database (deterministic) to PATH."""
    from streamforge.data.sample import write_sample_db

    written = write_sample_db(path)
    typer.echo(str(written))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(VERSION)
