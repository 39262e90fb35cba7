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

from fabrique.policy.checksums import IBAN_LENGTHS, iban_valid, luhn, nir_valid, siret_valid
from fabrique.policy.cues import BIRTH, LOWER_CUES, alternation
from fabrique.policy.patterns import (
    Adjust,
    Entity,
    PatternRecognizer,
    Prepared,
    Trigger,
    Trim,
    Validator,
    Where,
)


def _iban(value: str) -> float:
    return 1.0 if iban_valid(value) else 0.0


# Issuer prefixes by length: only old Visas have 13 digits (EAN-13 barcodes do too), only
# Diners 14 (so do SIRETs, which pass Luhn as well), only Amex 15.
_CARD_PREFIX = {13: re.compile(r"4"), 14: re.compile(r"30[0-5]|3[689]"), 15: re.compile(r"3[47]")}
_CARD_PREFIX_LONG = re.compile(r"4|5[1-5]|2[2-7]|6(?:011|5|4[4-9]|2)|35|3[068]")


def _card(value: str) -> float:
    n = len(value)
    if not 13 <= n <= 19 or not luhn(value) or not _CARD_PREFIX.get(n, _CARD_PREFIX_LONG).match(value):
        return 0.0
    if n == 14 or (n == 13 and _ean13(value)):
        return 0.4  # a SIRET or a barcode rather, unless a card is spoken of just before
    return 1.0


def _ean13(value: str) -> bool:
    return sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(value)) % 10 == 0


# "SKU 4052314324101", "Réf. EAN …": a product code, whatever its check digits say.
_PRODUCT_BEFORE = re.compile(
    r"(?i)\b(?:sku|ean(?:-?13)?|gtin|upc|isbn|réf|ref|reference|référence|code[- ]barres?|barcode|"
    r"article|item|produit|product|p/n|part)[ \u00a0.:#°n]{0,5}\Z")


def _not_product(text: str, start: int, end: int, score: float) -> float:
    return 0.0 if _PRODUCT_BEFORE.search(text, max(0, start - 24), start) else score


def _nir(value: str) -> float:
    return 1.0 if len(value) == 15 and nir_valid(value) else 0.0


def _siret(value: str) -> float:
    return 0.9 if siret_valid(value) else 0.0


def _iban_end(raw: str) -> int:
    """A spaced IBAN's pattern may take in the next word ("… 1815 within 30 days"): the IBAN
    ends where its country's length is reached, at the end of a group."""
    length = IBAN_LENGTHS.get(raw[:2].upper(), 0)
    seen = 0
    for i, ch in enumerate(raw):
        if ch != " " and ch != "\u00a0":
            seen += 1
            if seen == length:
                return i + 1 if i + 1 == len(raw) or not raw[i + 1].isalnum() else 0
    return 0


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
    # "::" and "::1" say nothing of anyone, and a grammar's "root ::= …" holds the first.
    if sum(1 for group in value.split(":") if group) < 3:
        return 0.0
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return 0.0
    return 0.0 if address.is_unspecified or address.is_loopback else 1.0


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
_NUMBER = Trigger(re.compile(r"\d(?:[ \u00a0.\-]?\d){5,}|\d\d(?<=[A-Za-z]{2}\d\d)"),
                  fast=re.compile(rb"0(?:(?:[ .\-]?0){5,}|0(?<=aa00))"))
_DOTS = Trigger(re.compile(r"\.\d{1,3}\."))  # inside every IPv4 address
# Inside every IPv6 address: "::", or the eight groups' colons (a time has two).
_COLONS = Trigger(re.compile(r":(?::|(?:[0-9A-Fa-f]{1,4}:){3})"))  # one literal first: re skips ahead


def _after_letters(doc: Prepared, start: int, end: int) -> bool:
    # An IBAN's check digits start a run of digits, right after the country's two letters.
    head = doc.text[start - 2:start]
    return head.isalpha() and head.isascii()


def _nir_run(doc: Prepared, start: int, end: int) -> bool:
    # A NIR holds 15 digits in a run, or Corsica's 2A/2B splits it: 1 85 03 2A 115 004 54.
    before = doc.text[start - 3 if start > 3 else 0:start].upper()
    return end - start >= 15 or "A" in before or "B" in before


def _birth_word(doc: Prepared, start: int, end: int) -> bool:
    low = doc.lower()
    return low is not None and low[start:end] in BIRTH


def _numeric(type_: str, pattern: str, validate: Validator, before: int, after: int,
             context: re.Pattern[str] | None = None, where: Where | None = None,
             adjust: Adjust | None = None, trim: Trim | None = None, min_digits: int = 0,
             anchored: bool = False) -> PatternRecognizer:
    """A recognizer searched only near the runs of digits that ``_NUMBER`` finds (of
    ``min_digits`` digits at least): from ``before`` characters before a run (+33 (0)…) to
    ``after`` past it (an IBAN's letters)."""
    return PatternRecognizer(type_, re.compile(pattern), validate, context=context,
                             trigger=_NUMBER, before=before, after=after, where=where,
                             adjust=adjust, trim=trim, min_digits=min_digits, anchored=anchored)


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
            # A local part holds no space: searching from the last one before "@" finds the
            # same, without trying every word before it.
            since = max(end, at - 64, text.rfind(" ", at - 64 if at > 64 else 0, at) + 1)
            local = _LOCAL_PART.search(text, since, at)
            match = EMAIL.match(text, local.start()) if local else None
            if match:
                yield Entity("EMAIL", match.start(), match.end(), match.group(), 1.0)
                end = match.end()
            at = text.find("@", max(at + 1, end))


_CARD_CONTEXT = re.compile(r"(?i)\b(?:card|carte|cb\b|visa|master|amex|american express|diners|"
                           r"paie|pay|paid|payé|débit|debit|crédit|credit)")
# French numbers go by pairs: one separator between every pair, or none ("0562-1794-04" is a
# part number).
_FR_PAIRS = r"(?:\d{{8}}|(?P<{0}>[ \u00a0.\-])\d{{2}}(?:(?P={0})\d{{2}}){{3}})"
# +33 6 …, 0033 (0)6 …: what follows "+" or "0" (the first character, kept out of it).
_FR_INTL = r"33[ \u00a0.\-]?(?:\(0\)[ \u00a0]?)?[1-9]" + _FR_PAIRS
_DAY = r"\d{1,2}(?:er|st|nd|rd|th)?"
_MONTH_NAMES = (
    "janvier", "février", "fevrier", "mars", "avril", "mai", "juin", "juillet", "août", "aout",
    "septembre", "octobre", "novembre", "décembre", "decembre", "january", "february", "march",
    "april", "may", "june", "july", "august", "september", "october", "november", "december",
    "janv", "févr", "fevr", "fév", "fev", "avr", "juil", "déc", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sept", "sep", "oct", "nov", "dec")
_MONTHS = alternation(_MONTH_NAMES)  # "mars" before "mar"
_MONTH = rf"(?:{_MONTHS})\.?"
# After the cue: a colon, "is", "le", "on the" …, then the date, day or month first.
_BIRTH_DATE = re.compile(
    r"(?i)\b(?:née? le|né\(e\) le|naissance|born on|born|birth|dob)[ \u00a0]*:?[ \u00a0]*"
    r"(?:(?:is|was|est|on|le|the|:)[ \u00a0]+){0,2}"
    rf"(?P<v>\d{{1,2}}[/.\-]\d{{1,2}}[/.\-]\d{{4}}|\d{{4}}[/.\-]\d{{1,2}}[/.\-]\d{{1,2}}|"
    rf"{_DAY}[ \u00a0](?:of[ \u00a0])?{_MONTH},?[ \u00a0]\d{{4}}|{_MONTH}[ \u00a0]{_DAY},?[ \u00a0]\d{{4}})"
    r"(?!\d)")

RECOGNIZERS: tuple[PatternRecognizer, ...] = (
    # Each lookbehind sits after the first character: a pattern that starts with a lookbehind
    # is tried at every position, one that starts with a class skips ahead to it.
    _numeric("IBAN", r"[A-Za-z](?<![A-Za-z0-9][A-Za-z])[A-Za-z]\d{2}(?:[ \u00a0]?[A-Za-z0-9]{4}){2,7}"
             r"(?:[ \u00a0]?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])", _iban, 2, 44,
             where=_after_letters, trim=_iban_end, anchored=True),
    # The department and commune take five digits, grouped 2 + 3 (or 2A/2B + 3) in metropolitan
    # France, 3 + 2 overseas (97x, 98x).
    _numeric("FR_NIR", r"[1278](?<!\w[1278])" + _SEP + r"\d{2}" + _SEP + r"\d{2}" + _SEP
             + r"(?:(?:\d{2}|2[ABab])" + _SEP + r"\d{3}|9[78]\d" + _SEP + r"\d{2})" + _SEP + r"\d{3}"
             + _SEP + r"\d{2}(?![\w])", _nir, 12, 2, where=_nir_run),
    # Amex and Diners are printed 4-6-5 and 4-6-4.
    _numeric("CREDIT_CARD",
             r"\d(?<!\w\d)\d{3}(?:(?:[ \-]?\d{4}){2}[ \-]?\d{1,4}(?:[ \-]?\d{1,3})?|"
             r"[ \-]?\d{6}[ \-]?\d{4,5})(?![\w])", _card, 0, 2, _CARD_CONTEXT,
             adjust=_not_product, min_digits=13),
    # 123 456 789 01234, or 123 456 789 012 34.
    _numeric("FR_SIRET", r"\d(?<![\w.]\d)\d{2}" + _SEP + r"\d{3}" + _SEP + r"\d{3}" + _SEP
             + r"\d{3}" + _SEP + r"\d{2}(?![\w])", _siret, 0, 2,
             re.compile(r"(?i)siret|établissement|etablissement"), min_digits=14),
    _numeric("PHONE_NUMBER",
             r"(?:\+(?<![\w+]\+)(?:" + _FR_INTL.format("a") + r"|(?:" + _EU_CODES
             + r")(?:[ \u00a0.\-]?\d){6,12})|0(?<![\w+]0)(?:0" + _FR_INTL.format("b") + r"|[1-9]"
             + _FR_PAIRS.format("c") + r"))(?![\w])", _phone, 10, 2, min_digits=8),
    _numeric("FR_SIREN", r"\d(?<![\w.]\d)\d{2}" + _SEP + r"\d{3}" + _SEP + r"\d{3}(?![\w])", _siren, 0, 2,
             re.compile(r"(?i)siren|\brcs\b|société|societe|entreprise|company"), min_digits=9),
    PatternRecognizer(
        "IP_ADDRESS",
        # Not followed by ".5" or ".fr" (1.2.3.4.5, a host name), but it may end a sentence.
        re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\w|\.\w)"),
        _ipv4, compact=False, trigger=_DOTS, before=16, after=16, adjust=_ipv4_version),
    PatternRecognizer(
        "IP_ADDRESS",
        re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
        _ipv6, compact=False, trigger=_COLONS, before=40, after=41),
    PatternRecognizer("DATE_OF_BIRTH", _BIRTH_DATE, _date, trigger=LOWER_CUES, after=60,
                      where=_birth_word, anchored=True),
)
