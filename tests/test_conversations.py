"""Conversations end to end: follow-ups through ``/chat`` change the dashboard instead of starting over.

Each conversation is a list of turns on the sample database. A turn says what the answer must do to
the component the conversation follows (``new``: a fresh answer; ``replace``: the same id, changed;
``add``: a new id beside the others; ``remove``: a ``remove`` frame, and gone from the session) and
what that component must then show: chart type, ``data.source`` fields and filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from streamforge.data.source import DataSource
from streamforge.offline.followup import read
from streamforge.offline.match import Vocabulary
from streamforge.protocol import decode_text
from tests.fixtures import dbs

sample_path = dbs.sample_path
sample_source = dbs.sample_source

Q4_2025 = [("order_date", ">=", "2025-10-01"), ("order_date", "<", "2026-01-01")]
Q3_2025 = [("order_date", ">=", "2025-07-01"), ("order_date", "<", "2025-10-01")]
Y2024 = [("order_date", ">=", "2024-01-01"), ("order_date", "<", "2025-01-01")]
SESSIONS_2024 = [("started_at", ">=", "2024-01-01"), ("started_at", "<", "2025-01-01")]
SESSIONS_2025 = [("started_at", ">=", "2025-01-01"), ("started_at", "<", "2026-01-01")]


@dataclass
class Turn:
    message: str
    action: str  # new | replace | add | remove | replace_all
    type: str | None = None  # ChartComponent, TableA, SimpleComponent
    chart: str | None = None
    x: Any = "-"  # "-" means "not checked"
    y: Any = "-"
    group: Any = "-"
    grain: Any = "-"
    aggregate: str | None = None
    table: str | None = None
    filters: list[tuple[str, str, Any]] | None = None  # the exact filters, in any order
    has_filter: tuple[str, str, Any] | None = None  # one filter that must be among them
    of: str | None = None  # which component a replace/remove targets: a type or a chart type
    pick: int = 0  # for a fresh answer: which of its components the conversation follows
    order: str | None = None  # asc | desc: the order of the first series
    rows: int | None = None


@dataclass
class Conversation:
    name: str
    turns: list[Turn] = field(default_factory=list)


C, T, S = "ChartComponent", "TableA", "SimpleComponent"

CONVERSATIONS = [
    Conversation(
        "bar, then pie, then one region",
        [
            Turn("revenue by region", "new", C, "bar", x="region", y="revenue", aggregate="sum", filters=[]),
            Turn("make it a pie", "replace", C, "pie", x="region", y="revenue", filters=[]),
            Turn("only Europe", "replace", C, "pie", x="region", filters=[("region", "=", "Europe")]),
        ],
    ),
    Conversation(
        "trend split by channel, then weekly",
        [
            Turn("revenue over time", "new", C, "line", x="order_date", grain="month", group=None),
            Turn(
                "break it down by channel",
                "replace",
                C,
                "line",
                x="order_date",
                group="channel",
                grain="month",
            ),
            Turn("switch to weekly", "replace", C, "line", x="order_date", group="channel", grain="week"),
        ],
    ),
    Conversation(
        "bar to table, then top 3",
        [
            Turn("revenue by region", "new", C, "bar", x="region"),
            Turn("now as a table", "replace", T, x="region", y="revenue", aggregate="sum"),
            Turn("top 3 instead", "replace", T, x="region", rows=3),
        ],
    ),
    Conversation(
        "a card moved to another quarter, then broken down",
        [
            Turn("total revenue in Q4 2025", "new", S, y="revenue", aggregate="sum", filters=Q4_2025),
            Turn("same for Q3 2025", "replace", S, y="revenue", filters=Q3_2025),
            Turn("by channel", "replace", C, "bar", x="channel", y="revenue", filters=Q3_2025),
        ],
    ),
    Conversation(
        "top products: more of them, then ascending",
        [
            Turn("top 5 products by revenue", "new", C, "bar", x="name", y="revenue", table="orders"),
            Turn("top 10 instead", "replace", C, "bar", x="name", y="revenue", order="desc"),
            Turn("sort ascending", "replace", C, "bar", x="name", order="asc"),
        ],
    ),
    Conversation(
        "a second figure, then a region left out",
        [
            Turn("revenue by region", "new", C, "bar", x="region"),
            Turn("add the number of orders", "replace", C, "bar", x="region", y=["revenue", "order_id"]),
            Turn(
                "without Europe",
                "replace",
                C,
                "bar",
                x="region",
                y=["revenue", "order_id"],
                filters=[("region", "!=", "Europe")],
            ),
        ],
    ),
    Conversation(
        "split, then unsplit",
        [
            Turn("revenue by region", "new", C, "bar", x="region", group=None),
            Turn("break it down by channel", "replace", C, "bar", x="region", group="channel"),
            Turn("without the split", "replace", C, "bar", x="region", group=None),
        ],
    ),
    Conversation(
        "like the last one but for 2024, then remove it",
        [
            Turn("revenue over time", "new", C, "line", x="order_date", filters=[]),
            Turn("like the last one but for 2024", "add", C, "line", x="order_date", filters=Y2024),
            Turn("remove the chart", "remove"),
        ],
    ),
    Conversation(
        "a list filtered, then counted by plan",
        [
            Turn("latest users", "new", T, table="users", aggregate="none"),
            Turn("only Europe", "replace", T, table="users", filters=[("region", "=", "Europe")]),
            Turn(
                "by plan",
                "replace",
                T,
                table="users",
                x="plan",
                aggregate="count",
                filters=[("region", "=", "Europe")],
            ),
        ],
    ),
    Conversation(
        "a share as bars, then one year",
        [
            Turn("share of orders by channel", "new", C, "pie", x="channel", aggregate="count"),
            Turn("make it a bar chart", "replace", C, "bar", x="channel", aggregate="count"),
            Turn("in 2024", "replace", C, "bar", x="channel", filters=Y2024),
        ],
    ),
    Conversation(
        "categories as a line, then another year",
        [
            Turn("revenue by category", "new", C, "bar", x="category"),
            Turn("as a line chart", "replace", C, "line", x="category"),
            Turn("for 2024 instead", "replace", C, "line", x="category", filters=Y2024),
        ],
    ),
    Conversation(
        "another grouping, then a channel",
        [
            Turn("revenue by region", "new", C, "bar", x="region"),
            Turn("by channel instead", "replace", C, "bar", x="channel", group=None),
            Turn("only web", "replace", C, "bar", x="channel", filters=[("channel", "=", "web")]),
        ],
    ),
    Conversation(
        "quarterly bars",
        [
            Turn("revenue over time", "new", C, "line", grain="month"),
            Turn("quarterly", "replace", C, "line", x="order_date", grain="quarter"),
            Turn("as a bar chart", "replace", C, "bar", x="order_date", grain="quarter"),
        ],
    ),
    Conversation(
        "a quarter, then all time again",
        [
            Turn("revenue over time", "new", C, "line", filters=[]),
            Turn("same for Q4", "replace", C, "line", x="order_date", filters=Q4_2025),
            Turn("all time", "replace", C, "line", x="order_date", filters=[]),
        ],
    ),
    Conversation(
        "averages to totals, then a pie",
        [
            Turn("average order value by region", "new", C, "bar", x="region", aggregate="avg"),
            Turn("total instead", "replace", C, "bar", x="region", y="revenue", aggregate="sum"),
            Turn("as a pie", "replace", C, "pie", x="region", aggregate="sum"),
        ],
    ),
    Conversation(
        "another figure, then a pie",
        [
            Turn("revenue by region", "new", C, "bar", x="region", y="revenue"),
            Turn("what about orders", "replace", C, "bar", x="region", y="order_id", aggregate="count"),
            Turn("as a pie", "replace", C, "pie", x="region", y="order_id"),
        ],
    ),
    Conversation(
        "a region excluded, then all regions again",
        [
            Turn("revenue by region", "new", C, "bar", x="region"),
            Turn("excluding LATAM", "replace", C, "bar", x="region", filters=[("region", "!=", "LATAM")]),
            Turn("all regions", "replace", C, "bar", x="region", filters=[]),
        ],
    ),
    Conversation(
        "users of one region as a table",
        [
            Turn("users by plan", "new", C, "bar", x="plan", table="users", aggregate="count"),
            Turn(
                "only Europe",
                "replace",
                C,
                "bar",
                x="plan",
                table="users",
                filters=[("region", "=", "Europe")],
            ),
            Turn("as a table", "replace", T, x="plan", table="users", filters=[("region", "=", "Europe")]),
        ],
    ),
    Conversation(
        "remove it",
        [
            Turn("revenue over time", "new", C, "line"),
            Turn("remove it", "remove"),
        ],
    ),
    Conversation(
        "a period comparison as a line, then the card hidden",
        [
            Turn("compare Q1 vs Q2 revenue", "new", C, "bar", x="order_date", grain="quarter"),
            Turn("make it a line chart", "replace", C, "line", x="order_date", y="revenue"),
            Turn("hide the card", "remove", of=S),
        ],
    ),
    Conversation(
        "an overview: the table removed, then one region",
        [
            Turn("dashboard overview", "new", S, pick=0),
            Turn("remove the table", "remove", of=T),
            Turn("only Europe", "replace", C, "bar", x="region", of=C, filters=[("region", "=", "Europe")]),
        ],
    ),
    Conversation(
        "also as a table, then one channel",
        [
            Turn("revenue over time", "new", C, "line", x="order_date"),
            Turn("also as a table", "add", T, x="order_date", grain="month"),
            Turn("only mobile", "replace", T, x="order_date", filters=[("channel", "=", "mobile")]),
        ],
    ),
    Conversation(
        "a filter on everything",
        [
            Turn("compare Q1 vs Q2 revenue", "new", C, "bar"),
            Turn("only Europe for all of them", "replace_all", has_filter=("region", "=", "Europe")),
        ],
    ),
    Conversation(
        "sessions by feature, a year, the year before",
        [
            Turn("sessions by feature", "new", C, "bar", x="feature", table="sessions"),
            Turn("in 2025", "replace", C, "bar", x="feature", table="sessions", filters=SESSIONS_2025),
            Turn("the year before", "replace", C, "bar", x="feature", filters=SESSIONS_2024),
        ],
    ),
    Conversation(
        "sorted ascending",
        [
            Turn("revenue by region", "new", C, "bar", x="region", order="desc"),
            Turn("sort ascending", "replace", C, "bar", x="region", order="asc"),
        ],
    ),
    Conversation(
        "a trend regrouped, then the top 2",
        [
            Turn("revenue over time", "new", C, "line", x="order_date"),
            Turn("by region instead", "replace", C, "bar", x="region", grain=None),
            Turn("top 2 instead", "replace", C, "bar", x="region", order="desc"),
        ],
    ),
    Conversation(
        "a count by status without cancellations",
        [
            Turn("how many orders", "new", S, aggregate="count", table="orders"),
            Turn("by status", "replace", C, "bar", x="status", aggregate="count"),
            Turn(
                "exclude cancelled", "replace", C, "bar", x="status", filters=[("status", "!=", "cancelled")]
            ),
        ],
    ),
    Conversation(
        "a numeric threshold",
        [
            Turn("revenue by region", "new", C, "bar", x="region"),
            Turn("only over 1000", "replace", C, "bar", x="region", filters=[("revenue", ">", 1000)]),
        ],
    ),
    Conversation(
        "a fresh question in the middle keeps the first answer",
        [
            Turn("revenue over time", "new", C, "line"),
            Turn("now show me users by plan", "new", C, "bar", x="plan", table="users"),
            Turn("as a pie", "replace", C, "pie", x="plan", table="users"),
        ],
    ),
    Conversation(
        "a card: add a figure as a second card, then a year",
        [
            Turn("total revenue in Q4 2025", "new", S, y="revenue", filters=Q4_2025),
            Turn("add the number of orders", "add", S, y="order_id", aggregate="count", filters=Q4_2025),
            Turn("for 2024", "replace", S, y="order_id", filters=Y2024),
        ],
    ),
    Conversation(
        "monthly regions from a breakdown",
        [
            Turn("revenue by region", "new", C, "bar", x="region"),
            Turn("by month", "replace", C, "line", x="order_date", group="region", grain="month"),
        ],
    ),
]


async def _turn(client: httpx.AsyncClient, message: str, session: str | None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"message": message}
    if session:
        body["session_id"] = session
    response = await client.post("/chat", json=body)
    assert response.status_code == 200, response.text
    return decode_text(response.text)


def _matches(frame: dict[str, Any], of: str) -> bool:
    return frame["type"] == of or frame.get("data", {}).get("chart_type") == of


def _check(turn: Turn, frame: dict[str, Any]) -> None:
    data = frame["data"]
    source = data["source"]
    where = f"{turn.message!r}: {frame['type']} {data.get('title')!r} {source}"
    if turn.type:
        assert frame["type"] == turn.type, where
    if turn.chart:
        assert data["chart_type"] == turn.chart, where
    for key in ("x", "y", "group", "grain"):
        expected = getattr(turn, key)
        if expected != "-":
            assert source[key] == expected, f"{key}: {where}"
    if turn.aggregate:
        assert source["aggregate"] == turn.aggregate, where
    if turn.table:
        assert source["table"] == turn.table, where
    got = sorted((f["column"], f["op"], f["value"]) for f in source["filters"])
    if turn.filters is not None:
        assert got == sorted(turn.filters), where
    if turn.has_filter is not None:
        assert turn.has_filter in got, where
    if turn.order is not None:
        values = data["series"][0]["values"]
        assert values == sorted(values, reverse=turn.order == "desc"), where
    if turn.rows is not None:
        assert len(data["rows"]) == turn.rows, where


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c.name for c in CONVERSATIONS])
async def test_conversation(client: httpx.AsyncClient, conversation: Conversation) -> None:
    session: str | None = None
    screen: dict[str, dict[str, Any]] = {}  # id -> frame, in the order the session keeps them
    followed: str | None = None
    for turn in conversation.turns:
        frames = await _turn(client, turn.message, session)
        end = frames[-1]
        assert end["type"] == "end", frames
        assert end["from_cache"] is False
        session = end["session_id"]
        components = [f for f in frames if f["type"] not in ("end", "error", "remove")]
        removed = [f["id"] for f in frames if f["type"] == "remove"]
        assert not any(f["type"] == "error" for f in frames), frames
        target = followed
        if turn.of is not None:
            target = next(i for i, f in reversed(list(screen.items())) if _matches(f, turn.of))
        if turn.action == "new":
            assert components and not removed
            assert all(c["id"] not in screen for c in components), "a fresh answer must not reuse ids"
            followed = components[turn.pick]["id"]
            _check(turn, components[turn.pick])
        elif turn.action == "replace":
            assert [c["id"] for c in components] == [target], (turn.message, components)
            assert not removed
            followed = target
            _check(turn, components[0])
        elif turn.action == "replace_all":
            assert len(components) == len(screen) and {c["id"] for c in components} == set(screen)
            for component in components:
                _check(turn, component)
        elif turn.action == "add":
            assert len(components) == 1 and components[0]["id"] not in screen, (turn.message, components)
            followed = components[0]["id"]
            _check(turn, components[0])
        else:
            assert turn.action == "remove"
            assert removed == [target] and not components, (turn.message, frames)
        for cid in removed:
            screen.pop(cid)
        for c in components:
            screen.pop(c["id"], None)
            screen[c["id"]] = c
        state = (await client.get(f"/sessions/{session}")).json()
        assert [c["id"] for c in state["components"]] == list(screen), turn.message
        assert all(cid not in {c["id"] for c in state["components"]} for cid in removed)


def test_there_are_enough_conversations() -> None:
    assert len(CONVERSATIONS) >= 25
    assert all(2 <= len(c.turns) <= 3 for c in CONVERSATIONS)


# ---------------------------------------------------------------- follow-up or fresh question

FOLLOW_UPS = [
    "make it a bar chart",
    "now as a table",
    "same for Q4",
    "only Europe",
    "break it down by channel",
    "add the number of orders",
    "top 10 instead",
    "remove the table",
    "like the last one but for 2024",
    "as a pie",
    "for 2024 instead",
    "without Europe",
    "switch to weekly",
    "sort ascending",
    "hide the card",
    "split by status",
    "orders instead",
    "average instead",
    "what about users",
    "all time",
    "the year before",
    "by channel",
    "in 2024",
    "show it as a line chart",
    "exclude cancelled",
]
FRESH = [
    "revenue by region",
    "show me users by plan",
    "now show me users by plan",
    "top 5 products by revenue",
    "how many users do we have",
    "list all users",
    "dashboard overview",
    "summarize performance",
    "show me sales table",
    "what can you do",
    "revenue in Europe",
]


@pytest.fixture(scope="module")
def vocabulary(sample_source: DataSource) -> Vocabulary:
    return Vocabulary.build(sample_source.schema)


@pytest.mark.parametrize("message", FOLLOW_UPS)
def test_follow_ups_are_recognised(sample_source: DataSource, vocabulary: Vocabulary, message: str) -> None:
    assert read(message, sample_source.schema, vocabulary) is not None


@pytest.mark.parametrize("message", FRESH)
def test_fresh_questions_are_not_follow_ups(
    sample_source: DataSource, vocabulary: Vocabulary, message: str
) -> None:
    assert read(message, sample_source.schema, vocabulary) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("make it a bar chart", {"shape": "bar"}),
        ("now as a table", {"shape": "table"}),
        ("as a kpi", {"shape": "card"}),
        ("also as a table", {"shape": "table", "new": True}),
        ("like the last one but for 2024", {"new": True}),
        ("remove the table", {"remove": True, "target_kind": "TableA"}),
        ("drop the pie", {"remove": True, "target_chart": "pie"}),
        ("break it down by channel", {"split": True}),
        ("top 10 instead", {"top_n": 10, "descending": True}),
        ("bottom 3", {"top_n": 3, "descending": False}),
        ("sort ascending", {"order": "value_asc"}),
        ("switch to weekly", {"grain": "week"}),
        ("the year before", {"shift": True}),
        ("all time", {"clear_period": True}),
        ("without the split", {"clear_group": True}),
        ("only Europe for all of them", {"scope_all": True}),
        ("add the number of orders", {"add_metric": True, "metric_aggregate": "count"}),
    ],
)
def test_what_a_follow_up_changes(
    sample_source: DataSource, vocabulary: Vocabulary, message: str, expected: dict[str, Any]
) -> None:
    change = read(message, sample_source.schema, vocabulary)
    assert change is not None
    for key, value in expected.items():
        assert getattr(change, key) == value, (message, key)
