"""Identifiers with a known layout: e-mails, phones, IBANs, cards, NIR, SIREN/SIRET, IPs and
dates of birth. Each is a regular expression for candidates and, where the format has one, a
validator (check digits) that rejects look-alikes.

Scores: 1.0 for a valid check digit with its usual layout, lower where only the shape is
known; a keyword nearby ("SIREN", "né le", "IBAN" …) raises a score to 1.0.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from fabrique.policy.checksums import iban_valid, luhn, nir_valid, siret_valid
from fabrique.policy.cues import BIRTH, LOWER_CUES
from fabrique.policy.patterns import (
    Entity,
    PatternRecognizer,
    Prepared,
    Trigger,
    Validator,
    Where,
)


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


def _date(value: str) -> float:
    return 1.0  # only found after a birth keyword: the pattern carries the context


def _ipv4(value: str) -> float:
    # As ipaddress decides, in a tenth of the time: octets up to 255, no leading zero.
    octets = value.split(".")
    valid = value.isascii() and all(int(o) <= 255 and (o[0] != "0" or len(o) == 1) for o in octets)
    return 1.0 if valid else 0.0


def _ipv6(value: str) -> float:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return 0.0
    return 1.0


# "version 1.2.3.4" is not an address: a version word just before, or small parts and a
# version word nearby, put a dotted quad below the default threshold.
_VERSION_JUST_BEFORE = re.compile(
    r"(?i)(?:\b(?:version|ver|release|build|firmware|rev|revision|section|article|chapitre|"
    r"chapter|édition|edition)|\bv|§)[ .:#]{0,3}\Z")
_VERSION_NEAR = re.compile(r"(?i)\b(?:version|release|firmware|upgrade|mise à jour|v\d)")


def _ipv4_version(text: str, start: int, end: int, score: float) -> float:
    if _VERSION_JUST_BEFORE.search(text, max(0, start - 16), start):
        return 0.3
    small = all(len(part) == 1 for part in text[start:end].split("."))
    if small and _VERSION_NEAR.search(text, max(0, start - 40), min(len(text), end + 40)):
        return 0.3
    return score


_SEP = r"[ \u00a0.\-]?"
_EU_CODES = (r"3[0-469]|35[0-9]|37[0-9]|38[0-9]|4[013-9]|42[0-9]|"
             r"2[07]|29[0-9]|49|44|45|46|47|48")

# Every IBAN, card, NIR, SIREN, SIRET and phone number holds a run of six digits or more
# (single separators between them), or starts with two letters and two digits (an IBAN).
# The second branch starts with a digit, not a lookbehind, so that re skips ahead fast.
_NUMBER = Trigger(re.compile(r"\d(?:[ \u00a0.\-]?\d){5,}|\d\d(?<=[A-Za-z]{2}\d\d)"))
_DOTS = Trigger(re.compile(r"\.\d{1,3}\."))  # inside every IPv4 address
_COLONS = Trigger(re.compile(r":[0-9A-Fa-f]{0,4}:"))  # inside every IPv6 address


def _after_letters(doc: Prepared, start: int, end: int) -> bool:
    # An IBAN's check digits start a run of digits, right after the country's two letters.
    head = doc.text[start - 2:start]
    return head.isalpha() and head.isascii()


def _longer_than(n: int) -> Where:
    """Runs of digits too short to hold the identifier need no search near them."""
    return lambda doc, start, end: end - start > n


def _birth_word(doc: Prepared, start: int, end: int) -> bool:
    low = doc.lower()
    return low is not None and low[start:end] in BIRTH


def _numeric(type_: str, pattern: str, validate: Validator, before: int, after: int,
             context: re.Pattern[str] | None = None, where: Where | None = None,
             ) -> PatternRecognizer:
    """A recognizer searched only near the runs of digits that ``_NUMBER`` finds: from
    ``before`` characters before a run (+33 (0)…) to ``after`` past it (an IBAN's letters)."""
    return PatternRecognizer(type_, re.compile(pattern), validate, context=context,
                             trigger=_NUMBER, before=before, after=after, where=where)


# \w is Unicode: internationalized addresses (léa@exemple.fr) count too. Parts are bounded by
# their RFC lengths, so that an address starts at most 64 characters before its "@".
EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}"
                   r"\.[^\W\d_]{2,63}(?![\w-])")
_LOCAL_PART = re.compile(r"(?<![\w.+-])[\w.%+-]{1,64}\Z")  # searched up to an "@"


@dataclass(frozen=True, slots=True)
class EmailRecognizer:
    """E-mail addresses, searched from each "@" back to where one can start: the pattern
    alone, over the whole text, would try every word as a local part."""

    type: str = "EMAIL"

    def find(self, doc: Prepared) -> Iterator[Entity]:
        text, end = doc.text, 0
        at = text.find("@")
        while at >= 0:
            local = _LOCAL_PART.search(text, max(end, at - 64), at)
            match = EMAIL.match(text, local.start()) if local else None
            if match:
                yield Entity("EMAIL", match.start(), match.end(), match.group(), 1.0)
                end = match.end()
            at = text.find("@", max(at + 1, end))


RECOGNIZERS: tuple[PatternRecognizer, ...] = (
    _numeric("IBAN", r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ \u00a0]?[A-Za-z0-9]{4}){2,7}"
             r"(?:[ \u00a0]?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])", _iban, 2, 44,
             where=_after_letters),
    _numeric("FR_NIR", r"(?<![\w])[1278]" + _SEP + r"\d{2}" + _SEP + r"\d{2}" + _SEP
             + r"(?:\d{2}|2[ABab])" + _SEP + r"\d{3}" + _SEP + r"\d{3}" + _SEP + r"\d{2}(?![\w])",
             _nir, 12, 2),
    _numeric("CREDIT_CARD",
             r"(?<![\w])\d{4}(?:[ \-]?\d{4}){2}[ \-]?\d{1,4}(?:[ \-]?\d{1,3})?(?![\w])", _card, 0, 2,
             where=_longer_than(12)),
    _numeric("FR_SIRET", r"(?<![\w.])\d{3}" + _SEP + r"\d{3}" + _SEP + r"\d{3}" + _SEP
             + r"\d{5}(?![\w])", _siret, 0, 2, re.compile(r"(?i)siret|établissement|etablissement"),
             where=_longer_than(13)),
    _numeric("PHONE_NUMBER",
             r"(?<![\w+])(?:(?:\+|00)33[ \u00a0.\-]?(?:\(0\)[ \u00a0]?)?[1-9]"
             r"(?:[ \u00a0.\-]?\d{2}){4}|0[1-9](?:[ \u00a0.\-]?\d{2}){4}|"
             r"\+(?:" + _EU_CODES + r")(?:[ \u00a0.\-]?\d){6,12})(?![\w])", _phone, 10, 2),
    _numeric("FR_SIREN", r"(?<![\w.])\d{3}" + _SEP + r"\d{3}" + _SEP + r"\d{3}(?![\w])", _siren, 0, 2,
             re.compile(r"(?i)siren|\bRCS\b|société|societe|entreprise|company")),
    PatternRecognizer(
        "IP_ADDRESS",
        # Not followed by ".5" or ".fr" (1.2.3.4.5, a host name), but it may end a sentence.
        re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)"),
        _ipv4, compact=False, trigger=_DOTS, before=16, after=16, adjust=_ipv4_version),
    PatternRecognizer(
        "IP_ADDRESS",
        re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        _ipv6, compact=False, trigger=_COLONS, before=40, after=41),
    PatternRecognizer(
        "DATE_OF_BIRTH",
        re.compile(r"(?i)\b(?:née? le|né\(e\) le|naissance|born on|born|birth|dob)[ :]{1,3}"
                   r"(?P<v>\d{1,2}[/.\-]\d{1,2}[/.\-]\d{4}|\d{4}-\d{2}-\d{2}|\d{1,2}(?:er)? "
                   r"(?:janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|"
                   r"octobre|novembre|décembre|decembre|january|february|march|april|may|june|"
                   r"july|august|september|october|november|december) \d{4})"),
        _date, trigger=LOWER_CUES, before=1, after=60, where=_birth_word),
)
