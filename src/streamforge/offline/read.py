"""Step one of the chart pipeline: a message read into words and cues, before any schema is consulted.

``read`` knows language, never data: it finds the words (with their singular forms and character
offsets), quoted values, numbers, and the cue phrases of :mod:`~streamforge.offline.language` with
the word positions they cover: which chart is asked for, aggregates, grouping words, negations,
comparisons, a sort clause and a "top N". Which column a cue applies to is decided later, by
position, once :mod:`~streamforge.offline.link` has found the columns.

Misspelt cue words ("averge", "descennding") are corrected against the cue vocabulary with
rapidfuzz before cues are looked up; data words are left alone here (the linker has its own fuzzy
match against the schema, which knows what the words could be).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from streamforge.data.schema import singular
from streamforge.offline.language import ENGLISH, Language

__all__ = ["Cue", "Order", "Reading", "Word", "read"]

_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])'([^']{1,80})'(?![A-Za-z0-9])"  # a quoted value: 'Boril'
    r"|\"([^\"]{1,80})\""
    r"|([A-Za-z0-9]+(?:[_\-.][A-Za-z0-9]+)*)"
    r"|([,.;:?!()])"
)
_FUZZY_MIN = 86


@dataclass(frozen=True)
class Word:
    text: str  # lower-case, as written (typos of cue words corrected)
    lemma: str  # singular form
    raw: str  # as written, with its case
    start: int  # character offsets in the message
    end: int
    quoted: bool = False
    punct: bool = False

    @property
    def number(self) -> float | None:
        try:
            return float(self.text)
        except ValueError:
            return None


@dataclass(frozen=True)
class Cue:
    kind: str  # chart aggregate superlative group direction axis negation comparator top
    value: str
    i: int  # first word
    j: int  # one past the last word


@dataclass(frozen=True)
class Order:
    direction: str  # asc | desc
    target: str | None  # x | y | None (a column named in the clause decides, else the default)
    default: str  # what a bare direction sorts by: "x" for "ascending", "y" for "high to low"
    span: tuple[int, int]  # the words of the sort clause, searched for what it sorts by
    head: int = 0  # its first sorting word: links from here on are left out of the x/y decision


@dataclass
class Reading:
    message: str
    words: list[Word]
    cues: list[Cue] = field(default_factory=list)
    chart: str | None = None  # the chart kind asked for
    chart_named: bool = False  # any chart word at all ("chart", "plot", "visualize", a kind)
    stacked: bool = False
    table_asked: bool = False
    order: Order | None = None
    top: tuple[int, str] | None = None  # (n, "desc" | "asc")

    def of(self, kind: str) -> list[Cue]:
        return [c for c in self.cues if c.kind == kind]

    def texts(self, i: int, j: int) -> str:
        return " ".join(w.text for w in self.words[i:j])


_CUE_WORDS: dict[str, tuple[str, ...]] = {}


def _cue_words(lang: Language) -> tuple[str, ...]:
    """Single cue words worth correcting a typo to (long enough that a near miss means them)."""
    if lang.name in _CUE_WORDS:
        return _CUE_WORDS[lang.name]
    words: set[str] = set()
    for table in (lang.aggregates, lang.directions, lang.superlatives, lang.chart_words):
        for phrase in table:
            words |= {w for w in phrase.split() if len(w) >= 5}
    words |= {w for w in lang.chart_nouns | lang.order_verbs if len(w) >= 5}
    _CUE_WORDS[lang.name] = tuple(sorted(words))
    return _CUE_WORDS[lang.name]


def _correct(word: str, lang: Language, known: frozenset[str]) -> str:
    if len(word) < 5 or not word.isalpha() or word in known or singular(word) in known:
        return word
    choices = _cue_words(lang)
    if word in choices:
        return word
    best = process.extractOne(word, choices, scorer=fuzz.ratio, score_cutoff=_FUZZY_MIN)
    return best[0] if best else word


def _words(message: str, lang: Language, known: frozenset[str]) -> list[Word]:
    out: list[Word] = []
    text = message.replace("’", "'").replace("‘", "'")
    text = re.sub(r"(?<=[A-Za-z])'s\b", "", text)
    for m in _TOKEN.finditer(text):
        quoted = m.group(1) or m.group(2)
        if quoted is not None:
            out.append(Word(quoted.lower(), quoted.lower(), quoted, m.start(), m.end(), quoted=True))
        elif m.group(3):
            raw = m.group(3).strip(".-")
            low = _correct(raw.lower(), lang, known)
            out.append(Word(low, singular(low), raw, m.start(), m.end()))
        else:
            out.append(Word(m.group(4), m.group(4), m.group(4), m.start(), m.end(), punct=True))
    return out


def _phrases(words: list[Word], table: dict[str, str] | frozenset[str], kind: str) -> list[Cue]:
    """Every occurrence of a phrase of ``table`` (longest first at each position, no overlaps)."""
    keys = table if isinstance(table, frozenset) else frozenset(table)
    longest = max((len(k.split()) for k in keys), default=1)
    found: list[Cue] = []
    i = 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            chunk = words[i : i + n]
            if any(w.punct or w.quoted for w in chunk):
                continue
            phrase = " ".join(w.text for w in chunk)
            if phrase not in keys:
                phrase = " ".join(w.lemma for w in chunk)
            if phrase in keys:
                value = phrase if isinstance(table, frozenset) else table[phrase]
                found.append(Cue(kind, value, i, i + n))
                i += n
                break
        else:
            i += 1
    return found


def _chart(words: list[Word], lang: Language) -> tuple[str | None, bool]:
    kind: str | None = None
    named = False
    for k, w in enumerate(words):
        nxt = words[k + 1].text if k + 1 < len(words) else ""
        if w.text in lang.chart_nouns or w.text in ("visualize", "visualise", "visualization"):
            named = True
        if kind is None and w.text in lang.chart_words:
            kind, named = lang.chart_words[w.text], True
        elif kind is None and w.text in lang.chart_words_before_noun and nxt in lang.chart_nouns:
            kind, named = lang.chart_words_before_noun[w.text], True
    return kind, named


def _number(word: Word, lang: Language) -> int | None:
    if word.text.isdigit():
        return int(word.text)
    return lang.number_words.get(word.text)


def _top(words: list[Word], lang: Language) -> tuple[int, str] | None:
    """ "top 5", "the 3 largest", "bottom ten": a count and the direction it ranks in."""
    for k, w in enumerate(words[:-1]):
        nxt = words[k + 1]
        n = _number(nxt, lang)
        if w.text in lang.top_words and n is not None and 0 < n <= 1000:
            return n, lang.top_words[w.text]
        if w.text in lang.superlatives and n is not None and 0 < n <= 1000:
            return n, lang.superlatives[w.text]
        n = _number(w, lang)
        if n is not None and 0 < n <= 1000 and nxt.text in lang.superlatives:
            return n, lang.superlatives[nxt.text]
    return None


def _clause_end(words: list[Word], k: int) -> int:
    while k < len(words) and not (words[k].punct and words[k].text in ",.;?!"):
        k += 1
    return k


def _order(words: list[Word], cues: list[Cue], lang: Language) -> Order | None:
    """The sort clause: a direction ("in descending order") or a verb with "by" ("sorted by seating")."""
    directions = [c for c in cues if c.kind == "direction"]
    verbs = [
        k
        for k, w in enumerate(words)
        if w.text in lang.order_verbs
        and k + 1 < len(words)
        and (words[k + 1].text in ("by", "in", "from") or (k + 2 < len(words) and words[k + 2].text == "by"))
    ]
    if not directions and not verbs:
        return None
    if directions:
        d = directions[-1]
        start = d.i
        # Reach back to the verb of the clause ("sort LName in desc order", "list by the y axis in asc").
        for k in range(d.i - 1, max(-1, d.i - 7), -1):
            if words[k].punct and words[k].text in ",.;?!":
                break
            if words[k].text in ("and", "with", "please"):
                break
            start = k
        direction = d.value
        phrase = " ".join(w.text for w in words[d.i : d.j])
        default = "y" if " to " in f" {phrase} " and "z" not in phrase else "x"
    else:
        start = verbs[-1]
        direction, default = "asc", "x"
    end = _clause_end(words, start)
    if directions:
        end = max(end, directions[-1].j)
    head = next(
        (k for k in range(start, end) if words[k].text in lang.order_verbs),
        directions[-1].i if directions else start,
    )
    if directions:
        head = min(head, directions[-1].i)
    after = [w.text for w in words[head:end]]
    before = [w.text for w in words[start:head]]
    target = _target(after, lang) or _target([w for w in before if w not in lang.chart_words], lang)
    return Order(direction, target, default, (start, end), head)


def _target(span_words: list[str], lang: Language, axes_only: bool = False) -> str | None:
    """What a sort clause sorts by, from its words: an axis ("by the Y"), or a word that means one
    ("by the names", "by the total number"); before the sorting verb only an axis counts ("a bar
    chart in descending order of age" sorts by age, not by "bar")."""
    for phrase, axis in sorted(lang.axis_words.items(), key=lambda p: -len(p[0])):
        parts = phrase.split()
        if any(span_words[k : k + len(parts)] == parts for k in range(len(span_words))):
            if phrase in ("x", "y") and not _bare_axis(span_words, phrase):
                continue
            return axis
    for k, text in enumerate([] if axes_only else span_words):
        two = " ".join(span_words[k : k + 2])
        if two in lang.order_targets:
            return lang.order_targets[two]
        if text in lang.order_targets:
            return lang.order_targets[text]
    return None


def _bare_axis(words: list[str], letter: str) -> bool:
    """ "by the X", "show X in asc": a lone x or y names an axis only next to the clause's glue words."""
    for k, w in enumerate(words):
        if w == letter:
            before = words[k - 1] if k else ""
            after = words[k + 1] if k + 1 < len(words) else ""
            if before in ("the", "by", "show", "sort", "list", "order", "rank", "display") or after in (
                "in",
                "from",
                "axis",
            ):
                return True
    return False


def read(message: str, lang: Language = ENGLISH, known: frozenset[str] = frozenset()) -> Reading:
    """``known``: the data's own words (table and column names), never "corrected" into cue words
    ("county" is not a typo of "count" in a database of counties)."""
    words = _words(message, lang, known)
    reading = Reading(message, words)
    reading.chart, reading.chart_named = _chart(words, lang)
    reading.stacked = any(w.text in lang.stacked_words for w in words)
    reading.table_asked = any(w.text in lang.table_nouns for w in words) and not reading.chart_named
    cues: list[Cue] = []
    cues += _phrases(words, lang.aggregates, "aggregate")
    cues += _phrases(words, lang.superlatives, "superlative")
    cues += _phrases(words, lang.group_cues, "group")
    cues += _phrases(words, lang.directions, "direction")
    cues += _phrases(words, lang.axis_words, "axis")
    cues += _phrases(words, lang.negations, "negation")
    cues += _phrases(words, lang.comparators, "comparator")
    cues += _phrases(words, lang.grains, "grain")
    cues += _phrases(words, lang.time_cues, "time")
    cues += _phrases(words, lang.share_cues, "share")
    cues += _phrases(words, lang.relation_cues, "relation")
    reading.cues = sorted(cues, key=lambda c: (c.i, -c.j))
    reading.order = _order(words, reading.cues, lang)
    reading.top = _top(words, lang)
    return reading
