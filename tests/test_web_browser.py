"""The web page in a real browser: Chromium drives the page against a real ``streamforge serve``.

What a person would check by eye is checked in the DOM: components appear, progressive ones fill in
without duplicates, charts draw marks, errors are said in words, the phone layout does not overflow,
and nothing is logged to the console. Failures that the server will not produce on demand (an error
frame mid-stream, a ``remove`` frame, a dropped connection) are staged with ``page.route``, at the
browser's network edge, so the page under test is exactly the one we ship.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Locator, Page, Route, ViewportSize, expect, sync_playwright

from tests.browser import (
    REQUIRE_SERVICES,
    ConsoleErrors,
    answers,
    ask,
    chromium_path,
    launch_chromium,
    no_horizontal_overflow,
    running_server,
)

# The README's screenshots are rewritten only on request (UPDATE_SCREENSHOTS=1), so an ordinary test
# run leaves the working tree clean; otherwise they go to a temporary folder.
DOC_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
DESKTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 375, "height": 800}
# Chromium logs every 4xx response as a console error; tests that provoke one on purpose allow it.
EXPECTED_4XX = "Failed to load resource: the server responded with a status of 4"

# Records, from before the page's own script runs, what a progressive component looked like while it
# filled in: whether a skeleton was ever shown, and the most elements one component id ever had.
WATCH_PROGRESS = """
window.__progress = {partialSeen: false, maxPerId: 0};
new MutationObserver(() => {
  const counts = {};
  for (const el of document.querySelectorAll('.component')) {
    counts[el.dataset.id] = (counts[el.dataset.id] || 0) + 1;
    if (el.classList.contains('is-partial')) window.__progress.partialSeen = true;
  }
  const most = Math.max(0, ...Object.values(counts));
  window.__progress.maxPerId = Math.max(window.__progress.maxPerId, most);
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
"""

# Plotly's drawn marks per chart type: lines and areas and scatter have points, bars have bar paths,
# pies have slices. A chart that drew nothing has none of them.
MARKS = ".scatterlayer path.point, .scatterlayer path.js-line, .barlayer .point path, .pielayer .slice path"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("web-browser")
    with running_server(tmp / "data", tmp / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if chromium_path() is None:
        # Outside CI a missing browser skips these tests; in CI (.ci/run installs it) it fails them.
        message = "Chromium is not installed (apt-get install chromium; .ci/run does)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, base_url=server)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.add_init_script(WATCH_PROGRESS)
    yield page
    context.close()


def open_page(page: Page) -> ConsoleErrors:
    errors = ConsoleErrors(page)
    page.goto("/")
    expect(page.get_by_label("Ask for a dashboard")).to_be_visible()
    return errors


def chart_component(page: Page, chart_type: str) -> Locator:
    """The first chart component of ``chart_type`` (its figure's label starts with the type)."""
    figure = page.locator(f"[aria-label^='{chart_type} chart']")
    return page.locator(".component--ChartComponent", has=figure).first


def chart(page: Page, chart_type: str) -> tuple[int, int]:
    """(drawn marks, legend entries) of the first chart of ``chart_type`` on the page."""
    article = chart_component(page, chart_type)
    expect(article).to_be_visible()
    return article.locator(MARKS).count(), article.locator(".legend .traces").count()


def test_card_table_and_line_chart_stream_in(page: Page) -> None:
    errors = open_page(page)
    ask(page, "kpi card, sales table and line chart")

    card = page.locator(".component--SimpleComponent").first
    expect(card.locator(".component__title")).to_have_text("Total revenue")
    expect(card.locator(".card__number")).not_to_be_empty()
    expect(card.locator(".card__unit")).to_have_text("USD")
    expect(card.locator(".card__delta")).to_have_text(re.compile(r"^[+-]\d+\.\d%$"))
    expect(card.locator(".card__delta")).to_have_class(re.compile(r"card__delta--(up|down)"))
    expect(card.locator(".badge")).to_have_text("sample data")

    # The progressive table filled in place: one element for its id, a skeleton while it was partial,
    # all ten sample rows at the end, and no skeleton left.
    tables = page.locator(".component--TableA")
    expect(tables).to_have_count(1)
    expect(tables.locator("tbody tr")).to_have_count(10)
    expect(tables.locator("thead th")).to_have_text(["Month", "Segment", "Revenue", "Change %"])
    progress = page.evaluate("window.__progress")
    assert progress == {"partialSeen": True, "maxPerId": 1}
    expect(page.locator(".component.is-partial")).to_have_count(0)

    marks, legend = chart(page, "line")
    assert marks > 0
    assert legend == 2  # two series, both in the legend
    expect(page.locator("#conversation .message--assistant").last).to_contain_text("Here are 3 components")
    assert errors.unexpected() == []


def test_every_chart_type_draws_and_shows_tooltips(page: Page) -> None:
    errors = open_page(page)
    # The pattern mode's sample charts: "purchases" picks its Orders topic without naming the database's
    # orders table (a request naming the data goes to the planner). Orders sample data: bar has one
    # series, area two, the pie one slice per channel (web, mobile, partner).
    ask(page, "bar chart, area chart, pie chart and scatter chart of purchases")
    for chart_type, series in [("bar", 1), ("area", 2), ("pie", 3), ("scatter", 1)]:
        marks, legend = chart(page, chart_type)
        assert marks > 0, f"the {chart_type} chart drew nothing"
        assert legend == series, f"the {chart_type} chart's legend has {legend} entries"

    # Moving the mouse over a bar shows plotly's tooltip (plotly listens on a layer above the bars,
    # so the mouse goes to the bar's position rather than to the bar element).
    bar = chart_component(page, "bar")
    box = bar.locator(".barlayer .point path").nth(3).bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    expect(bar.locator(".hoverlayer")).to_contain_text("Apr")  # the hovered month and its value
    expect(bar.locator(".modebar")).not_to_contain_text("Share")  # no upload to another host
    assert errors.unexpected() == []


def test_data_backed_components_show_their_sql(page: Page) -> None:
    errors = open_page(page)
    ask(page, "revenue by region", timeout=30_000)
    components = page.locator(".component")
    assert components.count() > 0
    backed = page.locator(".component", has=page.locator(".badge--db"))
    assert backed.count() > 0, "the planner's answer should come from the database"
    for i in range(backed.count()):
        expect(backed.nth(i).locator(".badge")).to_have_text("from database")
        disclosure = backed.nth(i).locator("details.sql")
        expect(disclosure.locator("pre")).to_be_hidden()
        disclosure.locator("summary").click()
        expect(disclosure.locator("pre")).to_contain_text("SELECT")
    assert errors.unexpected() == []


def test_full_dashboard_screenshots_desktop_and_phone(page: Page, tmp_path: Path) -> None:
    shots = DOC_SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    errors = open_page(page)
    ask(page, "dashboard overview", timeout=30_000)
    assert page.locator(".component").count() >= 2
    assert page.locator(f".component--ChartComponent :is({MARKS})").count() > 0
    page.locator("details.sql").first.locator("summary").click()  # show what the disclosure looks like
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "dashboard-desktop.png"), full_page=True)

    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # plotly's responsive charts redraw on the resize event
    assert no_horizontal_overflow(page)
    page.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
    assert errors.unexpected() == []


def test_phone_width_has_no_horizontal_overflow(browser: Browser, server: str) -> None:
    context = browser.new_context(viewport=PHONE, base_url=server, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        errors = open_page(page)
        assert no_horizontal_overflow(page)
        ask(page, "kpi card, sales table and scatter chart")
        expect(page.locator(".component")).to_have_count(3)
        assert no_horizontal_overflow(page)
        # A wide table scrolls inside its card rather than widening the page.
        wrap = page.locator(".table-wrap")
        assert wrap.evaluate("el => el.getBoundingClientRect().right <= window.innerWidth")
        assert errors.unexpected() == []
    finally:
        context.close()


def test_too_long_message_is_explained_and_the_page_stays_usable(page: Page) -> None:
    errors = open_page(page)
    ask(page, "x" * 1500)
    alert = page.get_by_role("alert").last
    expect(alert).to_contain_text("too long")
    expect(alert).to_contain_text("It has 1500 characters; the limit is 1000.")
    expect(page.locator(".turn")).to_have_count(0)  # no empty dashboard section for a refused message

    ask(page, "kpi card")
    expect(page.locator(".component--SimpleComponent")).to_have_count(1)
    assert errors.unexpected(EXPECTED_4XX) == []


def _sse(*frames: dict[str, Any]) -> str:
    return "".join(
        f"event: {f['type'] if f['type'] in ('end', 'error', 'remove') else 'component'}\r\n"
        f"data: {json.dumps(f)}\r\n\r\n"
        for f in frames
    )


CARD: dict[str, Any] = {
    "type": "SimpleComponent",
    "id": "01970000-0000-7000-8000-000000000001",
    "data": {"title": "Orders today", "value": 42, "unit": "orders", "sample": True, "source": None},
}
END: dict[str, Any] = {
    "type": "end",
    "session_id": "s" * 32,
    "provider": "pattern",
    "from_cache": False,
    "processing_time_ms": 1.0,
    "route": "pattern",
}


def _fulfil_with(page: Page, body: str) -> None:
    def handle(route: Route) -> None:
        route.fulfill(
            status=200, headers={"Content-Type": "text/event-stream", "X-Session-Id": "s" * 32}, body=body
        )

    page.route("**/chat", handle)


def test_error_frame_mid_stream_is_shown(page: Page) -> None:
    errors = open_page(page)
    error = {
        "type": "error",
        "error": {
            "code": "internal_error",
            "message": "Something went wrong while answering; please try again.",
        },
    }
    _fulfil_with(page, _sse(CARD, error, END))
    ask(page, "kpi card")
    expect(page.get_by_role("alert").locator(".message__text")).to_have_text(
        "Something went wrong while answering; please try again."
    )
    expect(page.locator(".component--SimpleComponent .card__number")).to_have_text("42")
    assert errors.unexpected() == []


def test_remove_frame_removes_the_component(page: Page) -> None:
    errors = open_page(page)
    _fulfil_with(page, _sse(CARD, {"type": "remove", "id": CARD["id"]}, END))
    ask(page, "kpi card")
    expect(page.locator(".component")).to_have_count(0)
    assert errors.unexpected() == []


def test_network_failure_and_cut_off_stream_are_explained(page: Page) -> None:
    errors = open_page(page)
    page.route("**/chat", lambda route: route.abort("connectionrefused"))
    ask(page, "kpi card")
    expect(page.get_by_role("alert").last).to_contain_text("Could not reach StreamForge")

    page.unroute("**/chat")
    _fulfil_with(page, _sse(CARD))  # no end frame: the connection dropped mid-answer
    ask(page, "kpi card")
    expect(page.get_by_role("alert").last).to_contain_text("stopped before it was complete")
    # The browser logs the refused connection itself; nothing else may be logged.
    assert errors.unexpected("net::ERR_CONNECTION_REFUSED") == []


def test_reload_continues_the_conversation(page: Page) -> None:
    errors = open_page(page)
    ask(page, "show me sales table")
    session_id = page.evaluate("JSON.parse(localStorage.getItem('streamforge.conversation.v1')).sessionId")
    assert session_id

    page.reload()
    # The conversation and the dashboard come back from localStorage and GET /sessions/{id}.
    expect(page.locator("#conversation .message--user .message__text")).to_have_text(["show me sales table"])
    expect(page.locator(".component--TableA tbody tr")).to_have_count(10)

    with page.expect_request("**/chat") as request:
        ask(page, "line chart")
    body = request.value.post_data_json
    assert body is not None and body["session_id"] == session_id
    expect(page.locator(".turn")).to_have_count(2)
    assert errors.unexpected() == []


def test_expired_session_starts_fresh(page: Page) -> None:
    page.goto("/")
    page.evaluate(
        "localStorage.setItem('streamforge.conversation.v1', JSON.stringify("
        "{sessionId: 'A'.repeat(32), conversation: [{role: 'user', text: 'old question'}]}))"
    )
    errors = open_page(page)
    expect(page.locator("#conversation .message--notice")).to_contain_text("expired")
    expect(page.locator("#conversation .message--user")).to_have_count(0)
    before = answers(page)
    ask(page, "kpi card")
    assert answers(page) > before
    expect(page.locator(".component")).to_have_count(1)
    assert errors.unexpected(EXPECTED_4XX) == []


def test_keyboard_only_use(page: Page) -> None:
    errors = open_page(page)
    # The skip link is the first stop and leads to the message box, which shows its focus.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    box = page.get_by_label("Ask for a dashboard")
    expect(box).to_be_focused()
    assert box.evaluate("el => getComputedStyle(el).outlineStyle") != "none", "focus must be visible"
    page.keyboard.type("kpi card")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    assert box.input_value() == "kpi card\n"
    page.keyboard.press("Enter")
    expect(page.locator(".component--SimpleComponent")).to_have_count(1)
    assert errors.unexpected() == []


def test_page_works_under_a_strict_content_security_policy(page: Page) -> None:
    """No inline script and no other host: the page keeps working under ``default-src 'self'``.

    plotly writes inline styles, so style-src also allows 'unsafe-inline'; nothing else is relaxed.
    """
    policy = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"

    def with_policy(route: Route) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": policy})

    page.route("**/", with_policy)
    errors = open_page(page)
    ask(page, "kpi card, sales table and pie chart")
    expect(page.locator(".component")).to_have_count(3)
    marks, _ = chart(page, "pie")
    assert marks > 0
    assert errors.unexpected() == []
    # The policy really was in force: it refuses an inline script (and logs that, hence checked last).
    blocked = """() => {
        const script = document.createElement('script');
        script.textContent = 'window.inlineRan = true';
        document.head.append(script);
        return window.inlineRan === undefined;
    }"""
    assert page.evaluate(blocked)


def test_a_server_with_api_keys_asks_for_one(browser: Browser, tmp_path: Path) -> None:
    with running_server(
        tmp_path / "data", tmp_path / "keyed.log", extra_env={"STREAMFORGE_API_KEYS": "s3cret"}
    ) as base:
        context = browser.new_context(viewport=DESKTOP, base_url=base)
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            errors = open_page(page)
            key_box = page.get_by_label("API key")
            expect(key_box).to_be_hidden()
            ask(page, "revenue by region")
            expect(page.locator("#conversation .message--error").last).to_contain_text("needs an API key")
            expect(key_box).to_be_visible()
            expect(key_box).to_be_focused()
            key_box.fill("s3cret")
            key_box.press("Tab")  # the change event stores it
            ask(page, "revenue by region")
            expect(page.locator(".component--ChartComponent")).to_have_count(1)
            expect(page.locator(".component--ChartComponent .badge")).to_have_text("from database")
            assert errors.unexpected("401") == []  # the browser logs the refused request itself
        finally:
            context.close()


def test_new_conversation_forgets_the_old_one_on_the_server(page: Page, server: str) -> None:
    errors = open_page(page)
    ask(page, "kpi card")
    session_id = page.evaluate("JSON.parse(localStorage.getItem('streamforge.conversation.v1')).sessionId")
    assert httpx.get(f"{server}/sessions/{session_id}").status_code == 200
    with page.expect_request(lambda r: r.method == "DELETE"):
        page.get_by_role("button", name="New conversation").click()
    deadline = time.monotonic() + 10
    while httpx.get(f"{server}/sessions/{session_id}").status_code != 404:
        assert time.monotonic() < deadline, "the old session is still on the server"
        time.sleep(0.05)
    expect(page.locator("#conversation .message")).to_have_count(0)
    assert errors.unexpected() == []
