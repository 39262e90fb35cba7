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

_EN_WAYS = (r"Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|Boulevard|Blvd\.?|Drive|Dr\.?|"
            r"Court|Ct\.?|Place|Pl\.?|Way|Terrace|Close|Crescent|Square|Sq\.?|Parkway|Pkwy\.?|"
            r"Highway|Hwy\.?|Row|Gardens|Grove|Mews|Walk|Hill")
_EN_WORD = r"(?:[A-Z][a-z]+|[A-Z]\.|\d{1,3}(?:st|nd|rd|th))"
# One pass for both languages. The lookbehind sits after the first digit, so that re skips
# to digits fast and drops the inner digits of a number at once.
_ADDRESS = re.compile(
    r"(?P<num>[0-9](?<![\w.,][0-9])[0-9]{0,4})"
    rf"(?:(?P<fr>(?:{_SP}?(?:bis|ter|quater|[A-Da-d])(?!\w))?,?{_SP}+"
    rf"(?=[{_VOIE_INITIALS}])(?i:{'|'.join(_VOIES)})\.?(?![\w-])(?:{_CAP_NAME}{_town('town')}?|{_LOW_NAME}{_town('ltown')}))"
    rf"|[A-Za-z]?{_SP}+(?:{_EN_WORD}{_SP}+){{1,3}}(?:{_EN_WAYS})(?![\w-])"
    rf"(?P<etown>,{_SP}*{_CAP}(?:{_SP}{_CAP})?"
    rf"(?:,?{_SP}+(?:[A-Z]{{2}}{_SP}+\d{{5}}(?:-\d{{4}})?|[A-Z]{{1,2}}\d[A-Z\d]?{_SP}?\d[A-Z]{{2}}))?"
    rf"(?=[ \t]*(?:[,.;\r\n]|\Z)))?)")


@dataclass(frozen=True, slots=True)
class AddressRules:
    """The finder of postal addresses (types FR_ADDRESS and ADDRESS)."""

    type: str = "FR_ADDRESS"

    def find(self, doc: Prepared) -> Iterator[Entity]:
        text = doc.text
        for m in _ADDRESS.finditer(text):
            if m.group("fr") is None:
                yield Entity("ADDRESS", m.start(), m.end(), m.group(), 0.9 if m.group("etown") else 0.85)
            elif len(m.group("num")) <= 4:
                full = m.group("town") or m.group("ltown")
                yield Entity("FR_ADDRESS", m.start(), m.end(), m.group(), 1.0 if full else 0.85)
        if "BP" not in text and "CS" not in text and "TSA" not in text and "B.P." not in text:
            return  # four literal searches cost less than one pass of _FR_BOX
        for m in _FR_BOX.finditer(text):
            if m.start() == 0 or not text[m.start() - 1].isalnum():
                yield Entity("FR_ADDRESS", m.start(), m.end(), m.group(), 0.9)
