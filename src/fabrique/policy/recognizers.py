"""Find personal data in text: e-mails, phones, IBANs, cards, NIR, SIREN/SIRET, IPs, dates
of birth. Each recognizer is a regular expression for candidates and, where the format has
one, a validator (check digits) that rejects look-alikes.

Scores: 1.0 for a valid check digit with its usual layout, lower where only the shape is
known; a keyword nearby ("SIREN", "né le", "IBAN" …) raises a score to 1.0.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fabrique.policy.checksums import iban_valid, luhn, nir_valid, siret_valid


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


Validator = Callable[[str], float]  # the compact candidate -> score (0 rejects it)


@dataclass(frozen=True, slots=True)
class PatternRecognizer:
    """A candidate pattern, a validator and context words that confirm a finding."""

    type: str
    pattern: re.Pattern[str]
    validate: Validator
    context: re.Pattern[str] | None = None
    needs: str = ""  # a character the text must contain for this recognizer to run
    context_window: int = 40
    compact: bool = True  # validate without spaces, dots and dashes

    def find(self, text: str) -> Iterator[Entity]:
        if self.needs and self.needs not in text:
            return
        group = "v" if "v" in self.pattern.groupindex else 0  # (?P<v>…): the value itself
        for match in self.pattern.finditer(text):
            start, end = match.span(group)
            raw = text[start:end]
            score = self.validate(_compact(raw) if self.compact else raw)
            if score <= 0:
                continue
            if score < 1 and self.context is not None:
                before = text[max(0, start - self.context_window):start]
                if self.context.search(before):
                    score = 1.0
            yield Entity(self.type, start, end, raw, score)


def _compact(raw: str) -> str:
    return raw.replace(" ", "").replace("\u00a0", "").replace(".", "").replace("-", "").upper()


# -- validators ----------------------------------------------------------------------------

def _iban(value: str) -> float:
    return 1.0 if iban_valid(value) else 0.0


_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5)|35|3[068]")


def _card(value: str) -> float:
    if not 13 <= len(value) <= 19 or not luhn(value) or not _CARD_PREFIX.match(value):
        return 0.0
    return 1.0


def _nir(value: str) -> float:
    return 1.0 if len(value) == 15 and nir_valid(value) else 0.0


def _siret(value: str) -> float:
    return 0.9 if siret_valid(value) else 0.0


def _siren(value: str) -> float:
    # One 9-digit number in ten passes Luhn by chance: without context this is a guess.
    return 0.6 if luhn(value) else 0.0


def _phone(value: str) -> float:
    value = value.replace("(0)", "")  # +33 (0)1 …: the trunk prefix shown in brackets
    digits = value.lstrip("+")
    if not digits.isdigit():
        return 0.0
    if value.startswith(("+33", "0033")) or value.startswith("0"):
        national = digits[2:] if value.startswith("+33") else (
            digits[4:] if value.startswith("0033") else digits[1:])
        return 1.0 if len(national) == 9 and national[0] != "0" else 0.0
    return 1.0 if 8 <= len(digits) <= 15 else 0.0


def _email(value: str) -> float:
    return 1.0


def _ip(value: str) -> float:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return 0.0
    return 1.0


def _date(value: str) -> float:
    return 1.0  # only found after a birth keyword: the pattern carries the context


# -- the recognizers -------------------------------------------------------------------------

_SEP = r"[ \u00a0.\-]?"
_EU_CODES = (r"3[0-469]|35[0-9]|37[0-9]|38[0-9]|4[013-9]|42[0-9]|"
             r"2[07]|29[0-9]|49|44|45|46|47|48")

RECOGNIZERS: tuple[PatternRecognizer, ...] = (
    PatternRecognizer(
        "EMAIL",
        # \w is Unicode: internationalized addresses (léa@exemple.fr) count too.
        re.compile(r"(?<![\w.+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])"),
        _email, needs="@"),
    PatternRecognizer(
        "IBAN",
        re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ \u00a0]?[A-Za-z0-9]{4}){2,7}"
                   r"(?:[ \u00a0]?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])"),
        _iban),
    PatternRecognizer(
        "FR_NIR",
        re.compile(r"(?<![\w])[1278]" + _SEP + r"\d{2}" + _SEP + r"\d{2}" + _SEP
                   + r"(?:\d{2}|2[ABab])" + _SEP + r"\d{3}" + _SEP + r"\d{3}" + _SEP
                   + r"\d{2}(?![\w])"),
        _nir),
    PatternRecognizer(
        "CREDIT_CARD",
        re.compile(r"(?<![\w])\d{4}(?:[ \-]?\d{4}){2}[ \-]?\d{1,4}(?:[ \-]?\d{1,3})?(?![\w])"),
        _card),
    PatternRecognizer(
        "FR_SIRET",
        re.compile(r"(?<![\w.])\d{3}" + _SEP + r"\d{3}" + _SEP + r"\d{3}" + _SEP
                   + r"\d{5}(?![\w])"),
        _siret, context=re.compile(r"(?i)siret|établissement|etablissement")),
    PatternRecognizer(
        "PHONE_NUMBER",
        re.compile(r"(?<![\w+])(?:(?:\+|00)33[ \u00a0.\-]?(?:\(0\)[ \u00a0]?)?[1-9]"
                   r"(?:[ \u00a0.\-]?\d{2}){4}|0[1-9](?:[ \u00a0.\-]?\d{2}){4}|"
                   r"\+(?:" + _EU_CODES + r")(?:[ \u00a0.\-]?\d){6,12})(?![\w])"),
        _phone),
    PatternRecognizer(
        "FR_SIREN",
        re.compile(r"(?<![\w.])\d{3}" + _SEP + r"\d{3}" + _SEP + r"\d{3}(?![\w])"),
        _siren, context=re.compile(r"(?i)siren|\bRCS\b|société|societe|entreprise|company")),
    PatternRecognizer(
        "IP_ADDRESS",
        re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])|"
                   r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        _ip, compact=False),
    PatternRecognizer(
        "DATE_OF_BIRTH",
        re.compile(r"(?i)\b(?:née? le|né\(e\) le|naissance|born on|born|birth|dob)[ :]{1,3}"
                   r"(?P<v>\d{1,2}[/.\-]\d{1,2}[/.\-]\d{4}|\d{4}-\d{2}-\d{2}|\d{1,2}(?:er)? "
                   r"(?:janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|"
                   r"octobre|novembre|décembre|decembre|january|february|march|april|may|june|"
                   r"july|august|september|october|november|december) \d{4})"),
        _date),
)

# When two findings overlap, the longer wins; at equal length, the earlier type here.
_PRIORITY = {r.type: i for i, r in enumerate(RECOGNIZERS)}


def scan(text: str, min_score: float = 0.5) -> list[Entity]:
    """Every entity in ``text`` with a score of at least ``min_score``, in text order,
    overlaps resolved."""
    found = [e for r in RECOGNIZERS for e in r.find(text) if e.score >= min_score]
    found.sort(key=lambda e: (-(e.end - e.start), _PRIORITY[e.type], e.start))
    kept: list[Entity] = []
    for entity in found:
        if all(entity.end <= k.start or entity.start >= k.end for k in kept):
            kept.append(entity)
    kept.sort(key=lambda e: e.start)
    return kept
