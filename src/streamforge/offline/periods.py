"""Time periods in a request ("2024", "Q4 2025", "Q1 vs Q2", "March", "last 3 months"), resolved on the data.

Design choice: "now" is the last date in the data, not the wall clock. A sample or a snapshot database
ends on some fixed day; "last month" on it should mean the last month *with data*, and the same
question should give the same answer tomorrow. A period without a year ("Q4", "March") means the most
recent one the data covers.

Periods are half-open ``[start, end)`` date ranges, so they translate into ``col >= start AND col < end``,
which compares correctly on DATE, TIMESTAMP and ISO text columns alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from streamforge.offline.lexicon import MONTH_MAY, MONTHS, NUMBER_WORDS

__all__ = ["Period", "PeriodRef", "add_months", "find_periods", "previous", "resolve"]

_GRAIN_ORDER = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True)
class PeriodRef:
    """A period as written: any of year, quarter, month; or a relative span ``(n, unit)``."""

    year: int | None = None
    quarter: int | None = None
    month: int | None = None
    relative: tuple[int, str] | None = None  # (count, unit) back from the anchor; count 0 = current
    text: str = ""


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive
    label: str
    grain: str  # the natural unit of the period: year, quarter, month, week or day

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


_YEAR = r"(?:19|20)\d\d"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"\bq([1-4])\s*(?:of\s+)?({_YEAR})\b"), "qy"),
    (re.compile(rf"\b({_YEAR})\s*-?\s*q([1-4])\b"), "yq"),
    (re.compile(r"\b(?:q([1-4])|(first|second|third|fourth|1st|2nd|3rd|4th)\s+quarter)\b"), "q"),
    (re.compile(rf"\b([a-z]+)\s+({_YEAR})\b"), "my"),
    (re.compile(rf"\b({_YEAR})\b"), "y"),
    (re.compile(r"\b(?:last|past|previous|prior)\s+(\d+|[a-z]+)\s+(day|week|month|quarter|year)s?\b"), "rel"),
    (re.compile(r"\b(this|current|last|previous|prior)\s+(day|week|month|quarter|year)\b"), "cur"),
    (re.compile(r"\b(ytd|year to date)\b"), "ytd"),
    (re.compile(r"\b(today|yesterday)\b"), "today"),
    (re.compile(r"\b([a-z]+)\b"), "m"),
)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}


def _month(word: str, strict: bool) -> int | None:
    if word == MONTH_MAY:
        return None if strict else 5
    return MONTHS.get(word)


def find_periods(text: str) -> list[PeriodRef]:
    """Every period written in ``text`` (lower-case), in order of appearance, without overlaps."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, PeriodRef]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for pattern, kind in _PATTERNS:
        for m in pattern.finditer(text):
            if not free(m.start(), m.end()):
                continue
            ref: PeriodRef | None = None
            g = m.groups()
            if kind == "qy":
                ref = PeriodRef(year=int(g[1]), quarter=int(g[0]))
            elif kind == "yq":
                ref = PeriodRef(year=int(g[0]), quarter=int(g[1]))
            elif kind == "q":
                ref = PeriodRef(quarter=int(g[0]) if g[0] else _ORDINALS[g[1]])
            elif kind == "my":
                month = _month(g[0], strict=False)
                ref = PeriodRef(year=int(g[1]), month=month) if month else None
            elif kind == "y":
                ref = PeriodRef(year=int(g[0]))
            elif kind == "rel":
                n = int(g[0]) if g[0].isdigit() else NUMBER_WORDS.get(g[0])
                ref = PeriodRef(relative=(n, g[1])) if n else None
            elif kind == "cur":
                ref = PeriodRef(relative=(0 if g[0] in ("this", "current") else -1, g[1]))
            elif kind == "ytd":
                ref = PeriodRef(relative=(0, "ytd"))
            elif kind == "today":
                ref = PeriodRef(relative=(0 if g[0] == "today" else -1, "day"))
            elif kind == "m":
                month = _month(g[0], strict=True)
                ref = PeriodRef(month=month) if month else None
            if ref is not None:
                taken.append((m.start(), m.end()))
                found.append(
                    (m.start(), PeriodRef(ref.year, ref.quarter, ref.month, ref.relative, m.group()))
                )
    return [ref for _, ref in sorted(found, key=lambda f: f[0])]


def _span(ref: PeriodRef, year: int) -> Period:
    if ref.quarter:
        start = date(year, 3 * ref.quarter - 2, 1)
        return Period(start, add_months(start, 3), f"{year}-Q{ref.quarter}", "quarter")
    if ref.month:
        start = date(year, ref.month, 1)
        return Period(start, add_months(start, 1), f"{year}-{ref.month:02d}", "month")
    return Period(date(year, 1, 1), date(year + 1, 1, 1), str(year), "year")


def _relative(ref: PeriodRef, anchor: date) -> Period:
    n, unit = ref.relative or (0, "day")
    if unit == "ytd":
        return Period(date(anchor.year, 1, 1), anchor + timedelta(days=1), f"{anchor.year} to date", "year")
    if n > 0:  # the last n units, ending with the anchor's
        end = anchor + timedelta(days=1)
        if unit == "day":
            start = end - timedelta(days=n)
        elif unit == "week":
            start = end - timedelta(weeks=n)
        else:
            months = {"month": 1, "quarter": 3, "year": 12}[unit] * n
            start = add_months(date(anchor.year, anchor.month, 1), 1 - months)
        return Period(start, end, f"last {n} {unit}s", "day" if unit in ("day", "week") else "month")
    # this/last unit: the calendar unit containing the anchor, or the one before it
    if unit == "day":
        day = anchor + timedelta(days=n)
        return Period(day, day + timedelta(days=1), day.isoformat(), "day")
    if unit == "week":
        monday = anchor - timedelta(days=anchor.weekday()) + timedelta(weeks=n)
        return Period(monday, monday + timedelta(weeks=1), f"week of {monday.isoformat()}", "week")
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    first = {
        "month": date(anchor.year, anchor.month, 1),
        "quarter": date(anchor.year, 3 * ((anchor.month - 1) // 3) + 1, 1),
        "year": date(anchor.year, 1, 1),
    }[unit]
    start = add_months(first, n * months)
    ref2 = PeriodRef(
        year=start.year,
        quarter=(start.month - 1) // 3 + 1 if unit == "quarter" else None,
        month=start.month if unit == "month" else None,
    )
    return _span(ref2, start.year)


def resolve(refs: list[PeriodRef], first: date, last: date) -> list[Period]:
    """Turn written periods into date ranges on data that runs from ``first`` to ``last``.

    A period without a year takes the latest year in which the data covers it; when several such
    periods are compared ("Q1 vs Q2"), they share the latest year that covers all of them.
    """
    absolute = [r for r in refs if r.relative is None]
    yearless = [r for r in absolute if r.year is None]
    shared_year: int | None = None
    if yearless:
        for year in range(last.year, first.year - 1, -1):
            spans = [_span(r, year) for r in yearless]
            if all(s.start <= last and s.end > first for s in spans):
                shared_year = year
                break
        shared_year = shared_year or last.year
    periods = []
    for ref in refs:
        if ref.relative is not None:
            periods.append(_relative(ref, last))
        else:
            periods.append(_span(ref, ref.year if ref.year is not None else shared_year or last.year))
    return periods


def previous(period: Period) -> Period:
    """The period of the same length just before ``period`` (the calendar unit for calendar periods)."""
    if period.grain in ("year", "quarter", "month") and period.start.day == 1:
        months = {"year": 12, "quarter": 3, "month": 1}[period.grain]
        length = (period.end.year - period.start.year) * 12 + period.end.month - period.start.month
        if period.end.day == 1 and length == months:
            start = add_months(period.start, -months)
            ref = PeriodRef(
                quarter=(start.month - 1) // 3 + 1 if period.grain == "quarter" else None,
                month=start.month if period.grain == "month" else None,
            )
            return _span(ref, start.year)
    start = period.start - timedelta(days=period.days)
    return Period(
        start, period.start, f"{start.isoformat()} to {(period.start - timedelta(days=1)).isoformat()}", "day"
    )


def grain_rank(grain: str) -> int:
    return _GRAIN_ORDER.index(grain)
