"""Recognizers of your own, from config: regular expressions and deny-lists, turned into the
same pattern recognizers as the built-in ones."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fabrique.policy.patterns import PatternRecognizer, Validator

_ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True)
class RecognizerSpec:
    """A custom recognizer from config."""

    name: str  # the recognizer's name, used in error messages
    entity_type: str  # UPPER_SNAKE, e.g. "EMPLOYEE_ID"; may be new or a built-in type
    patterns: tuple[str, ...] = ()  # regexes (Python re); a named group (?P<v>…) marks the value
    deny_list: tuple[str, ...] = ()  # words/phrases matched case-insensitively, whole words
    score: float = 1.0
    context: tuple[str, ...] = ()  # words that raise a lower score to 1.0 when just before

    def error(self, reason: str) -> ValueError:
        return ValueError(f"recognizer {self.name!r}: {reason}")


def compile_spec(spec: RecognizerSpec) -> list[PatternRecognizer]:
    """The spec's recognizers; ValueError("recognizer 'NAME': <reason>") when it is wrong."""
    if not _ENTITY_TYPE.fullmatch(spec.entity_type):
        raise spec.error(f"entity type {spec.entity_type!r} is not UPPER_SNAKE (e.g. EMPLOYEE_ID)")
    if not spec.patterns and not spec.deny_list:
        raise spec.error("give patterns or a deny_list")
    if not 0 < spec.score <= 1:
        raise spec.error(f"score {spec.score} is not in (0, 1]")
    context = _words(spec, spec.context, "context") if spec.context else None
    patterns = [_pattern(spec, i, source) for i, source in enumerate(spec.patterns)]
    if spec.deny_list:
        patterns.append(_words(spec, spec.deny_list, "deny_list"))
    return [PatternRecognizer(spec.entity_type, p, _constant(spec.score), context=context,
                              compact=False) for p in patterns]


def _constant(score: float) -> Validator:
    return lambda value: score


def _pattern(spec: RecognizerSpec, i: int, source: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise spec.error(f"pattern {i + 1} is not a valid regular expression ({exc})") from None
    if compiled.fullmatch(""):
        raise spec.error(f"pattern {i + 1} matches the empty string")
    return compiled


def _words(spec: RecognizerSpec, words: tuple[str, ...], field: str) -> re.Pattern[str]:
    """Whole words or phrases, any case, any run of spaces between a phrase's words."""
    phrases = []
    for i, word in enumerate(words):
        parts = word.split()
        if not parts:
            raise spec.error(f"{field} entry {i + 1} is empty")
        phrases.append(r"\s+".join(map(re.escape, parts)))
    phrases.sort(key=len, reverse=True)  # the longest phrase first where several start alike
    return re.compile(r"(?i)(?<!\w)(?:" + "|".join(phrases) + r")(?!\w)")
