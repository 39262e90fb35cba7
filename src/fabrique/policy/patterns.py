"""What every recognizer is made of: a finding, a text prepared once for all recognizers,
and a regular expression that only runs near the places a cheap trigger points at.

Why triggers: each regular expression over a whole 2 KB prompt costs 10-50 µs in ``re``,
mostly to try every position. A trigger is a pattern ``re`` scans fast (a literal first
character, or one pass shared by several recognizers) that every finding of its recognizer
overlaps; the recognizer then runs only in small windows around the trigger's matches. A
lookbehind still sees the text before a window (``re`` looks before ``pos``); ``after``
must leave room for the longest finding and its lookahead, as ``endpos`` ends the string.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entity:
    """One finding: its type, character offsets into the text, the text, a score in [0, 1]."""

    type: str
    start: int
    end: int
    text: str
    score: float

    def as_dict(self) -> dict[str, object]:
        return {"type": self.type, "start": self.start, "end": self.end, "text": self.text,
                "score": self.score}


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: a key of Prepared's memo
class Trigger:
    """A fast pattern that every finding of a recognizer overlaps."""

    pattern: re.Pattern[str]
    lowered: bool = False  # search the lower-cased text: (?i) keeps re from skipping ahead
    # The same pattern over ``Prepared.shape()``, where every digit is "0": re skips to a
    # literal first character fast, but tries a class such as \d at every position.
    fast: re.Pattern[bytes] | None = None


Span = tuple[int, int]
_UNSET = object()
_SHAPES = bytes.maketrans(b"0123456789" + bytes(range(65, 91)) + bytes(range(97, 123)) + b"\xa0",
                         b"0" * 10 + b"a" * 52 + b" ")


class Prepared:
    """A text being scanned and what recognizers share about it, each computed once."""

    __slots__ = ("_counts", "_lower", "_shape", "_spans", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._spans: dict[Trigger, list[Span] | None] = {}
        self._lower: object = _UNSET
        self._shape: object = _UNSET
        self._counts: dict[Trigger, list[int]] = {}

    def lower(self) -> str | None:
        """The text lower-cased, offsets unchanged; None when lowering would move them or
        (?i) would match what lowering misses (ı matches i, ſ matches s)."""
        if self._lower is _UNSET:
            low = self.text.lower()
            same = len(low) == len(self.text) and "ı" not in low and "ſ" not in low
            self._lower = low if same else None
        return self._lower  # type: ignore[return-value]

    def shape(self) -> bytes | None:
        """The text's shape, a byte per character: ASCII digits as "0", ASCII letters as "a",
        no-break spaces as spaces, the rest of Latin-1 as is and other characters as "?". None
        when one of those is a decimal digit (٣), which \\d matches."""
        if self._shape is _UNSET:
            text = self.text
            raw = text.encode("latin-1", "replace")
            foreign = raw.count(b"?") - text.count("?")  # characters outside Latin-1
            i = raw.find(b"?") if foreign else -1
            while i >= 0 and not text[i].isdecimal():
                i = raw.find(b"?", i + 1)
            self._shape = None if i >= 0 else raw.translate(_SHAPES)
        return self._shape  # type: ignore[return-value]

    def spans(self, trigger: Trigger) -> list[Span] | None:
        """Where the trigger matches; None when it cannot be trusted on this text."""
        if trigger not in self._spans:
            fast = self.shape() if trigger.fast is not None else None
            if fast is not None:
                self._spans[trigger] = [m.span() for m in trigger.fast.finditer(fast)]  # type: ignore[union-attr]
                return self._spans[trigger]
            text = self.lower() if trigger.lowered else self.text
            self._spans[trigger] = (None if text is None
                                    else [m.span() for m in trigger.pattern.finditer(text)])
        return self._spans[trigger]

    def counts(self, trigger: Trigger) -> list[int]:
        """For each of the trigger's matches, its digits (its length where they are not known)."""
        if trigger not in self._counts:
            digits, spans = self.shape(), self.spans(trigger) or []
            self._counts[trigger] = ([e - s for s, e in spans] if digits is None
                                     else [digits.count(b"0", s, e) for s, e in spans])
        return self._counts[trigger]

    def windows(self, trigger: Trigger | None, before: int, after: int,
                where: Where | None = None, min_digits: int = 0) -> list[Span]:
        """The parts of the text worth searching, merged where they overlap."""
        n = len(self.text)
        spans = None if trigger is None else self.spans(trigger)
        if spans is None or trigger is None:
            return [(0, n)]
        if min_digits:
            spans = [span for span, count in zip(spans, self.counts(trigger), strict=True)
                     if count >= min_digits]
        merged: list[Span] = []
        for s, e in spans:
            if where is not None and not where(self, s, e):
                continue
            s, e = s - before if s > before else 0, e + after if e + after < n else n
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        return merged


Validator = Callable[[str], float]  # the candidate -> score (0 rejects it)
Where = Callable[["Prepared", int, int], bool]  # which of a trigger's matches can lead to a finding
Adjust = Callable[[str, int, int, float], float]  # (text, start, end, score) -> score
Trim = Callable[[str], int]  # the candidate -> how many of its characters the value takes (0: none)


@dataclass(frozen=True, slots=True)
class PatternRecognizer:
    """A candidate pattern, a validator and context words that confirm a finding."""

    type: str
    pattern: re.Pattern[str]
    validate: Validator
    context: re.Pattern[str] | None = None
    trigger: Trigger | None = None  # None: search the whole text
    before: int = 0  # how far before a trigger's match a finding can start
    after: int = 0  # how far after it a finding, lookahead included, can end
    context_window: int = 40
    compact: bool = True  # validate without spaces, dots and dashes
    adjust: Adjust | None = None  # a last word on the score, from the text around
    where: Where | None = None  # which trigger matches to search near; None: all
    trim: Trim | None = None  # where a candidate that may run on into the next word ends
    anchored: bool = False  # findings start ``before`` the trigger's matches: match there only
    min_digits: int = 0  # the trigger's matches with fewer digits need no search near them

    def find(self, doc: Prepared) -> Iterator[Entity]:
        text = doc.text
        group = "v" if "v" in self.pattern.groupindex else 0  # (?P<v>…): the value itself
        for match in self._matches(doc):
            start, end = match.span(group)
            if start >= end:  # an empty match, or (?P<v>…) not taking part
                continue
            raw = text[start:end]
            if self.trim is not None:
                end = start + self.trim(raw)
                if end == start:
                    continue
                raw = text[start:end]
            score = self.validate(compact(raw) if self.compact else raw)
            if score <= 0:
                continue
            if score < 1 and self.context and self._context_before(doc, start):
                score = 1.0
            if self.adjust is not None:
                score = self.adjust(text, start, end, score)
            yield Entity(self.type, start, end, raw, score)

    def _context_before(self, doc: Prepared, start: int) -> bool:
        context, since = self.context, max(0, start - self.context_window)
        plain = _case_free(context) if context else None
        low = doc.lower() if plain else None
        if plain and low is not None:
            return plain.search(low, since, start) is not None
        return context is not None and context.search(doc.text, since, start) is not None

    def _matches(self, doc: Prepared) -> Iterator[re.Match[str]]:
        """As ``finditer`` over the whole text would find them."""
        text, where = doc.text, self.where
        spans = doc.spans(self.trigger) if self.anchored and self.trigger is not None else None
        if spans is None:
            for ws, we in doc.windows(self.trigger, self.before, self.after, where, self.min_digits):
                yield from self.pattern.finditer(text, ws, we)
            return
        end, before = 0, self.before
        for s, e in spans:
            s -= before
            if s < end or (where is not None and not where(doc, s + before, e)):
                continue
            if m := self.pattern.match(text, s):
                end = m.end()
                yield m


@functools.cache
def _case_free(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """A (?i) pattern written in lower case, without (?i): the same search on lower-cased text,
    three times faster (re does not skip ahead under (?i)). None for any other pattern."""
    source = pattern.pattern
    if not (pattern.flags & re.IGNORECASE and source.startswith("(?i)")) or source != source.lower():
        return None
    return re.compile(source[4:])


def compact(raw: str) -> str:
    return raw.replace(" ", "").replace("\u00a0", "").replace(".", "").replace("-", "").upper()


def resolve(found: list[Entity], priority: dict[str, int]) -> list[Entity]:
    """Overlaps resolved: the longer finding wins; at equal length, the type listed first."""
    if len(found) < 2:
        return found
    found.sort(key=lambda e: (e.start - e.end, priority.get(e.type, len(priority)), e.start))
    kept: list[Entity] = []  # sorted by start, disjoint: so their ends are sorted too
    starts: list[int] = []
    ends: list[int] = []
    for entity in found:
        i = bisect_left(starts, entity.end)  # those before i start before this one ends
        if i == 0 or ends[i - 1] <= entity.start:
            kept.insert(i, entity)
            starts.insert(i, entity.start)
            ends.insert(i, entity.end)
    return kept
