"""The HTTP edges: which Host names are served, and how long a connection may take to say what it wants.

A server on 127.0.0.1 is reachable from any web page the person on that machine opens, through DNS
rebinding (a name the attacker controls that resolves to 127.0.0.1): the browser then sends the
attacker's name as ``Host``. So only allowed names are served: ``STREAMFORGE_ALLOWED_HOSTS``
(comma-separated, ``*`` for any), by default ``localhost``, ``127.0.0.1``, ``[::1]`` and the configured
``STREAMFORGE_HOST`` when it is a name or a specific address. ``/healthz`` and ``/readyz`` answer
whatever the Host (probes address a container by its IP), since they tell nothing else.

uvicorn's h11 protocol arms its keep-alive timer only after a response, so a client that connects
and trickles its request head (slowloris) holds the connection for ever. :class:`BoundedH11Protocol`
closes a connection whose request head has not fully arrived within the keep-alive timeout of its
opening or of the previous response.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from streamforge.config import Settings

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The Host names served; None: any."""
    if settings.allowed_hosts:
        names = {_normalise(n) for n in settings.allowed_hosts.split(",") if n.strip()}
        return None if "*" in names else frozenset(names)
    names = set(LOCAL_HOSTS)
    host = settings.host.strip().lower()
    if host not in _ANY_ADDRESS:
        names.add(f"[{host}]" if ":" in host and not host.startswith("[") else host)
    return frozenset(names)


def _normalise(name: str) -> str:
    return name.strip().lower().rstrip(".")


def host_name(header: str) -> str:
    """``Host`` without its port: ``example.com:8001`` -> ``example.com``, ``[::1]:80`` -> ``[::1]``."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return _normalise(value.rsplit(":", 1)[0] if value.count(":") == 1 else value)


class HostCheckMiddleware:
    """Refuse (400, a JSON error) a request whose Host is not allowed."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allowed is None or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if host_name(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": {
                    "code": "host_not_allowed",
                    "message": "this server does not answer to that Host; see STREAMFORGE_ALLOWED_HOSTS",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request head (see the module's docstring)."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._on_head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:  # no request head since the timer began
            self.transport.close()
