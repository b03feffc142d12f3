"""Words the offline planner knows without a database: synonyms, cue words, numbers, months.

Design choice: the lexicon holds *language*, never schema. Synonym groups say that "sales" and
"revenue" are the same idea; whether a database has a ``revenue`` or an ``amount`` column is found by
:mod:`streamforge.offline.match` at run time. So a new database needs no new words, and a new word
helps every database that has a matching column.

All words are stored singular and lower-case; :func:`tokens` applies the same normalisation to a
message, so "Customers" finds the ``customer`` group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamforge.data.schema import singular

# Interchangeable words. The first word of a group is only a name for it.
SYNONYM_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "revenue sale income turnover earning gmv amount money takings proceeds billing spend spending value "
        "sell sold selling",
        "user customer client member account people person buyer subscriber shopper",
        "product item good sku article merchandise",
        "order purchase transaction checkout",
        "session visit engagement activity usage event login pageview interaction",
        "quantity unit qty volume piece",
        "price cost pricing msrp",
        "duration length seconds minute spent",
        "category type kind segment class genre",
        "region area territory market geography geo zone",
        "country nation",
        "city town",
        "channel medium",
        "plan tier subscription package",
        "status state stage",
        "feature module section",
        "signup registration register joined join signed onboarded",
        "discount promo markdown rebate",
        "salary pay wage compensation payroll",
        "employee staff worker headcount personnel hire",
        "department team division dept",
        "profit margin",
        "stock inventory onhand instock",
        "warehouse location site store branch",
        "supplier vendor",
        "rating score review",
        "hired hire",
        "name title",
    )
)

SYNONYMS: dict[str, frozenset[str]] = {}
for _group in SYNONYM_GROUPS:
    for _word in _group:
        SYNONYMS[_word] = SYNONYMS.get(_word, frozenset()) | (_group - {_word})

# Money-like words: a measure named so is the natural default figure of its table.
MONEY_WORDS = frozenset(
    "revenue sale sales amount total price cost value income profit spend gmv salary payment fee "
    "balance mrr arr".split()
)
# Measures that are averaged, not added up, when the request names no aggregate.
INTENSIVE_WORDS = frozenset(
    "price rate ratio percent pct percentage score rating age duration discount temperature margin salary "
    "wage latency probability share avg average mean seconds minutes hours".split()
)
# Words that name a column's type or unit rather than what it holds (duration_seconds -> duration).
# Units and currencies count as such words too: ``amount_usd`` is the amount, ``duration_ms`` the duration.
GENERIC_COLUMN_WORDS = frozenset(
    "id date at time timestamp ts second seconds sec minute minutes name value num number code is has "
    "ms usd eur gbp cents amt".split()
)
# Naming conventions around a table's real name: ``tbl_items`` and ``dim_customer`` are items and
# customers. Dropped from a table's words only when another word is left.
TABLE_AFFIXES = frozenset("tbl tb tab dim fact fct vw view stg raw src dbo mart".split())

# Words that steer the answer; they are never unmatched "content" and never data values on their own.
AGGREGATE_WORDS: dict[str, str] = {
    "total": "sum",
    "sum": "sum",
    "overall": "sum",
    "cumulative": "sum",
    "average": "avg",
    "avg": "avg",
    "mean": "avg",
    "typical": "avg",
    "count": "count",
    "number": "count",
    "many": "count",
    "maximum": "max",
    "max": "max",
    "peak": "max",
    "minimum": "min",
    "min": "min",
}
SUPERLATIVE_DESC = frozenset("top best most highest largest biggest greatest leading max maximum".split())
SUPERLATIVE_ASC = frozenset("bottom worst least lowest smallest fewest min minimum".split())
GRAIN_WORDS: dict[str, str] = {
    "daily": "day",
    "day": "day",
    "weekly": "week",
    "week": "week",
    "monthly": "month",
    "month": "month",
    "quarterly": "quarter",
    "quarter": "quarter",
    "yearly": "year",
    "year": "year",
    "annual": "year",
    "annually": "year",
}
CHART_WORDS: dict[str, str] = {
    "line": "line",
    "bar": "bar",
    "column": "bar",
    "histogram": "bar",
    "area": "area",
    "pie": "pie",
    "donut": "pie",
    "doughnut": "pie",
    "scatter": "scatter",
    "bubble": "scatter",
}
GENERIC_CHART_WORDS = frozenset("chart graph plot visualize visualise visualization diagram".split())
TABLE_WORDS = frozenset("table tabular spreadsheet grid".split())
GROUP_PREPOSITIONS = frozenset("by per across each every between among".split())
NUMBER_WORDS: dict[str, int] = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
MONTHS: dict[str, int] = {}
for _i, _name in enumerate(
    "january february march april may june july august september october november december".split(), 1
):
    MONTHS[_name] = _i
    MONTHS[_name[:3]] = _i
MONTHS["sept"] = 9
del MONTHS["may"]  # "may" is far more often a verb; the full month name still works via _MONTH_MAY
MONTH_MAY = "may"

STOPWORDS = frozenset(
    """a an the of to in on at for from with without and or but not no is are was were be been being do does
    did done have has had having i me my we our us you your it its this that these those there here what
    which who whom whose when where why how can could would should will shall may might must please show
    me give get tell let see find display view make create want need like know about into over under than
    then so as all any some each every only just also very really much more less most least up down out
    off again further once both few other such own same too s t just don now vs versus against compare
    comparing comparison between trend trends trending over time timeline history evolution growth grow
    growing change changes changed progress list listing all records record rows row details detail recent
    latest newest oldest earliest last past previous prior next current this year years quarter quarters
    month months week weeks day days today yesterday ytd breakdown break split share proportion percentage
    percent distribution spread histogram relationship correlation correlate correlated relate related
    impact effect affect versus top bottom best worst highest lowest largest biggest smallest greatest
    leading rank ranking ranked summary summarize summarise overview dashboard report reports reporting
    insight insights analyze analyse analysis analytics performance perform kpi kpis metric metrics stat
    stats statistics health snapshot chart graph plot visualize visualise table tables data
    information info new ai llm smart intelligent quick brief full entire whole complete overall
    based using use via per by across among within during since until before after through lot lots
    going doing happening look looking shown showing q1 q2 q3 q4 number count total sum average avg mean
    maximum minimum max min many typical has have had having got""".split()
)
# Words that introduce a figure question ("how many", "what is the total").
SINGLE_CUES = (
    "how many",
    "how much",
    "what is",
    "what's",
    "whats",
    "what was",
    "what are",
    "number of",
    "count of",
    "total number",
)

_TOKEN = re.compile(r"[a-z0-9]+(?:\.\d+)?|[<>]=?|=")


@dataclass(frozen=True)
class Token:
    text: str  # as written, lower-case
    norm: str  # singular form used for matching
    start: int  # character offset in the lower-cased message


def tokens(message: str) -> list[Token]:
    """Lower-case word tokens with their singular forms; punctuation is dropped."""
    lowered = message.lower().replace("’", "'").replace("'s ", " ")
    return [Token(m.group(), singular(m.group()), m.start()) for m in _TOKEN.finditer(lowered)]


def is_function_word(word: str) -> bool:
    """A word that steers the answer (or glues the sentence) rather than naming data."""
    return (
        word in STOPWORDS
        or word in AGGREGATE_WORDS
        or word in GRAIN_WORDS
        or word in CHART_WORDS
        or word in GENERIC_CHART_WORDS
        or word in TABLE_WORDS
        or word in NUMBER_WORDS
        or word.isdigit()
    )
