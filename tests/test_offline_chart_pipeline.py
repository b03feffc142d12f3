"""The chart pipeline step by step: what it reads, links and decides, and that the figures are right.

Each case is a class of wording from issue 18 (never a question of an eval set), asked of the
public-style fixtures (a tips-like restaurant table, a gapminder-like yearly country table) or a
small schema built here. Expected figures are computed with sqlite3 straight from the fixture, so
a test fails when a number on screen is wrong, not only when a column name is.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamforge.components import Limits, new_id, validate_component
from streamforge.data.source import DataSource
from streamforge.offline.link import Lexicon, link
from streamforge.offline.planner import OfflinePlanner
from streamforge.offline.read import read
from streamforge.offline.views import View
from tests.fixtures import dbs
from tests.fixtures.public_style import build_countries_sqlite, build_tips_sqlite


@pytest.fixture(scope="module")
def tips_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tips_sqlite(tmp_path_factory.mktemp("tips") / "tips.sqlite")


@pytest.fixture(scope="module")
def countries_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_countries_sqlite(tmp_path_factory.mktemp("countries") / "countries.sqlite")


# The shared sample database and its planner (tests/fixtures/dbs.py).
sample_path = dbs.sample_path
sample_source = dbs.sample_source
sample_planner = dbs.sample_planner


@pytest.fixture(scope="module")
def tips(tips_path: Path) -> Iterator[OfflinePlanner]:
    source = DataSource(tips_path)
    yield OfflinePlanner(source, Limits())
    source.close()


@pytest.fixture(scope="module")
def countries(countries_path: Path) -> Iterator[OfflinePlanner]:
    source = DataSource(countries_path)
    yield OfflinePlanner(source, Limits())
    source.close()


def chart(planner: OfflinePlanner, message: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    components = asyncio.run(planner.plan(message, context))
    for c in components:
        assert validate_component(c, planner.limits) is not None, (message, c)
    assert components[0]["type"] == "ChartComponent", (message, components[0])
    data: dict[str, Any] = components[0]["data"]
    return data


def pairs(data: dict[str, Any]) -> dict[str, Any]:
    return dict(zip(data["x_axis"], data["series"][0]["values"], strict=True))


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


# ---------------------------------------------------------------- read


def test_read_finds_the_chart_the_sort_clause_and_the_top_n() -> None:
    r = read("Draw a pie chart of the average tip, and sort it by the Y-axis from high to low")
    assert r.chart == "pie" and r.chart_named
    assert r.order is not None and (r.order.target, r.order.direction) == ("y", "desc")
    assert read("top 3 days by total bill").top == (3, "desc")
    assert read("show bars in ascending order of the names").order.target == "x"  # type: ignore[union-attr]


def test_read_corrects_misspelt_cue_words_but_not_the_datas_own_words() -> None:
    assert [c.value for c in read("averge bill").of("aggregate")] == ["avg"]
    assert not read("population by county", known=frozenset({"county"})).of("aggregate")


# ---------------------------------------------------------------- link


def test_link_reaches_short_and_coded_column_names(countries: OfflinePlanner, tips: OfflinePlanner) -> None:
    def best(planner: OfflinePlanner, message: str) -> list[tuple[str | None, str]]:
        lexicon: Lexicon = planner.lexicon
        return [(lk.best.column, lk.best.rule) for lk in link(read(message, known=lexicon.known), lexicon)]

    assert best(countries, "life expectancy and population and gdp per capita") == [
        ("lifeExp", "abbreviation"),
        ("pop", "abbreviation"),
        ("gdpPercap", "abbreviation"),
    ]
    assert best(tips, "gender") == [("sex", "synonym")]
    assert best(tips, "temprature") == []  # no such column: a typo of nothing is nothing


def test_link_finds_values_by_code_day_demonym_and_year(
    countries: OfflinePlanner, tips: OfflinePlanner
) -> None:
    def values(planner: OfflinePlanner, message: str) -> list[Any]:
        lexicon = planner.lexicon
        found = link(read(message, known=lexicon.known), lexicon)
        return [lk.best.values or lk.best.value for lk in found if lk.best.kind == "value"]

    female, weekend = values(tips, "women on weekends")
    assert female == "Female" and set(weekend) == {"Sat", "Sun"}
    assert values(countries, "Japanese in 2007") == ["Japan", 2007]


# ---------------------------------------------------------------- decide + figures


def test_an_average_by_a_category_has_the_databases_figures(tips: OfflinePlanner, tips_path: Path) -> None:
    data = chart(tips, "average tip by day as a bar chart")
    assert (data["source"]["x"], data["source"]["y"], data["source"]["aggregate"]) == ("day", "tip", "avg")
    want = dict(query(tips_path, "SELECT day, AVG(tip) FROM tips GROUP BY day"))
    assert pairs(data).keys() == want.keys()
    assert all(abs(pairs(data)[k] - v) < 1e-9 * max(1, abs(v)) for k, v in want.items())


def test_a_level_is_averaged_and_a_named_order_is_kept(
    countries: OfflinePlanner, countries_path: Path
) -> None:
    data = chart(countries, "bar chart of life expectancy by continent in 2007, sorted from high to low")
    assert data["source"]["aggregate"] == "avg"
    want = query(
        countries_path,
        "SELECT continent, AVG(lifeExp) FROM gapminder WHERE year = 2007 GROUP BY continent ORDER BY 2 DESC",
    )
    assert data["x_axis"] == [r[0] for r in want]


def test_a_ranking_of_rows_plots_them_as_they_stand(countries: OfflinePlanner, countries_path: Path) -> None:
    data = chart(countries, "top 5 countries by population in 2007")
    assert data["source"]["aggregate"] == "none"  # one row per country that year: no SUM
    want = query(
        countries_path, "SELECT country, pop FROM gapminder WHERE year = 2007 ORDER BY pop DESC LIMIT 5"
    )
    assert list(pairs(data).items()) == [(c, p) for c, p in want]


def test_an_integer_year_is_a_time_axis_and_named_values_are_its_lines(
    countries: OfflinePlanner, countries_path: Path
) -> None:
    data = chart(countries, "population of China and India over the years")
    assert data["chart_type"] == "line" and data["source"]["x"] == "year"
    assert data["source"]["group"] == "country"
    assert {s["label"] for s in data["series"]} == {"China", "India"}
    china = dict(query(countries_path, "SELECT year, pop FROM gapminder WHERE country = 'China'"))
    series = next(s for s in data["series"] if s["label"] == "China")
    assert dict(zip((int(x) for x in data["x_axis"]), series["values"], strict=True)) == china


def test_counting_a_repeated_name_counts_distinct_values(
    countries: OfflinePlanner, countries_path: Path
) -> None:
    data = chart(countries, "number of countries per continent")
    want = dict(
        query(countries_path, "SELECT continent, COUNT(DISTINCT country) FROM gapminder GROUP BY continent")
    )
    assert pairs(data) == want


def test_a_scatter_with_a_filter_and_a_bound(tips: OfflinePlanner, tips_path: Path) -> None:
    data = chart(tips, "scatter of total bill vs tip for parties of 4 or more")
    assert data["chart_type"] == "scatter"
    assert {"column": "size", "op": ">=", "value": 4} in data["source"]["filters"]
    (n,) = query(tips_path, "SELECT COUNT(*) FROM tips WHERE size >= 4")[0]
    assert len(data["series"][0]["values"]) == min(n, 50)


def test_an_explicit_pie_of_an_average_is_a_pie_that_says_so(tips: OfflinePlanner) -> None:
    data = chart(tips, "pie chart of the average tip by day")
    assert data["chart_type"] == "pie" and data["source"]["aggregate"] == "avg"
    assert "not parts of one whole" in (data["description"] or "")


def test_a_yes_no_plural_filters_and_a_which_question_ranks(tips: OfflinePlanner, tips_path: Path) -> None:
    data = chart(tips, "average total bill for smokers by day")
    assert {"column": "smoker", "op": "=", "value": "Yes"} in data["source"]["filters"]
    ranked = chart(tips, "which day has the largest bills on average")
    want = query(tips_path, "SELECT day FROM tips GROUP BY day ORDER BY AVG(total_bill) DESC")
    assert ranked["x_axis"] == [r[0] for r in want]


def test_an_open_question_still_gets_a_dashboard(tips: OfflinePlanner) -> None:
    components = asyncio.run(tips.plan("dashboard overview"))
    assert {c["type"] for c in components} >= {"SimpleComponent", "ChartComponent"}


# ---------------------------------------------------------------- follow-ups start from the view


def test_a_follow_up_changes_the_view_it_carries(tips: OfflinePlanner) -> None:
    first = asyncio.run(tips.plan("average tip by day as a bar chart"))
    first[0]["id"] = new_id()
    view = View.from_dict(first[0]["data"]["source"]["view"], tips.source.schema)
    assert view is not None and (view.x.name, view.aggregate) == ("day", "avg")
    pie = chart(tips, "now as a pie chart", {"previous": first})
    assert pie["chart_type"] == "pie" and pie["source"]["x"] == "day"
    only = chart(tips, "only Sat and Sun", {"previous": first})
    assert set(only["x_axis"]) == {"Sat", "Sun"}


def test_a_view_from_a_client_is_checked_against_the_schema(tips: OfflinePlanner) -> None:
    schema = tips.source.schema
    forged = {"chart": "bar", "base": "tips", "x": ["sqlite_master", "sql"], "y": None, "aggregate": "count"}
    assert View.from_dict(forged, schema) is None
    assert (
        View.from_dict({"chart": "bar", "base": "tips", "x": ["tips", "day"], "aggregate": "drop"}, schema)
        is None
    )
    assert View.from_dict("not a view", schema) is None


def test_the_n_largest_rows_are_rows_not_groups(tips: OfflinePlanner, tips_path: Path) -> None:
    components = asyncio.run(tips.plan("the 3 smallest tips at dinner"))
    table = components[0]
    assert table["type"] == "TableA" and validate_component(table, tips.limits) is not None
    tip_at = table["data"]["columns"].index("Tip")
    want = query(tips_path, "SELECT tip FROM tips WHERE time = 'Dinner' ORDER BY tip LIMIT 3")
    assert [row[tip_at] for row in table["data"]["rows"]] == [r[0] for r in want]


def test_weekday_bins_come_in_week_order(sample_planner: OfflinePlanner, sample_path: Path) -> None:
    data = chart(sample_planner, "number of orders by day of the week as a line chart")
    assert data["source"]["grain"] == "weekday"
    assert data["x_axis"] == ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    want = dict(query(sample_path, "SELECT strftime('%w', order_date), COUNT(*) FROM orders GROUP BY 1"))
    assert data["series"][0]["values"] == [want[str(d)] for d in range(7)]


_SOUP = (
    "show me a bar pie line scatter chart of the average total number how many count by for each per "
    "over time top 5 bottom 3 sorted ascending descending high to low in 2007 not 'x' between 1 and 10 "
    "more than 4 or more which has highest lowest stacked colored by vs and or weekday yearly x axis"
).split()


@pytest.mark.parametrize("which", ["tips", "countries"])
def test_any_word_soup_gets_valid_components(which: str, request: pytest.FixtureRequest) -> None:
    """Hostile or garbled messages never raise and never produce a component the validator drops
    (empty splits, negative pies, pies with series and integer overflow were found this way)."""
    planner: OfflinePlanner = request.getfixturevalue(which)
    schema = planner.source.schema
    names = [n for t in schema.tables.values() for n in (t.name, *t.columns)]
    rng = random.Random(7)
    for _ in range(150):
        message = " ".join(rng.choice(_SOUP + names * 2) for _ in range(rng.randint(1, 14)))
        components = asyncio.run(planner.plan(message))
        assert components, message
        for c in components:
            assert validate_component(c, planner.limits) is not None, (message, c)


def test_a_distribution_of_one_measure_is_binned_with_its_filter(
    tips: OfflinePlanner, tips_path: Path
) -> None:
    data = chart(tips, "histogram of total bill for smokers")
    assert data["source"]["x"] == "total_bill" and data["source"]["aggregate"] == "count"
    (smokers,) = query(tips_path, "SELECT COUNT(*) FROM tips WHERE smoker = 'Yes'")[0]
    assert sum(data["series"][0]["values"]) == smokers
    sizes = chart(tips, "histogram of party size")  # a few whole values: one bar each, not bins
    assert pairs(sizes) == {
        str(k): v for k, v in query(tips_path, "SELECT size, COUNT(*) FROM tips GROUP BY size")
    }
