"""The offline planner: a sentence in, dashboard components from real query results out.

No model, no network: :mod:`~streamforge.offline.entities` reads the request against the schema,
:mod:`~streamforge.offline.compose` decides the components and their SQL, the data source runs the
SQL (read-only, guarded, off the event loop) and :mod:`~streamforge.offline.render` shapes the rows.
The pieces of one answer run concurrently; the answer keeps their order.

``plan`` never raises for a message: what cannot be matched is said in a card next to the nearest
useful answer. It raises only when the database itself fails, which the service reports.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from streamforge.components import Limits
from streamforge.data.source import DataSource
from streamforge.offline import followup, render
from streamforge.offline.compose import compose
from streamforge.offline.draw import draw
from streamforge.offline.entities import Metric, Request, time_of, understand
from streamforge.offline.link import Lexicon, indexed_columns, link
from streamforge.offline.match import Vocabulary
from streamforge.offline.read import Reading, read
from streamforge.offline.spec import Spec
from streamforge.offline.spec import pieces as spec_pieces
from streamforge.offline.views import View, decide
from streamforge.offline.viewsql import view_sql

__all__ = ["OfflinePlanner"]

log = logging.getLogger(__name__)


class OfflinePlanner:
    """Rule-based planner over a :class:`DataSource`; the default provider (``offline``)."""

    name = "offline"
    model_id = "offline-rules-1"

    def __init__(self, source: DataSource, limits: Limits) -> None:
        self.source = source
        self.limits = limits
        self._vocabulary: Vocabulary | None = None
        self._lexicon: Lexicon | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        """Built once from the source's schema (itself introspected once)."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary.build(self.source.schema)
        return self._vocabulary

    @property
    def lexicon(self) -> Lexicon:
        """The chart pipeline's names and value index, built once (it reads distinct values: run it
        off the event loop, as :meth:`prepare` does)."""
        if self._lexicon is None:
            self._lexicon = Lexicon(
                self.source.schema, self._distinct_values(), small_integers=self._small_integers()
            )
        return self._lexicon

    def _distinct_values(self) -> dict[tuple[str, str], list[Any]]:
        """Distinct values of text columns (bounded by the source's row limit), for "in China"."""
        out: dict[tuple[str, str], list[Any]] = {}
        for table, column in indexed_columns(self.source.schema):
            col = self.source.quote(column)
            sql = f"SELECT DISTINCT {col} FROM {self.source.quote(table)} WHERE {col} IS NOT NULL"
            try:
                out[(table, column)] = [row[0] for row in self.source.run_sync(sql).rows]
            except Exception:  # one unreadable column must not cost the others their values
                log.warning("distinct values of %s.%s not indexed", table, column, exc_info=True)
        return out

    def _small_integers(self) -> frozenset[tuple[str, str]]:
        """Whole-number measures with at most 12 distinct values: one COUNT(DISTINCT) per column."""
        found: set[tuple[str, str]] = set()
        for table in self.source.schema.tables.values():
            for col in table.columns.values():
                if not (col.integer and col.kind == "measure"):
                    continue
                name = self.source.quote(col.name)
                sql = f"SELECT COUNT(DISTINCT {name}) FROM {self.source.quote(table.name)}"
                try:
                    rows = self.source.run_sync(sql).rows
                except Exception:
                    log.warning("distinct count of %s.%s failed", table.name, col.name, exc_info=True)
                    continue
                if rows and rows[0][0] is not None and int(rows[0][0]) <= 12:
                    found.add((table.name, col.name))
        return frozenset(found)

    def names_data(self, message: str) -> bool:
        """Whether ``message`` names a table, column or value of the data by its own name (not by a
        synonym or a partial word): "revenue by region as a pie chart" does, "show me sales table"
        does not on the sample shop. False until :meth:`prepare` has built the lexicon, so the
        router never waits on the database."""
        lexicon = self._lexicon
        if lexicon is None:
            return False
        strong = {"exact", "core", "abbreviation", "bag", "quoted", "value", "year", "code", "day"}
        found = link(read(message, known=lexicon.known), lexicon)
        return any(lk.best.rule in strong and lk.best.score >= 0.85 for lk in found)

    async def prepare(self) -> None:
        """Introspect and build the vocabulary now (in a thread), so the first request is fast."""
        await asyncio.to_thread(lambda: (self.vocabulary, self.lexicon))

    def understand(self, message: str) -> Request:
        return understand(message, self.source.schema, self.vocabulary)

    async def plan(self, message: str, context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Components answering ``message``.

        With ``context["previous"]`` (the components on screen) a follow-up changes them: replaced
        components keep their ids, added ones have none, removed ones come back as
        ``{"type": "remove", "id": ...}``. A message that is not a follow-up, or one that cannot be
        applied, is answered as a fresh question.
        """
        if self._vocabulary is None or self._lexicon is None:
            await self.prepare()
        previous = (context or {}).get("previous")
        if isinstance(previous, list) and previous:
            changed = await followup.answer(
                message,
                previous,
                self.source.schema,
                self.vocabulary,
                self.source.dialect,
                self.limits,
                self.source.run,
            )
            if changed is not None:
                return changed
        reading = read(message, known=self.lexicon.known)
        chart = await self._chart(reading)
        if chart is not None:
            return [chart]
        req = self.understand(message)
        pieces = compose(req, self.source.schema, self.source.dialect, self.limits)
        results = await asyncio.gather(*(piece(self.source.run) for piece in pieces))
        components = [c for group in results for c in group]
        note = _unmatched_note(req, components)
        limit = self.limits.max_components
        if note is not None:
            components = [*components[: limit - 1], note]
        return components[:limit]

    async def _chart(self, reading: Reading) -> dict[str, Any] | None:
        """The one chart a message asks for: by name ("a pie chart of ..."), or by a figure and its
        grouping ("average tip by day", "life expectancy over time"). None answers it as a dashboard:
        an open question ("sales trends", "overview"), no x axis found, or the statement failed."""
        view = decide(reading, self.lexicon, self.limits.max_points)
        if view is None or reading.table_asked or not (reading.chart_named or view.grounded):
            return None
        schema = self.source.schema
        dialect, points = self.source.dialect, self.limits.max_points
        if view.chart == "histogram":
            return await self._histogram(view)
        try:
            sql = view_sql(view, schema, dialect, points, count_rows=view.implicit)
            result = await self.source.run(sql)
            if view.implicit and result.rows and all(row[-1] == 1 for row in result.rows):
                # "population by country in 2007": one row a point, so the values are plotted as
                # they stand and the SQL says so, rather than a SUM of one value each
                view = replace(view, aggregate="none", implicit=False)
                sql = view_sql(view, schema, dialect, points)
                result = await self.source.run(sql)
        except Exception:
            log.warning("chart view failed; answering as a dashboard", exc_info=True)
            return None
        return draw(view, result.columns, result.rows, sql, schema, self.limits)

    async def _histogram(self, view: View) -> dict[str, Any] | None:
        """Binned counts of one measure, through the dashboard's histogram (bins from the data)."""
        schema = self.source.schema
        binned = Spec(
            "histogram",
            "bar",
            view.base,
            metrics=[Metric(view.base, None, "count")],
            x=view.x,
            conds=list(view.filters),
            time=time_of(schema, view.base),
        )
        try:
            drawn = await asyncio.gather(
                *(
                    piece(self.source.run)
                    for piece in spec_pieces(binned, schema, self.source.dialect, self.limits)
                )
            )
        except Exception:
            log.warning("histogram failed; answering as a dashboard", exc_info=True)
            return None
        components = [c for group in drawn for c in group]
        return components[0] if components else None

    async def candidates(
        self, message: str, context: dict[str, Any] | None = None, n: int = 8
    ) -> list[dict[str, Any]]:
        """Up to ``n`` grounded components that could answer ``message``, for a model to choose from.

        The plan's own components come first (the rules' best guess, in order), then an overview of
        the same figure (cards, trend, breakdown, top rows), without repeating a query. Each carries
        its real data and ``data.source``. ``context`` is accepted for symmetry with :meth:`plan`.
        """
        if self._vocabulary is None:
            await self.prepare()
        req = self.understand(message)
        wide = replace(req, info=replace(req.info, overview=True, intent="none"))
        pieces = [
            *compose(req, self.source.schema, self.source.dialect, self.limits),
            *compose(wide, self.source.schema, self.source.dialect, self.limits),
        ]
        results = await asyncio.gather(*(piece(self.source.run) for piece in pieces))
        seen: set[tuple[object, ...]] = set()
        out: list[dict[str, Any]] = []
        for component in (c for group in results for c in group):
            data = component.get("data") or {}
            source = data.get("source") or {}
            keys = {
                (component.get("type"), data.get("chart_type"), data.get("title")),
                (component.get("type"), data.get("chart_type"), source.get("sql")),
            }
            if not keys & seen:
                seen |= keys
                out.append(component)
        return out[:n]


def _unmatched_note(req: Request, components: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A card naming the words that matched nothing, when they mattered to the question."""
    if not req.unmatched:
        return None
    if req.matched and not _grouped_unknown(req):
        return None
    words = ", ".join(f"“{w[:40]}”" for w in req.unmatched[:5])
    shown = next((c["data"].get("title") for c in components if c.get("data")), None)
    answer = f" Showing {shown} instead." if shown else ""
    return render.note(
        "Not found in the data",
        words,
        f"No table, column or value matches {words}.{answer}",
    )


def _grouped_unknown(req: Request) -> bool:
    words = req.message.lower().split()
    return any(
        i > 0 and words[i - 1] in ("by", "per", "across", "each") and w.strip("?.,!") in req.unmatched
        for i, w in enumerate(words)
    )
