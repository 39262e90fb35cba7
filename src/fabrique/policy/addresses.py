"""Postal addresses. French (type FR_ADDRESS): a street number (bis, ter …), a kind of way
(rue, avenue, bd …) and its name, then maybe a code postal and a city on the same or the next
line, CEDEX included; or a BP/CS/TSA box with its code postal and city. English (type
ADDRESS): a number, capitalized words and a street word (221B Baker Street), then maybe a
city and a US ZIP or UK postcode.

Precision first: the way's name must have a capital ("5 cours de maths" is no address) unless
a code postal follows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from fabrique.policy.cues import alternation
from fabrique.policy.names import UPPER
from fabrique.policy.patterns import Entity, Prepared

_SP = r"[ \u00a0]"
_NL = r"(?:\r?\n[ \t\u00a0]*)"
_VOIES = ("rue", "avenue", "av", "bd", "boulevard", "boul", "place", "pl", "chemin", "ch",
          "allée", "allee", "impasse", "imp", "quai", "route", "rte", "cours", "square", "sq",
          "passage", "cité", "cite", "résidence", "residence", "hameau", "lieu-dit", "lieudit",
          "parvis", "promenade", "esplanade", "faubourg", "fbg", "rond-point", "sentier",
          "ruelle", "montée", "montee", "chaussée", "chaussee", "venelle", "traverse")
_VOIE_INITIALS = "".join(sorted({c for w in _VOIES for c in (w[0], w[0].upper())}))  # (?i) is slow
_CAP = rf"[{UPPER}][^\W\d_]*(?:['’-][^\W\d_]+)*"  # Lilas, Saint-Denis, l'Église's Église
_PART = r"(?:(?:de|du|des|de la|la|le|les|à|au|aux|en|sur|sous|lès|lez|et)" + _SP + r"+|[dlDL]['’])"
_CAP_NAME = rf"(?:{_SP}+{_PART}*(?:{_CAP}|\d{{1,4}}(?:er)?(?![\w]))){{1,6}}"  # rue du 8 Mai 1945
_LOW_NAME = rf"(?:{_SP}+{_PART}*[^\W\d_]+(?:['’-][^\W\d_]+)*){{1,5}}"
_CITY = rf"(?!(?i:cedex)\b){_CAP}(?:(?:{_SP}|-)+(?:{_PART})?(?!(?i:cedex)\b){_CAP}){{0,3}}"
_CEDEX = rf"(?:{_SP}+(?i:cedex)(?:{_SP}+\d{{1,2}})?)?"
_CODE = r"(?<!\d)(?:0[1-9]|[1-8]\d|9[0-8])\d{3}(?!\d)"
_BOX = r"(?:BP|B\.P\.|CS|TSA)" + _SP + r"?\d{1,6}"


_GAP = rf"(?:,?{_SP}*{_NL}?|{_SP}*[-–]{_SP}*)"  # ", ", a new line or " - "


def _town(group: str) -> str:
    """``, 75011 Paris``, on the same line or the next, with a box and CEDEX if any."""
    return rf"(?P<{group}>{_GAP}(?:{_BOX}{_GAP})?{_CODE}{_SP}+{_CITY}{_CEDEX})"


_FR_BOX = re.compile(rf"{_BOX}{_GAP}{_CODE}{_SP}+{_CITY}{_CEDEX}")

_EN_ABBREVIATIONS = ("St", "Rd", "Ave", "Ln", "Blvd", "Dr", "Ct", "Pl", "Sq", "Pkwy", "Hwy")  # a dot or not
_EN_WAYS = alternation(("Street", "Road", "Avenue", "Lane", "Boulevard", "Drive", "Court", "Place",
                        "Way", "Terrace", "Close", "Crescent", "Square", "Parkway", "Highway", "Row",
                        "Gardens", "Grove", "Mews", "Walk", "Hill", *_EN_ABBREVIATIONS,
                        *(a + "." for a in _EN_ABBREVIATIONS)))
_EN_WORD = r"(?:[A-Z][a-z]+|[A-Z]\.|\d{1,3}(?:st|nd|rd|th))"
# One pass for both languages. The lookbehind sits after the first digit, so that re skips
# to digits fast and drops the inner digits of a number at once.
_ADDRESS = re.compile(
    r"(?P<num>[0-9](?<![\w.,][0-9])[0-9]{0,4})"
    rf"(?:(?P<fr>(?:{_SP}?(?:bis|ter|quater|[A-Da-d])(?!\w))?,?{_SP}+"
    rf"(?=[{_VOIE_INITIALS}])(?i:{alternation(_VOIES)})\.?(?![\w-])(?:{_CAP_NAME}{_town('town')}?|{_LOW_NAME}{_town('ltown')}))"
    rf"|[A-Za-z]?{_SP}+(?:{_EN_WORD}{_SP}+){{1,3}}(?:{_EN_WAYS})(?![\w-])"
    rf"(?P<etown>,{_SP}*{_CAP}(?:{_SP}{_CAP})?"
    rf"(?:,?{_SP}+(?:[A-Z]{{2}}{_SP}+\d{{5}}(?:-\d{{4}})?|[A-Z]{{1,2}}\d[A-Z\d]?{_SP}?\d[A-Z]{{2}}))?"
    rf"(?=[ \t]*(?:[,.;\r\n]|\Z)))?)")


# Where an address's number ends, in the text's shape (digits "0", letters "a"): a letter
# ("bis", 221B), a comma, or spaces and a letter or an ordinal (5 42nd Street). A literal
# first character, which re skips to; _ADDRESS is tried at the start of those numbers only.
_NUMBER_END = re.compile(rb"0(?:a|,| +(?:a|0{1,3}aa))")


def _addresses(doc: Prepared) -> Iterator[re.Match[str]]:
    """As ``_ADDRESS.finditer`` would find them."""
    text, shape, end = doc.text, doc.shape(), 0
    if shape is None:
        yield from _ADDRESS.finditer(text)
        return
    for hit in _NUMBER_END.finditer(shape):
        last = hit.start()
        head = shape[last - 5 if last > 5 else 0:last + 1]
        start = last + 1 - (len(head) - len(head.rstrip(b"0")))  # the number's first digit
        if start < end or (start and shape[start - 1] in b"a0.,") or last - start > 4:
            continue  # inside a match, a word or a longer number
        if m := _ADDRESS.match(text, start):
            end = m.end()
            yield m


@dataclass(frozen=True, slots=True)
class AddressRules:
    """The finder of postal addresses (types FR_ADDRESS and ADDRESS)."""

    type: str = "FR_ADDRESS"

    def find(self, doc: Prepared) -> Iterator[Entity]:
        text = doc.text
        for m in _addresses(doc):
            if m.group("fr") is None:
                yield Entity("ADDRESS", m.start(), m.end(), m.group(), 0.9 if m.group("etown") else 0.85)
            elif len(m.group("num")) <= 4:
                full = m.group("town") or m.group("ltown")
                yield Entity("FR_ADDRESS", m.start(), m.end(), m.group(), 1.0 if full else 0.85)
        for m in _boxes(text):
            if m.start() == 0 or not text[m.start() - 1].isalnum():
                yield Entity("FR_ADDRESS", m.start(), m.end(), m.group(), 0.9)


def _boxes(text: str) -> Iterator[re.Match[str]]:
    """As ``_FR_BOX.finditer`` would find them: tried only where its first word stands (a few
    literal searches cost less than one pass of a pattern that starts with an alternation)."""
    starts = []
    for word in ("BP", "B.P.", "CS", "TSA"):
        i = text.find(word)
        while i >= 0:
            starts.append(i)
            i = text.find(word, i + 1)
    end = 0
    for start in sorted(starts):
        if start >= end and (m := _FR_BOX.match(text, start)):
            end = m.end()
            yield m
