"""Step two: words linked to tables, columns and values, each link with a score from one table.

A column is known by several forms of its name, built once per schema: its words (``AllergyType`` ->
"allergy type"), the same run together, its core without generic words (``County_name`` in
``county`` -> "county"), and everyday synonyms from the :class:`~streamforge.offline.language.Language`.
A span of the message (one to four words) is scored against every form by the rules in ``_SCORES``,
strongest first:

============  =====  ============================================================================
rule          score  example
============  =====  ============================================================================
exact         1.00   "allergy type" = ``AllergyType``; "date_of_birth" = ``Date_of_Birth``
core          0.90   "commander" = ``Bulgarian_Commander``? no: the core drops only generic words
abbreviation  0.85   "population" = ``pop``; "last name" = ``LName``; "miles per gallon" = ``mpg``
synonym       0.80   "gender" = ``sex``
fuzzy         0.75   "temprature" = ``temperature`` (rapidfuzz ratio >= 88)
partial       0.55   "type" = ``allergy_type`` (one non-generic word of a longer name)
============  =====  ============================================================================

Values are linked from an index of the distinct values of text columns (bounded per column) and of
integer year-like columns: exact (0.95), a one-letter code ("female" = 'F', 0.85), a day name
("on Sundays" = 'Sun', 0.9), a demonym ("Japanese" = 'Japan', 0.8), and quoted text (0.99).
Every decision can be explained by the rule name kept on the :class:`Target`.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein

from streamforge.data.schema import ColumnInfo, Schema, singular, split_words
from streamforge.offline.language import ENGLISH, Language
from streamforge.offline.lexicon import GENERIC_COLUMN_WORDS
from streamforge.offline.match import table_words
from streamforge.offline.read import Reading, Word

__all__ = ["Lexicon", "Link", "Target", "indexed_columns", "is_year_column", "link"]

_MAX_SPAN = 4
_MAX_VALUES = 2000  # distinct values indexed per column
_MAX_VALUE_LEN = 60
_GENERIC = frozenset(
    "id ids name names code codes num no number value type date at is has of the".split()
) | (GENERIC_COLUMN_WORDS - {"time", "date", "name", "value"})
_SCORES = {
    "exact": 1.0,
    "core": 0.9,
    "abbreviation": 0.85,
    "synonym": 0.8,
    "fuzzy": 0.75,
    "partial": 0.55,
    "quoted": 0.99,
    "value": 0.95,
    "day": 0.9,
    "code": 0.85,
    "demonym": 0.8,
    "year": 0.9,
    "label": 0.7,
    "bag": 0.85,
}


@dataclass(frozen=True)
class Target:
    table: str
    column: str | None = None  # None: the table itself
    value: Any = None  # set: a value of the column
    score: float = 1.0
    rule: str = "exact"
    values: tuple[Any, ...] = ()  # a day group ("weekends"): several values at once

    @property
    def kind(self) -> str:
        if self.value is not None or self.values:
            return "value"
        return "column" if self.column else "table"


@dataclass
class Link:
    i: int
    j: int
    text: str
    targets: list[Target]

    @property
    def best(self) -> Target:
        return self.targets[0]


@dataclass(frozen=True)
class _Form:
    words: tuple[str, ...]
    joined: str
    rule: str


def _norm_words(name: str) -> tuple[str, ...]:
    return tuple(singular(w) for w in split_words(name))


def _forms(words: tuple[str, ...], table_words: tuple[str, ...], lang: Language) -> list[_Form]:
    forms = [_Form(words, "".join(words), "exact")]
    if table_words and words[: len(table_words)] != table_words:
        qualified = (*table_words, *words)  # "product category" for products.category
        forms.append(_Form(qualified, "".join(qualified), "core"))
    core = tuple(w for w in words if w not in _GENERIC)
    # ``transaction_type`` in financial_transactions: "transactions" names the table's rows
    core_ok = bool(core) and core != words and not set(core) <= set(table_words)
    if core_ok:
        forms.append(_Form(core, "".join(core), "core"))
    head = words
    while len(head) > 1 and head[-1] in _GENERIC:
        head = head[:-1]  # ``card_type_code`` is "card type"
        if head != core:
            forms.append(_Form(head, "".join(head), "core"))
    trimmed = tuple(w for w in core if w not in table_words)
    if trimmed and trimmed != core:
        forms.append(_Form(trimmed, "".join(trimmed), "core"))
    if core and core != words and table_words and core[: len(table_words)] != table_words:
        qualified_core = (*table_words, *core)  # "session duration" for sessions.duration_seconds
        forms.append(_Form(qualified_core, "".join(qualified_core), "core"))
    for a, b in itertools.pairwise(words):
        for syn in lang.synonyms_of(a + b):  # ``qty_on_hand``: "onhand" is stock
            forms.append(_Form((syn,), syn, "synonym"))
    for k, w in enumerate(words):
        for syn in lang.synonyms_of(w):
            alt = (*words[:k], syn, *words[k + 1 :])
            forms.append(_Form(alt, "".join(alt), "synonym"))
            alt_core = tuple(x for x in alt if x not in _GENERIC)
            if core_ok and alt_core and alt_core != alt:
                forms.append(_Form(alt_core, "".join(alt_core), "synonym"))
    return forms


def _abbreviates(short: str, words: tuple[str, ...]) -> bool:
    """``short`` is made of prefixes of ``words`` in order: "lname" <- last name, "pop" <- population."""
    if len(short) < 2 or not words or not short.isalnum():
        return False
    if len(words) == 1:
        w = words[0]
        # "pop" <- "population", but "plan" is not short for "planet": a real abbreviation leaves
        # at least three letters out
        if len(short) < 3 or len(w) < len(short) + 3 or short[0] != w[0]:
            return False
        # a prefix ("pop"), or its letters in order ("dept", "qty")
        it = iter(w)
        # a prefix ("pop"), or a vowel-less contraction ("dept", "qty"): "age" is no contraction
        # of "allergie"
        contraction = len(short) >= 3 and not set(short[1:]) & set("aeiou")
        return w.startswith(short) or (contraction and all(ch in it for ch in short))

    def fits(s: str, k: int) -> bool:
        if k == len(words):
            return s == ""
        w = words[k]
        return any(w.startswith(s[:n]) and fits(s[n:], k + 1) for n in range(1, min(len(s), len(w)) + 1))

    return fits(short, 0)


class Lexicon:
    """Every table's and column's forms, and the value index, for one schema."""

    def __init__(
        self,
        schema: Schema,
        values: dict[tuple[str, str], list[Any]] | None = None,
        lang: Language = ENGLISH,
        small_integers: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        """``small_integers``: whole-number measure columns with few distinct values (party size,
        cylinders), which questions count and group like categories."""
        self.schema = schema
        self.small_integers = small_integers
        self.lang = lang
        self.tables: dict[str, list[_Form]] = {}
        self.columns: dict[tuple[str, str], list[_Form]] = {}
        self.like_table: set[tuple[str, str]] = set()
        self.keys: set[tuple[str, str]] = set()
        self.labels: dict[str, str] = {}
        for t in schema.tables.values():
            t_words = tuple(singular(w) for w in table_words(split_words(t.name)))  # tbl_items -> item
            self.tables[t.name] = _forms(t_words, (), lang)
            if t.label:
                self.labels[t.name] = t.label
            for c in t.columns.values():
                c_words = _norm_words(c.name)
                self.columns[(t.name, c.name)] = _forms(c_words, t_words, lang)
                if c_words == t_words and (c.kind in ("text", "identifier") or c.name == t.label):
                    # ``player.Player``: "players" means the table (its rows), not the column.
                    self.like_table.add((t.name, c.name))
                elif c.kind == "identifier" or "id" in c_words:
                    # ``member.College_ID``: "college" is first the college, reached by the key;
                    # "college id" is the key itself.
                    self.keys.add((t.name, c.name))
        self._index = _FormIndex(
            [(("table", name, ""), forms) for name, forms in self.tables.items()]
            + [(("column", t, c), forms) for (t, c), forms in self.columns.items()]
        )
        self._cache: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Target]] = {}
        self.known: frozenset[str] = frozenset(
            w for forms in [*self.tables.values(), *self.columns.values()] for f in forms for w in f.words
        )
        self.values: dict[str, list[tuple[str, str, Any]]] = {}
        self.single_letter: dict[str, list[tuple[str, str, Any]]] = {}
        self.years: list[tuple[str, str]] = []
        index = dict(values or {})
        for t in schema.tables.values():
            for c in t.columns.values():
                if (t.name, c.name) not in index and c.kind == "dimension" and c.values:
                    index[(t.name, c.name)] = list(c.values)
                if is_year_column(c):
                    self.years.append((t.name, c.name))
        for (table, column), vals in index.items():
            for v in vals[:_MAX_VALUES]:
                if not isinstance(v, str) or not v.strip() or len(v) > _MAX_VALUE_LEN:
                    continue
                key = _value_key(v)
                if len(v.strip()) == 1:
                    self.single_letter.setdefault(v.strip().upper(), []).append((table, column, v))
                elif key:
                    self.values.setdefault(key, []).append((table, column, v))

    # ------------------------------------------------------------------ scoring

    def column_targets(self, span: list[Word]) -> list[Target]:
        words = tuple(w.lemma for w in span)
        texts = tuple(w.text for w in span)
        if len(span) == 1 and re.search(r"[_\-]", span[0].text):
            words = tuple(singular(w) for w in re.split(r"[_\-]+", span[0].text) if w)
        key = (words, texts)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._score(words, texts)
            if len(self._cache) < 20_000:
                self._cache[key] = cached
        return list(cached)

    def _score(self, words: tuple[str, ...], texts: tuple[str, ...]) -> list[Target]:
        out: list[Target] = []
        for (kind, table, column), rule in self._index.match(words, texts, self.lang).items():
            if kind == "table":
                out.append(Target(table, score=_SCORES[rule] - 0.02, rule=rule))
                continue
            k = 0.6 if (table, column) in self.like_table else 1.0
            if (table, column) in self.keys and rule != "exact":
                k = 0.8
            out.append(Target(table, column, score=_SCORES[rule] * k, rule=rule))
        if words in (("name",), ("title",), ("label",)):
            # "the names": what names a row of each table (``document_name``, ``g_name``)
            out += [Target(t, c, score=0.7, rule="label") for t, c in self.labels.items()]
        return out

    def value_targets(self, span: list[Word]) -> list[Target]:
        out: list[Target] = []
        if len(span) == 1 and span[0].quoted:
            key = _value_key(span[0].raw)
            for table, column, v in self.values.get(key, []):
                out.append(Target(table, column, v, _SCORES["quoted"], "quoted"))
            return out
        if any(w.quoted or w.punct for w in span):
            return out
        key = " ".join(w.lemma for w in span)
        for table, column, v in self.values.get(key, []) or self.values.get(
            " ".join(w.text for w in span), []
        ):
            out.append(Target(table, column, v, _SCORES["value"], "value"))
        if len(span) != 1:
            return out
        word = span[0].text
        code = self.lang.code_words.get(word)
        for form in code.split("|") if code else ():
            # "women" is 'F' in one database and 'Female' in another
            hits = (
                self.single_letter.get(form.upper(), [])
                if len(form) == 1
                else self.values.get(_value_key(form), [])
            )
            out += [Target(t, c, v, _SCORES["code"], "code") for t, c, v in hits]
        day = _day_group(span[0].lemma, self.lang)
        if day:
            out += self._day_targets(day)
        if not out and len(word) >= 5:
            for ending in self.lang.demonym_endings:
                stem = word[: -len(ending)]
                if word.endswith(ending) and len(stem) >= 4:
                    for key2, hits in self.values.items():
                        if key2.startswith(stem) and " " not in key2 and len(key2) <= len(stem) + 3:
                            out += [Target(t, c, v, _SCORES["demonym"], "demonym") for t, c, v in hits]
                    if out:
                        break
        if span[0].text.isdigit() and len(span[0].text) == 4 and 1800 <= int(span[0].text) <= 2100:
            out += [Target(t, c, int(span[0].text), _SCORES["year"], "year") for t, c in self.years]
        return out

    def _day_targets(self, days: tuple[str, ...]) -> list[Target]:
        out: list[Target] = []
        by_column: dict[tuple[str, str], list[Any]] = {}
        for key, hits in self.values.items():
            if " " in key or len(key) < 3:
                continue
            for day in days:
                if day.startswith(key):
                    for t, c, v in hits:
                        by_column.setdefault((t, c), []).append(v)
        for (t, c), vals in by_column.items():
            if len(vals) == 1:
                out.append(Target(t, c, vals[0], _SCORES["day"], "day"))
            else:
                out.append(Target(t, c, None, _SCORES["day"], "day", tuple(vals)))
        return out


def _day_group(word: str, lang: Language) -> tuple[str, ...] | None:
    if word in ("weekend", "weekends"):
        return lang.weekend
    for day in lang.day_names:
        if word == day or word == day + "s" or (len(word) >= 3 and word == day[:3]):
            return (day,)
    return None


def is_year_column(col: ColumnInfo) -> bool:
    """An integer year (``Year``, ``Release_Year``): its values are linked as years ("in 2007") and
    the chart pipeline draws it as a time axis."""
    return col.integer and any(w == "year" or w.endswith("year") for w in col.words)


def _value_key(value: str) -> str:
    return " ".join(singular(w) for w in re.findall(r"[a-z0-9]+", value.lower()))


_Key = tuple[str, str, str]  # ("table" | "column", table, column)


class _FormIndex:
    """Every form of every name, indexed so that a span is scored without a scan of the schema:
    exact words and run-together names by dictionary, stems as a bag, and only names sharing the
    span's first letter tried as abbreviations or misspellings."""

    def __init__(self, items: list[tuple[_Key, list[_Form]]]) -> None:
        self.by_words: dict[tuple[str, ...], list[tuple[_Key, str]]] = {}
        self.by_joined: dict[str, list[tuple[_Key, str]]] = {}
        self.by_bag: dict[tuple[str, ...], list[_Key]] = {}
        self.by_letter: dict[str, list[tuple[_Key, _Form]]] = {}
        self.by_part: dict[str, list[_Key]] = {}
        for key, forms in items:
            for form in forms:
                self.by_words.setdefault(form.words, []).append((key, form.rule))
                self.by_joined.setdefault(form.joined, []).append((key, form.rule))
                if len(form.words) > 1:
                    self.by_bag.setdefault(tuple(sorted(map(_stem, form.words))), []).append(key)
                    for w in form.words:
                        self.by_part.setdefault(w, []).append(key)
                if form.rule == "exact" and form.joined:
                    self.by_letter.setdefault(form.joined[0], []).append((key, form))

    def match(self, words: tuple[str, ...], texts: tuple[str, ...], lang: Language) -> dict[_Key, str]:
        best: dict[_Key, str] = {}

        def better(key: _Key, rule: str) -> None:
            if key not in best or _SCORES[rule] > _SCORES[best[key]]:
                best[key] = rule

        if not words:
            return best
        joined = "".join(words)
        for key, rule in [
            *self.by_words.get(words, ()),
            *self.by_words.get(texts, ()),
            *(self.by_joined.get(joined, ()) if len(joined) >= 4 else ()),
        ]:
            better(key, rule)
        if len(words) > 1:
            for key in self.by_bag.get(tuple(sorted(map(_stem, words))), ()):
                better(key, "bag")  # "move in date" = ``date_moved_in``
        for key, form in self.by_letter.get(joined[0], ()):
            if (
                len(words) == 1
                and len(form.words) > 1
                and 2 <= len(words[0]) <= 5
                and _abbreviates(words[0], form.words)
            ):
                better(key, "abbreviation")  # "mpg" for ``Miles_per_Gallon``
            elif _abbreviates(form.joined, words) or (
                len(form.words) == len(words) > 1
                and all(a == b or _abbreviates(a, (b,)) for a, b in zip(form.words, words, strict=True))
            ):
                better(key, "abbreviation")
            elif _typo(joined, form.joined):
                better(key, "fuzzy")
        word = words[0]
        if len(words) == 1 and word not in _GENERIC and word not in lang.function_words and len(word) >= 3:
            for key in self.by_part.get(word, ()):
                better(key, "partial")
        return best


@functools.lru_cache(maxsize=4096)
def _stem(word: str) -> str:
    for ending in ("ing", "ed", "e", "s"):
        if word.endswith(ending) and len(word) > len(ending) + 2:
            return word[: -len(ending)]
    return word


def _typo(a: str, b: str) -> bool:
    """A misspelling: one edit (a swap counts as one) in a word of 5+, two in one of 9+ letters."""
    if len(a) < 5 or len(b) < 5 or a[0] != b[0]:
        return False
    limit = 2 if min(len(a), len(b)) >= 9 else 1
    return DamerauLevenshtein.distance(a, b, score_cutoff=limit) <= limit


def _spans(reading: Reading) -> Iterable[tuple[int, int]]:
    words = reading.words
    for i in range(len(words)):
        for n in range(min(_MAX_SPAN, len(words) - i), 0, -1):
            yield i, i + n


_LEADING = frozenset("the a an of and or to in for by with".split())


def _counts_a_table(span: list[Word], lexicon: Lexicon) -> bool:
    for n in (2, 1):
        head = " ".join(w.text for w in span[:n])
        if lexicon.lang.aggregates.get(head) == "count" and len(span) > n:
            rest = lexicon.column_targets(span[n:])
            return any(t.kind == "table" and t.score >= 0.9 for t in rest)
    return False


def link(reading: Reading, lexicon: Lexicon) -> list[Link]:
    """Non-overlapping links, the best-scored (then longest) spans first, in message order."""
    words = reading.words
    lang = lexicon.lang
    found: list[tuple[float, int, int, int, list[Target]]] = []
    for i, j in _spans(reading):
        span = words[i:j]
        if any(w.punct for w in span):
            continue
        if span[0].quoted and j - i > 1:
            continue
        first, last = span[0].text, span[-1].text
        if j - i == 1 and (first in lang.stopwords or first in lang.function_words) and not span[0].quoted:
            continue
        targets = lexicon.value_targets(span) + (lexicon.column_targets(span) if not span[0].quoted else [])
        if j - i > 1 and (first in lang.stopwords or last in lang.stopwords):
            # "asset make" is a column although "make" is also a verb; "the ages" is not a phrase
            targets = [t for t in targets if t.rule in ("exact", "core", "bag") and first not in _LEADING]
        if j - i > 1 and targets and _counts_a_table(span, lexicon):
            continue  # "number of hosts" counts the hosts table before it names ``Number_of_hosts``
        if not targets:
            continue
        targets.sort(key=lambda t: -t.score)
        found.append((targets[0].score, j - i, i, j, targets))
    found.sort(key=lambda f: (-f[0] * (1 + 0.15 * (f[1] - 1)), f[2]))
    taken: set[int] = set()
    links: list[Link] = []
    for _score, _n, i, j, targets in found:
        if any(k in taken for k in range(i, j)):
            continue
        taken |= set(range(i, j))
        links.append(Link(i, j, reading.texts(i, j), targets))
    links.sort(key=lambda lk: lk.i)
    return _merged(links, reading)


def _merged(links: list[Link], reading: Reading) -> list[Link]:
    """Neighbours naming the same column are one mention: "party size" -> ``size`` twice."""
    out: list[Link] = []
    for lk in links:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.j == lk.i
            and prev.best.kind == lk.best.kind == "column"
            and (prev.best.table, prev.best.column) == (lk.best.table, lk.best.column)
        ):
            best = max(prev.best, lk.best, key=lambda t: t.score)
            rest = [t for t in prev.targets + lk.targets if t != best]
            out[-1] = Link(prev.i, lk.j, reading.texts(prev.i, lk.j), [best, *rest])
        else:
            out.append(lk)
    return out


def indexed_columns(schema: Schema, max_columns: int = 200) -> list[tuple[str, str]]:
    """Which columns' distinct values to index: text-like columns of every table, bounded."""
    cols = [
        (t.name, c.name)
        for t in schema.tables.values()
        for c in t.columns.values()
        if not c.numeric and c.kind in ("dimension", "text") and not c.boolean
    ]
    return cols[:max_columns]
