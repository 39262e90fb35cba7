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


Span = tuple[int, int]
_UNSET = object()


class Prepared:
    """A text being scanned and what recognizers share about it, each computed once."""

    __slots__ = ("_lower", "_spans", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._spans: dict[Trigger, list[Span] | None] = {}
        self._lower: object = _UNSET

    def lower(self) -> str | None:
        """The text lower-cased, offsets unchanged; None when lowering would move them or
        (?i) would match what lowering misses (ı matches i, ſ matches s)."""
        if self._lower is _UNSET:
            low = self.text.lower()
            same = len(low) == len(self.text) and "ı" not in low and "ſ" not in low
            self._lower = low if same else None
        return self._lower  # type: ignore[return-value]

    def spans(self, trigger: Trigger) -> list[Span] | None:
        """Where the trigger matches; None when it cannot be trusted on this text."""
        if trigger not in self._spans:
            text = self.lower() if trigger.lowered else self.text
            self._spans[trigger] = (None if text is None
                                    else [m.span() for m in trigger.pattern.finditer(text)])
        return self._spans[trigger]

    def windows(self, trigger: Trigger | None, before: int, after: int,
                where: Where | None = None) -> list[Span]:
        """The parts of the text worth searching, merged where they overlap."""
        n = len(self.text)
        spans = None if trigger is None else self.spans(trigger)
        if spans is None:
            return [(0, n)]
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

    def find(self, doc: Prepared) -> Iterator[Entity]:
        text = doc.text
        group = "v" if "v" in self.pattern.groupindex else 0  # (?P<v>…): the value itself
        for ws, we in doc.windows(self.trigger, self.before, self.after, self.where):
            for match in self.pattern.finditer(text, ws, we):
                start, end = match.span(group)
                if start >= end:  # an empty match, or (?P<v>…) not taking part
                    continue
                raw = text[start:end]
                score = self.validate(compact(raw) if self.compact else raw)
                if score <= 0:
                    continue
                context = self.context
                if score < 1 and context and context.search(text, max(0, start - self.context_window), start):
                    score = 1.0
                if self.adjust is not None:
                    score = self.adjust(text, start, end, score)
                yield Entity(self.type, start, end, raw, score)


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
