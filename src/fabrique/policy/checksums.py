"""The check digits of the identifiers the recognizers validate."""

from __future__ import annotations

# IBAN lengths of the SEPA countries (ISO 13616 registry).
IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "VA": 22,
}


# Each digit doubled, its digits summed (7 -> 14 -> 5).
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn(digits: str) -> bool:
    """The Luhn check (cards, SIREN, SIRET), for ASCII digits. Summing bytes runs in C: three
    times faster than a loop over the digits."""
    if not digits.isascii():
        return False  # other scripts' digits (٣) have no check digit here
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_DOUBLED)
    return (sum(kept.encode()) + sum(doubled.encode()) - 48 * len(digits)) % 10 == 0


# A = 10, B = 11 … Z = 35, as ISO 13616 turns letters into digits.
_LETTER_VALUES = str.maketrans({chr(65 + i): str(10 + i) for i in range(26)})


def iban_valid(iban: str) -> bool:
    """ISO 13616: a SEPA country's length and mod-97 == 1."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    number = (iban[4:] + iban[:4]).translate(_LETTER_VALUES)
    return number.isdigit() and int(number) % 97 == 1


def nir_valid(nir: str) -> bool:
    """French NIR (15 characters, key included); Corsica's 2A and 2B count as 19 and 18."""
    body, key = nir[:13], nir[13:]
    if not key.isdigit():
        return False
    body = body.replace("2A", "19", 1) if body[5:7] == "2A" else body
    body = body.replace("2B", "18", 1) if body[5:7] == "2B" else body
    if not body.isdigit():
        return False
    return 97 - int(body) % 97 == int(key)


def siret_valid(siret: str) -> bool:
    """Luhn, except La Poste's establishments (SIREN 356000000): digit sum divisible by 5."""
    if siret.startswith("356000000"):
        return sum(int(c) for c in siret) % 5 == 0
    return luhn(siret)
