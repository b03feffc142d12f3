"""Helpers for the browser tests: a real ``streamforge serve`` process, Chromium, and page actions.

Kept apart from ``conftest.py`` so only the browser tests pay for Playwright and Chromium. Chromium is
Debian's (``/usr/bin/chromium``), not a Playwright download, so CI needs no network to get a browser;
``CHROMIUM`` overrides the path.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

from tests.conftest import free_port, start_server

# Read at import, like conftest.py does: an autouse fixture removes STREAMFORGE_* variables during tests.
REQUIRE_SERVICES = os.environ.get("STREAMFORGE_REQUIRE_SERVICES") == "1"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    return path if Path(path).exists() else shutil.which("chromium")


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)


@contextmanager
def running_server(
    data_dir: Path, log_path: Path, timeout: float = 60.0, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run ``python -m streamforge serve`` on a free port until the block ends; yield its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFORGE_")}
    env.update(
        {"STREAMFORGE_PATTERN_DELAY": "0.05", "STREAMFORGE_DATA_DIR": str(data_dir), **(extra_env or {})}
    )
    with start_server(free_port(), env, log_path, timeout=timeout) as base:
        yield base


class ConsoleErrors:
    """Every console error and uncaught page error of one page, for a test to assert on."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text}")

    def unexpected(self, *allowed: str) -> list[str]:
        """The errors not containing any of ``allowed`` (e.g. the browser's log line for an expected 422)."""
        return [m for m in self.messages if not any(a in m for a in allowed)]


def answers(page: Page) -> int:
    """How many replies (answers, notices, problems) the conversation shows."""
    return page.locator("#conversation .message:not(.message--user)").count()


def ask(page: Page, message: str, timeout: float = 15_000) -> None:
    """Type a message, press Enter, and wait until the page has finished answering it."""
    before = answers(page)
    box = page.get_by_label("Ask for a dashboard")
    box.fill(message)
    box.press("Enter")
    page.wait_for_function(
        "before => !document.getElementById('send').disabled"
        " && document.querySelectorAll('#conversation .message:not(.message--user)').length > before",
        arg=before,
        timeout=timeout,
    )


def no_horizontal_overflow(page: Page) -> bool:
    result: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return result
