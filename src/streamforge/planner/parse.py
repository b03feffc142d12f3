"""Extract component dicts from what an LLM wrote, whole or as it streams in.

The prompt asks for a JSON array between ``$$$`` delimiters (decisions.md, "LLM answers"), but models
drift: they wrap the array in a ```json fence, add prose before and after, answer with one object or a
``{"components": [...]}`` root, leave trailing commas, or stop mid-array at ``max_tokens``. All of that
is still a usable answer, so :func:`parse_components` accepts it. JSON damage is mended by json-repair
(a real parser), never by regex surgery; regexes only locate delimiters and fences.

Nothing here validates a component: it returns plain dicts, and the one validator in
:mod:`streamforge.components` decides what may be sent. Nothing here raises either, since a bad answer
is the planner's normal case to handle (with a retry, another provider or the fallback), not a crash.

:class:`StreamingComponentParser` serves token streaming: it returns each top-level array element as
soon as its closing bracket arrives, so a client can draw the first chart while the model writes the
second. It tracks strings, escapes and nesting itself rather than re-parsing the growing buffer with a
partial-mode parser on every chunk: that keeps the work linear in the answer's length, and a closing
bracket at the element's own depth is an unambiguous end (a partial parse cannot tell a finished
object from one whose remaining keys have not arrived yet). :meth:`StreamingComponentParser.close`
reconciles with the one-shot parse of the whole text, so chunked feeding never yields less than
:func:`parse_components` would.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import json_repair

log = logging.getLogger(__name__)

__all__ = ["StreamingComponentParser", "parse_components"]

DELIMITER = "$$$"
_FENCE = "```"
# An opening fence with an optional language tag, its content, and the closing fence (or the end, for
# an answer cut off mid-block).
_FENCED = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
# The last key before an array opens inside a root object: is this the ``"components"`` array?
_COMPONENTS_KEY = re.compile(r'"components"\s*:\s*$')
_SURROGATE = re.compile("[\ud800-\udfff]")
# Far beyond any answer max_tokens allows; bounds the work json-repair can be asked to do.
_MAX_TEXT = 1_000_000


def parse_components(text: str) -> list[dict[str, Any]]:
    """The component dicts in an LLM answer, in order; ``[]`` when there is nothing usable.

    Accepted: a JSON array between ``$$$`` delimiters (or several ``$$$``-framed objects), a bare
    array, a fenced code block, prose around any of those, a single object, a ``{"components": [...]}``
    root, and damage json-repair can mend (trailing commas, single quotes, missing commas, a truncated
    end). Items that are not objects are dropped.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    if len(text) > _MAX_TEXT:
        log.warning("LLM answer of %d characters cut to %d before parsing", len(text), _MAX_TEXT)
        text = text[:_MAX_TEXT]
    components: list[dict[str, Any]] = []
    for payload in _payloads(text):
        components.extend(_components_of(_load(payload)))
    return components


def _payloads(text: str) -> list[str]:
    """The pieces of ``text`` that should hold JSON: ``$$$`` segments, else fenced blocks, else all."""
    # Odd-numbered parts lie between an opening and a closing delimiter; an unclosed last delimiter
    # (a truncated answer) leaves its tail as the last part, which is what we want.
    segments = text.split(DELIMITER)[1::2] if DELIMITER in text else [text]
    payloads: list[str] = []
    for segment in segments:
        fenced = [m.group(1) for m in _FENCED.finditer(segment)] if _FENCE in segment else []
        usable = [f for f in fenced if "[" in f or "{" in f]
        payloads.extend(usable or [segment])
    return payloads


# A component is about five levels deep; deeper text is not a plan, and would cost json.loads its
# recursion limit and json-repair seconds of CPU.
_MAX_DEPTH = 32


def _too_deep(text: str) -> bool:
    """Does ``text`` nest brackets deeper than a plan can? One pass, strings skipped."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return True
        elif ch in "]}":
            depth = max(0, depth - 1)
    return False


def _load(payload: str) -> Any:
    """Parse strictly when we can (fast, exact), and let json-repair mend the rest."""
    stripped = payload.strip()
    if not stripped:
        return None
    if _too_deep(stripped):
        log.warning("an LLM answer nests deeper than %d levels; not parsed", _MAX_DEPTH)
        return None
    try:
        return _mend_surrogates(json.loads(stripped))
    except (ValueError, RecursionError):
        pass
    # Start at the first bracket: json-repair reads "#" and "//" in leading prose as comments that
    # run to the end of the line, which would swallow JSON on the same line.
    starts = [i for i in (stripped.find("["), stripped.find("{")) if i >= 0]
    if not starts:
        return None
    try:
        return _mend_surrogates(json_repair.loads(stripped[min(starts) :]))
    except Exception:  # json-repair is best effort; a failure here is just an unusable answer
        log.debug("json-repair could not mend an LLM answer", exc_info=True)
        return None


def _mend_surrogates(value: Any) -> Any:
    """Join escaped surrogate pairs (json-repair leaves ``"\\ud83d\\ude00"`` as two halves) and
    replace lone surrogates, which could not be encoded as UTF-8 on the way to the client."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [_mend_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_mend_surrogates(k): _mend_surrogates(v) for k, v in value.items()}
    return value


def _components_of(value: Any, depth: int = 0) -> list[dict[str, Any]]:
    """Normalise a parsed root to a list of dicts.

    A list of roots (json-repair's answer to several JSON values in one text) is flattened; that is
    safe because a component list never holds a list directly.
    """
    if depth > 3:
        return []
    if isinstance(value, dict):
        inner = value.get("components")
        if isinstance(inner, list):
            return _components_of(inner, depth + 1)
        return [value]
    if isinstance(value, list):
        out: list[dict[str, Any]] = []
        for item in value:
            if isinstance(item, dict | list):
                out.extend(_components_of(item, depth + 1))
        return out
    return []


class StreamingComponentParser:
    """Feed an answer chunk by chunk; get each component as soon as it is complete.

    ``feed`` returns the components completed by that chunk (often none); ``close`` returns whatever
    the whole text holds beyond what ``feed`` already returned. Together they return the same list as
    :func:`parse_components` of the concatenated text, except that a component ``feed`` returned is
    never taken back.

    Roots are found the way the one-shot parse finds them: once a ``$$$`` delimiter has been seen,
    only JSON between delimiters counts; once a code fence has been seen (and no delimiter), only JSON
    inside fences counts. Before either, any ``[`` or ``{`` starts a root, since the parser cannot
    know yet whether a delimiter will follow.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._pos = 0  # next character to look at
        self._emitted: list[dict[str, Any]] = []
        self._closed = False
        self._broken = False  # the scanner failed once; leave everything to close()
        # Where we are outside JSON.
        self._seen_delimiter = False
        self._in_delimiter = False
        self._seen_fence = False
        self._in_fence = False
        self._skip_fence_tag = False
        # Where we are inside a root value.
        self._root_start: int | None = None
        self._stack: list[str] = []
        self._in_string = False
        self._escape = False
        self._target_depth: int | None = None  # stack depth of the array whose items are components
        self._item_start: int | None = None
        self._item_is_container = False

    def feed(self, chunk: str) -> list[dict[str, Any]]:
        """Add ``chunk``; return the components it completed, in order."""
        if self._closed or not chunk:
            return []
        if len(self._buf) + len(chunk) > _MAX_TEXT:
            chunk = chunk[: max(0, _MAX_TEXT - len(self._buf))]
        self._buf += chunk
        if self._broken:
            return []
        out: list[dict[str, Any]] = []
        try:
            self._scan(out)
        except Exception:  # a scanner bug must not break a stream; close() still parses it all
            log.exception("streaming parse failed; the rest is left to the final parse")
            self._broken = True
        self._emitted.extend(out)
        return out

    def close(self) -> list[dict[str, Any]]:
        """End of the answer: the components not yet returned, from a one-shot parse of it all."""
        if self._closed:
            return []
        self._closed = True
        final = parse_components(self._buf)
        done = len(self._emitted)
        if final[:done] == self._emitted:
            return final[done:]
        # The one-shot parse read the text differently (damage the scanner took at face value); send
        # what it found that has not gone out yet, and never take back what has.
        log.debug("streaming and one-shot parses differ; reconciling")
        remaining = list(self._emitted)
        rest: list[dict[str, Any]] = []
        for item in final:
            if item in remaining:
                remaining.remove(item)
            else:
                rest.append(item)
        return rest

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return self._buf

    # -- scanning ----------------------------------------------------------------------------------

    def _scan(self, out: list[dict[str, Any]]) -> None:
        buf = self._buf
        while self._pos < len(buf):
            if self._root_start is None:
                if not self._seek(buf):
                    return
            else:
                self._scan_root(buf, out)

    def _seek(self, buf: str) -> bool:
        """Outside JSON: step past prose and delimiters to the next root. False when out of text."""
        if self._skip_fence_tag:
            # After an opening fence, skip its language tag ("json"), which may arrive split.
            i = self._pos
            while i < len(buf) and (buf[i].isalnum() or buf[i] in "_+-"):
                i += 1
            if i == len(buf):
                self._pos = i
                return False
            self._skip_fence_tag = False
            self._pos = i
        hits = [
            (idx, marker)
            for marker in (DELIMITER, _FENCE, "[", "{")
            if (idx := buf.find(marker, self._pos)) >= 0
        ]
        if not hits:
            # Keep two characters back: they may be the start of a "$$$" or "```" split across chunks.
            self._pos = max(self._pos, len(buf) - 2)
            return False
        idx, marker = min(hits)
        if marker == DELIMITER:
            self._seen_delimiter = True
            self._in_delimiter = not self._in_delimiter
            self._in_fence = False
            self._pos = idx + len(DELIMITER)
            return True
        if marker == _FENCE:
            self._seen_fence = True
            self._in_fence = not self._in_fence
            self._skip_fence_tag = self._in_fence
            self._pos = idx + len(_FENCE)
            return True
        # A bracket: a root, if it stands where the one-shot parse would look.
        accepted = (self._in_delimiter if self._seen_delimiter else True) and (
            self._in_fence or not self._seen_fence or self._seen_delimiter
        )
        if not accepted:
            self._pos = idx + 1
            return True
        self._root_start = idx
        self._stack = []
        self._in_string = False
        self._escape = False
        self._target_depth = 1 if marker == "[" else None
        self._item_start = None
        self._pos = idx
        return True

    def _scan_root(self, buf: str, out: list[dict[str, Any]]) -> None:
        """Inside a root value: track nesting and hand out each finished component."""
        root_start = self._root_start
        assert root_start is not None
        i = self._pos
        n = len(buf)
        while i < n:
            ch = buf[i]
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif ch == "\\":
                    self._escape = True
                elif ch == '"':
                    self._in_string = False
                i += 1
                continue
            depth = len(self._stack)
            at_item_level = self._target_depth is not None and depth == self._target_depth
            if at_item_level and self._item_start is None and not ch.isspace() and ch not in ",]}":
                self._item_start = i
                self._item_is_container = ch in "[{"
            if ch == '"':
                self._in_string = True
            elif ch in "[{":
                if (
                    ch == "["
                    and depth == 1
                    and self._stack[0] == "{"
                    and self._target_depth is None
                    and _COMPONENTS_KEY.search(buf, root_start, i)
                ):
                    self._target_depth = 2
                self._stack.append(ch)
            elif ch in "]}":
                if self._stack:
                    self._stack.pop()
                depth = len(self._stack)
                if self._target_depth is not None:
                    if depth == self._target_depth and self._item_start is not None:
                        if self._item_is_container:
                            out.extend(_components_of(_load(buf[self._item_start : i + 1])))
                            self._item_start = None
                    elif depth == self._target_depth - 1:
                        self._item_start = None  # the component array closed
                if not self._stack:
                    if self._target_depth is None:
                        # A root object that was not a {"components": [...]} wrapper: one component.
                        out.extend(_components_of(_load(buf[root_start : i + 1])))
                    self._root_start = None
                    self._target_depth = None
                    self._pos = i + 1
                    return
            elif ch == "," and at_item_level and self._item_start is not None:
                self._item_start = None  # a scalar item ended: not a component
            i += 1
        self._pos = i
