"""Schema matching: which tables, columns and values a message names.

The vocabulary is built once per schema from the schema itself: every table and column contributes its
name, its words (``signup_date`` -> "signup date", "signup"), the synonyms of those words from the
lexicon ("sales" -> ``revenue``), table-qualified phrases ("session duration" -> ``duration_seconds``),
and every dimension contributes its frequent values ("Europe" -> ``region = 'Europe'``). A message is
then scanned left to right for the longest known phrase, so "North America" wins over "north".

Every phrase keeps all its candidates with a score (exact name 1.0, synonym 0.8, lone word 0.6, ...):
which ``region`` is meant (``orders.region`` or ``users.region``) is decided later, once the table the
answer is about is known. Words that are not found may still be typos: a close spelling (difflib) of a
known word matches at a lower score and is reported, so the answer can say how it read the message.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Any

from streamforge.data.schema import Schema, singular, split_words
from streamforge.offline.lexicon import (
    GENERIC_COLUMN_WORDS,
    STOPWORDS,
    SYNONYMS,
    TABLE_AFFIXES,
    Token,
    is_function_word,
)

__all__ = ["Mention", "Target", "Vocabulary", "find_mentions", "table_words", "word_forms"]

_MAX_PHRASE = 4


def table_words(words: tuple[str, ...]) -> tuple[str, ...]:
    """A table's words without naming-convention affixes: ``tbl_items`` -> ("item",)."""
    kept = tuple(w for w in words if w not in TABLE_AFFIXES)
    return kept or words


def word_forms(word: str) -> list[str]:
    """Base forms of an inflected word, for words the vocabulary lacks as written.

    A rough stemmer for the two endings that turn column nouns into verbs and adjectives: "rated" ->
    "rate", "rating"; "shipped" -> "ship"; "selling" -> "sell". Only tried when the word as written
    matched nothing, so a real column named ``rated`` still wins.
    """
    forms: list[str] = []
    for ending in ("ed", "ing"):
        if not word.endswith(ending) or len(word) < len(ending) + 3:
            continue
        stem = word[: -len(ending)]
        forms += [stem, stem + "e"]
        if len(stem) > 3 and stem[-1] == stem[-2]:
            forms.append(stem[:-1])
        forms += [stem + "ing", stem + "ion"]
    return [f for f in forms if f != word]


@dataclass(frozen=True)
class Target:
    """A table (``column`` None), a column, or a value of a column (``value`` set)."""

    table: str
    column: str | None = None
    value: Any = None
    score: float = 1.0
    weak: bool = False  # a value that is also a common word ("Dashboard"): needs its column named too

    @property
    def kind(self) -> str:
        if self.value is not None:
            return "value"
        return "column" if self.column else "table"


@dataclass
class Mention:
    start: int  # token index
    end: int  # exclusive
    text: str
    targets: list[Target]
    fuzzy: bool = False
    weak: bool = False  # made only of function words ("total", "number"): used only when nothing else is


@dataclass
class Vocabulary:
    phrases: dict[tuple[str, ...], dict[Target, float]] = field(default_factory=dict)

    def add(self, phrase: tuple[str, ...], target: Target, score: float) -> None:
        if not phrase:
            return
        slot = self.phrases.setdefault(phrase, {})
        key = Target(target.table, target.column, target.value, 1.0, target.weak)
        slot[key] = max(score, slot.get(key, 0.0))

    def lookup(self, phrase: tuple[str, ...]) -> list[Target]:
        slot = self.phrases.get(phrase)
        if not slot:
            return []
        return sorted(
            (Target(t.table, t.column, t.value, s, t.weak) for t, s in slot.items()),
            key=lambda t: -t.score,
        )

    @classmethod
    def build(cls, schema: Schema) -> Vocabulary:
        vocab = cls()
        for table in schema.tables.values():
            t_words = table_words(table.words)
            t_target = Target(table.name)
            vocab.add(t_words, t_target, 1.0)
            vocab.add(table.words, t_target, 1.0)
            vocab.add(tuple(split_words(table.name)), t_target, 1.0)
            if len(t_words) > 1:
                vocab.add(t_words[-1:], t_target, 0.6)
            for syn in SYNONYMS.get(t_words[-1], ()) if t_words else ():
                vocab.add((*t_words[:-1], syn), t_target, 0.8)
                vocab.add((syn,), t_target, 0.7)
            for col in table.columns.values():
                c_target = Target(table.name, col.name)
                words = tuple(singular(w) for w in col.words)
                vocab.add(words, c_target, 1.0)
                core = tuple(w for w in words if w not in GENERIC_COLUMN_WORDS)
                if core and set(core) <= set(t_words):
                    core = ()  # order_date in orders: just "the date"; "order" names the table
                # A key column's words name the table it points to: "customer" should find the
                # customers table before orders.customer_id.
                k = 0.75 if col.kind == "identifier" else 1.0
                if core and core != words:
                    vocab.add(core, c_target, 0.9 * k)
                if core:
                    vocab.add((*t_words, *core), c_target, 1.05 * k)
                    if len(core) > 1:
                        for w in core:
                            vocab.add((w,), c_target, 0.6 * k)
                    for syn in SYNONYMS.get(core[-1], ()):
                        vocab.add((*core[:-1], syn), c_target, 0.8 * k)
                        vocab.add((*t_words, *core[:-1], syn), c_target, 0.85 * k)
                    vocab.add_parts(core, c_target, k)
                if col.kind == "dimension":
                    for value in col.values:
                        if not isinstance(value, str):
                            continue
                        v_words = tuple(singular(w) for w in split_words(value))
                        if not v_words or all(w.isdigit() for w in v_words):
                            continue
                        weak = all(is_function_word(w) or is_function_word(w + "s") for w in v_words)
                        vocab.add(v_words, Target(table.name, col.name, value, weak=weak), 0.95)
        return vocab

    def add_parts(self, core: tuple[str, ...], target: Target, k: float) -> None:
        """Synonyms of a compound name's parts, and of its parts run together.

        ``amount_usd``'s last word is a unit, so "revenue" must reach it through "amount";
        ``qty_on_hand`` is "stock" only as "onhand". These are weaker than the name's own words, so a
        column named for the idea still wins.
        """
        if len(core) < 2:
            return
        for word in core[:-1]:
            for syn in SYNONYMS.get(word, ()):
                self.add((syn,), target, 0.55 * k)
        for i in range(len(core) - 1):
            joined = core[i] + core[i + 1]
            for syn in (joined, *SYNONYMS.get(joined, ())):
                self.add((syn,), target, 0.7 * k)

    @functools.cached_property
    def single_words(self) -> list[str]:
        """Known one-word phrases, the candidates for typo matching (built once: the vocabulary is fixed)."""
        return [p[0] for p in self.phrases if len(p) == 1 and len(p[0]) >= 4]


def find_mentions(toks: list[Token], vocab: Vocabulary) -> list[Mention]:
    """Longest-phrase matches, left to right; then close spellings for words left over."""
    mentions: list[Mention] = []
    i = 0
    n = len(toks)
    while i < n:
        for length in range(min(_MAX_PHRASE, n - i), 0, -1):
            phrase = tuple(t.norm for t in toks[i : i + length])
            targets = vocab.lookup(phrase)
            if not targets:
                phrase = tuple(t.text for t in toks[i : i + length])
                targets = vocab.lookup(phrase)
            if not targets and length == 1 and not is_function_word(toks[i].text):
                for form in word_forms(toks[i].text):
                    found = vocab.lookup((form,))
                    if found:
                        targets = [Target(t.table, t.column, t.value, t.score * 0.9, t.weak) for t in found]
                        break
            if not targets:
                continue
            function_only = all(is_function_word(t.text) for t in toks[i : i + length])
            if function_only and length == 1 and toks[i].text in STOPWORDS and targets[0].score < 1.0:
                continue
            text = " ".join(t.text for t in toks[i : i + length])
            mentions.append(Mention(i, i + length, text, targets, weak=function_only))
            i += length
            break
        else:
            i += 1
    taken = {k for m in mentions for k in range(m.start, m.end)}
    words = vocab.single_words
    for k, tok in enumerate(toks):
        if k in taken or len(tok.norm) < 4 or is_function_word(tok.text):
            continue
        close = difflib.get_close_matches(tok.norm, words, n=1, cutoff=0.82)
        if close:
            targets = [
                Target(t.table, t.column, t.value, t.score * 0.7, t.weak) for t in vocab.lookup((close[0],))
            ]
            mentions.append(Mention(k, k + 1, tok.text, targets, fuzzy=True))
    mentions.sort(key=lambda m: m.start)
    return mentions
