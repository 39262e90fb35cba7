#!/usr/bin/env python3
"""A seeded, labelled corpus of French and English texts with personal data, for pii_scan.py.

Each document is ``{"text", "lang", "entities": [{"type", "start", "end"}], "template"}``,
character offsets into ``text``. Texts are hand-written templates (e-mails to a bank, HR
forms, support tickets, medical letters, invoices, chat messages to an assistant …) filled
with values made here: IBANs of SEPA countries with valid mod-97 keys, French NIRs with a
valid key (Corsica's 2A/2B and overseas departments included), SIREN/SIRET with valid Luhn
(and La Poste's rule), Luhn-valid Visa/Mastercard/Amex numbers, French phones in every usual
layout and other EU numbers in E.164, IPv4/IPv6, dates of birth after a cue, person names
(Faker fr_FR, en_GB, en_US) and French postal addresses, one or several lines.

Each template also carries ordinary values that must NOT be found: prices, order and
invoice numbers (some shaped like phones, of the wrong length), 9-digit numbers failing
Luhn, version strings, times, percentages, ISO dates and dates that are not of birth,
product codes, EAN-13 barcodes, parcel numbers.

Every label is checked as the text is built: ``text[start:end]`` is the value inserted.
The same seed and Faker version give the same corpus (its SHA-256 is printed).

    .venv/bin/python bench/pii_corpus.py                       # stats of the default corpus
    .venv/bin/python bench/pii_corpus.py --entities 5000 --out /tmp/corpus.json
    .venv/bin/python bench/pii_corpus.py --show 3               # print 3 documents, labels marked
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_SEED = 20261125
DEFAULT_ENTITIES = 2000

TYPES = ("EMAIL", "PHONE_NUMBER", "IBAN", "CREDIT_CARD", "FR_NIR", "FR_SIREN", "FR_SIRET",
         "IP_ADDRESS", "DATE_OF_BIRTH", "PERSON", "FR_ADDRESS")

# ---------------------------------------------------------------------------------------
# Identifiers with check digits.
# ---------------------------------------------------------------------------------------


def luhn_digit(payload: str) -> str:
    """The digit that makes ``payload + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these are at odd positions once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# BBAN layouts (ISO 13616 registry): n digits, a upper-case letters, c alphanumerics.
_BBAN = {
    "FR": "5n5n11c2n", "MC": "5n5n11c2n", "DE": "18n", "ES": "20n", "IT": "1a10n12c", "BE": "12n",
    "NL": "4a10n", "LU": "3n13c", "PT": "21n", "AT": "16n", "IE": "4a14n", "FI": "14n",
    "GB": "4a14n", "CH": "5n12c", "PL": "24n", "SE": "20n", "DK": "14n",
}
_IBAN_WEIGHTS = {"FR": 40, "DE": 10, "ES": 8, "IT": 8, "BE": 6, "NL": 5, "LU": 3, "PT": 4, "AT": 2,
                 "IE": 3, "FI": 1, "GB": 3, "CH": 3, "PL": 1, "SE": 1, "DK": 1, "MC": 1}
_RIB_LETTERS = {c: str(v) for v, letters in enumerate(("AJ", "BKS", "CLT", "DMU", "ENV", "FOW", "GPX",
                                                        "HQY", "IRZ"), start=1) for c in letters}


def _bban(rng: random.Random, country: str) -> str:
    out = []
    for count, kind in re.findall(r"(\d+)([nac])", _BBAN[country]):
        if kind == "c":  # alphanumeric fields are mostly digits in practice
            out.append("".join(rng.choice(string.ascii_uppercase) if rng.random() < 0.05
                               else rng.choice(string.digits) for _ in range(int(count))))
            continue
        pool = string.digits if kind == "n" else string.ascii_uppercase
        out.append("".join(rng.choice(pool) for _ in range(int(count))))
    bban = "".join(out)
    if country in ("FR", "MC"):  # the RIB key: 97 - (89 bank + 15 branch + 3 account) mod 97
        account = "".join(_RIB_LETTERS.get(c, c) for c in bban[10:21])
        key = 97 - (89 * int(bban[:5]) + 15 * int(bban[5:10]) + 3 * int(account)) % 97
        bban = bban[:21] + f"{key:02d}"
    return bban


def iban_check(country: str, bban: str) -> str:
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


def make_iban(rng: random.Random) -> str:
    country = rng.choices(list(_IBAN_WEIGHTS), weights=list(_IBAN_WEIGHTS.values()))[0]
    bban = _bban(rng, country)
    iban = country + iban_check(country, bban) + bban
    if rng.random() < 0.6:  # the printed layout, groups of four
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban


def make_nir(rng: random.Random) -> str:
    sex = rng.choice("12")
    yy, mm = f"{rng.randrange(100):02d}", f"{rng.randint(1, 12):02d}"
    r = rng.random()
    if r < 0.12:  # Corsica
        dept, commune = rng.choice(("2A", "2B")), f"{rng.randint(1, 366):03d}"
    elif r < 0.18:  # overseas: three-digit department, two-digit commune
        dept, commune = rng.choice(("971", "972", "973", "974", "976")), f"{rng.randint(1, 34):02d}"
    else:
        dept = f"{rng.choice([d for d in range(1, 96) if d != 20]):02d}"
        commune = f"{rng.randint(1, 899):03d}"
    order = f"{rng.randint(1, 999):03d}"
    body = sex + yy + mm + dept + commune + order
    numeric = body.replace("2A", "19").replace("2B", "18") if dept in ("2A", "2B") else body
    key = f"{97 - int(numeric) % 97:02d}"
    if rng.random() < 0.35:
        return body + key
    return f"{sex} {yy} {mm} {dept} {commune} {order} {key}"


def make_siren(rng: random.Random) -> str:
    payload = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(7))
    return payload + luhn_digit(payload)


def make_siret(rng: random.Random) -> tuple[str, str]:
    """(SIRET, its SIREN), digits only."""
    if rng.random() < 0.05:  # La Poste: 356 000 000 and a digit sum divisible by 5
        while True:
            nic = f"{rng.randint(1, 99999):05d}"
            siret = "356000000" + nic
            if sum(map(int, siret)) % 5 == 0:
                return siret, siret[:9]
    siren = make_siren(rng)
    nic = f"{rng.choice((0, 0, 0, 1, 2)):03d}{rng.randint(1, 9)}"
    return siren + nic + luhn_digit(siren + nic), siren


def fmt_siren(rng: random.Random, siren: str) -> str:
    return f"{siren[:3]} {siren[3:6]} {siren[6:]}" if rng.random() < 0.6 else siren


def fmt_siret(rng: random.Random, siret: str) -> str:
    r = rng.random()
    if r < 0.5:
        return f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:]}"
    if r < 0.55:
        return f"{siret[:3]} {siret[3:6]} {siret[6:9]} {siret[9:12]} {siret[12:]}"
    return siret


def make_card(rng: random.Random) -> str:
    brand = rng.choices(("visa", "mc", "mc2", "amex"), weights=(5, 3, 1, 2))[0]
    if brand == "amex":
        payload = rng.choice(("34", "37")) + "".join(rng.choice(string.digits) for _ in range(12))
        number = payload + luhn_digit(payload)
        layout = rng.random()
        if layout < 0.4:
            return f"{number[:4]} {number[4:10]} {number[10:]}"
        if layout < 0.55:
            return f"{number[:4]}-{number[4:10]}-{number[10:]}"
        return number
    prefix = {"visa": "4", "mc": str(rng.randint(51, 55)), "mc2": str(rng.randint(2221, 2720))}[brand]
    payload = prefix + "".join(rng.choice(string.digits) for _ in range(15 - len(prefix)))
    number = payload + luhn_digit(payload)
    sep = rng.choices((" ", "-", ""), weights=(5, 2, 3))[0]
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


# Second digits of French national numbers in use (python-phonenumbers' numbering plan, the one
# Presidio validates against): no 069x (overseas mobiles dial +262/+269), 070x-072x, 040x …
_FR_SECOND = {"1": "0123456789", "2": "0123457", "3": "0123456789", "4": "123456789", "5": "0123456",
              "6": "01245678", "7": "3456789", "9": "0123456789"}


def make_fr_phone(rng: random.Random) -> str:
    first = rng.choice("6666777123459")
    national = first + rng.choice(_FR_SECOND[first]) + "".join(rng.choice(string.digits) for _ in range(7))
    pairs = [national[1:3], national[3:5], national[5:7], national[7:9]]
    layout = rng.choices(range(9), weights=(10, 4, 4, 2, 5, 2, 2, 2, 1))[0]
    if layout == 0:
        return f"0{first} " + " ".join(pairs)
    if layout == 1:
        return f"0{first}." + ".".join(pairs)
    if layout == 2:
        return "0" + national
    if layout == 3:
        return f"0{first}-" + "-".join(pairs)
    if layout == 4:
        return f"+33 {first} " + " ".join(pairs)
    if layout == 5:
        return f"+33 (0){first} " + " ".join(pairs)
    if layout == 6:
        return "+33" + national
    if layout == 7:
        return f"0033 {first} " + " ".join(pairs)
    return f"+33 {first}." + ".".join(pairs)


# (country code, national number layout): "#" a random digit, "[a-b]" a digit in that range, the
# other characters as they are. Ranges in use in each country's numbering plan.
_EU_PHONES = (
    ("49", "30 ########"), ("49", "151 ########"), ("49", "89 #######"), ("34", "6## ### ###"),
    ("34", "91# ### ###"), ("39", "06 #### ####"), ("39", "34# ### ####"), ("32", "2 [3-8]## ## ##"),
    ("32", "47# ## ## ##"), ("31", "20 ### ####"), ("31", "6 [1-5]#######"), ("351", "91# ### ###"),
    ("351", "21 ### ####"), ("353", "87 ### ####"), ("43", "1 [2-9]## ####"), ("43", "664 #######"),
    ("352", "621 ### ###"), ("41", "44 ### ## ##"), ("41", "79 ### ## ##"), ("44", "20 [7-8]### ####"),
    ("44", "7[7-9]## ######"), ("48", "5## ### ###"), ("46", "70 ### ## ##"), ("45", "2[6-8] ## ## ##"),
    ("358", "40 #######"),
)
_LAYOUT = re.compile(r"\[(\d)-(\d)\]|#")


def make_eu_phone(rng: random.Random) -> str:
    code, layout = rng.choice(_EU_PHONES)
    national = _LAYOUT.sub(lambda m: str(rng.randint(int(m[1]), int(m[2])) if m[1] else rng.randrange(10)),
                           layout)
    if rng.random() < 0.3:
        return f"+{code}{national.replace(' ', '')}"
    return f"+{code} {national}"


def make_ipv4(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if r < 0.4:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"{rng.randint(2, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def make_ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randrange(65536):x}" for _ in range(8)]
    r = rng.random()
    if r < 0.3:
        return "2001:db8::" + ":".join(groups[:rng.randint(1, 3)])
    if r < 0.45:
        return "fe80::" + ":".join(groups[:4])
    if r < 0.6:
        return "2a01:" + ":".join(groups[:3]) + "::" + groups[7]
    return ":".join(groups[i] if rng.random() < 0.8 else groups[i].zfill(4) for i in range(8))


_MONTHS_FR = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
              "octobre", "novembre", "décembre")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December")


def _ymd(rng: random.Random, years: tuple[int, int]) -> tuple[int, int, int]:
    return rng.randint(*years), rng.randint(1, 12), rng.randint(1, 28)


def fmt_date_fr(rng: random.Random, y: int, m: int, d: int) -> str:
    r = rng.random()
    if r < 0.5:
        return f"{d:02d}/{m:02d}/{y}"
    if r < 0.6:
        return f"{d:02d}.{m:02d}.{y}"
    if r < 0.7:
        return f"{y}-{m:02d}-{d:02d}"
    return f"{'1er' if d == 1 else d} {_MONTHS_FR[m - 1]} {y}"


def fmt_date_en(rng: random.Random, y: int, m: int, d: int) -> str:
    r = rng.random()
    if r < 0.3:
        return f"{y}-{m:02d}-{d:02d}"
    if r < 0.55:
        return f"{d:02d}/{m:02d}/{y}"
    if r < 0.8:
        return f"{d} {_MONTHS_EN[m - 1]} {y}"
    return f"{_MONTHS_EN[m - 1]} {d}, {y}"


# ---------------------------------------------------------------------------------------
# Names and addresses.
# ---------------------------------------------------------------------------------------

_CITIES = (
    ("75011", "Paris"), ("75015", "Paris"), ("75018", "Paris"), ("69003", "Lyon"), ("13008", "Marseille"),
    ("59000", "Lille"), ("31000", "Toulouse"), ("33000", "Bordeaux"), ("44000", "Nantes"),
    ("67000", "Strasbourg"), ("34000", "Montpellier"), ("35000", "Rennes"), ("20000", "Ajaccio"),
    ("20200", "Bastia"), ("38000", "Grenoble"), ("06000", "Nice"), ("21000", "Dijon"),
    ("37000", "Tours"), ("29200", "Brest"), ("63000", "Clermont-Ferrand"), ("92100", "Boulogne-Billancourt"),
    ("93200", "Saint-Denis"), ("94300", "Vincennes"), ("78000", "Versailles"), ("51100", "Reims"),
    ("76000", "Rouen"), ("64200", "Biarritz"), ("97400", "Saint-Denis"), ("57000", "Metz"),
    ("87000", "Limoges"), ("25000", "Besançon"), ("84000", "Avignon"), ("74000", "Annecy"),
)
_STREETS = (
    "rue des Lilas", "avenue Jean Jaurès", "place de la République", "chemin des Vignes",
    "allée des Tilleuls", "impasse du Moulin", "boulevard Voltaire", "quai de la Loire",
    "route de Lyon", "rue du Faubourg Saint-Antoine", "rue de la Paix", "avenue des Champs-Élysées",
    "rue Victor Hugo", "boulevard de la Liberté", "rue Pasteur", "rue de l'Église", "cours Mirabeau",
    "rue Nationale", "avenue du Général de Gaulle", "rue des Écoles", "chemin de la Croix Blanche",
)
_COMPANIES = ("Boulangerie du Marché", "Transports Garonne", "Atelier Numérique", "Cabinet Horizon",
              "Acme Logistique", "Les Jardins de Provence", "Nordik Conseil", "Imprimerie des Quais",
              "Optique Lumière", "Brasserie du Port", "Solutions Azur", "Menuiserie Bois d'Or",
              "Blue Harbour Ltd", "Northwind Trading", "Greenfield Analytics")
_CLINICS = ("Centre médical des Tilleuls", "Cabinet de radiologie Pasteur", "Clinique du Parc",
            "Maison de santé Saint-Roch", "Centre dentaire République")
_EMAIL_DOMAINS = ("gmail.com", "orange.fr", "free.fr", "laposte.net", "wanadoo.fr", "sfr.fr", "outlook.fr",
                  "hotmail.com", "yahoo.fr", "proton.me", "icloud.com", "etu.univ-lyon1.fr", "ac-paris.fr",
                  "mairie-rennes.fr", "cabinet-horizon.fr", "btinternet.co.uk", "web.de", "gmx.net")


def _ascii(value: str) -> str:
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", value.lower())


class Person:
    def __init__(self, fake: Any, rng: random.Random) -> None:
        self.female = rng.random() < 0.5
        self.first = str(fake.first_name_female() if self.female else fake.first_name_male())
        self.last = str(fake.last_name())
        self.fake = fake

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def email(self, rng: random.Random) -> str:
        f, last = _ascii(self.first), _ascii(self.last)
        r = rng.random()
        if r < 0.1:
            return str(self.fake.free_email())
        tag = rng.choice(("banque", "rh", "pro"))
        local = rng.choice((f"{f}.{last}", f"{f[0]}.{last}", f"{f}{last}{rng.randint(1, 99)}",
                            f"{f}_{last}", f"{last}.{f}", f"{f}.{last}+{tag}"))
        if rng.random() < 0.02:
            local = f"{self.first.lower()}.{last}"  # internationalized local part (léa.durand@…)
        return f"{local}@{rng.choice(_EMAIL_DOMAINS)}"


def make_address(rng: random.Random, fake: Any, multiline: bool) -> str:
    number = str(rng.randint(1, 180)) + rng.choice(("", "", "", "", " bis", " ter", "B"))
    street = rng.choice(_STREETS) if rng.random() < 0.6 else str(fake.street_name())
    postcode, city = rng.choice(_CITIES) if rng.random() < 0.75 else (fake.postcode(), fake.city())
    line1 = f"{number} {street}" if rng.random() < 0.85 else f"{number}, {street}"
    extra = rng.choice(("", "", "", "", f"Bât. {rng.choice('ABCD')}, appt {rng.randint(1, 60)}",
                        f"Résidence Les {rng.choice(('Pins', 'Chênes', 'Mimosas'))}"))
    cedex = " CEDEX" if rng.random() < 0.05 else ""
    if multiline:
        lines = ([extra] if extra else []) + [line1, f"{postcode} {city}{cedex}"]
        return "\n".join(lines)
    return (f"{extra}, " if extra else "") + f"{line1}, {postcode} {city}{cedex}"


# ---------------------------------------------------------------------------------------
# Values that must not be found.
# ---------------------------------------------------------------------------------------


def num9_not_luhn(rng: random.Random) -> str:
    while True:
        value = str(rng.randint(100_000_000, 999_999_999))
        if not luhn_ok(value):
            return value


def ean13(rng: random.Random) -> str:
    payload = rng.choice(("3", "4", "5")) + "".join(rng.choice(string.digits) for _ in range(11))
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(payload))
    return payload + str((10 - total % 10) % 10)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _price(r: random.Random) -> str:
    return r.choice((f"{r.randint(5, 999)},{r.randint(0, 99):02d} €", f"{r.randint(2, 99)} €",
                     f"{r.randint(1, 9)} {r.randint(100, 999)} € TTC", f"{r.randint(10, 500)} euros"))


def _price_en(r: random.Random) -> str:
    return r.choice((f"€{r.randint(1, 9)},{r.randint(100, 999)}.{r.randint(0, 99):02d}",
                     f"£{r.randint(5, 999)}.{r.randint(0, 99):02d}", f"EUR {r.randint(20, 900)}"))


def _order(r: random.Random) -> str:
    return r.choice((f"CMD-{r.randint(2019, 2026)}-{r.randint(1000, 999999):06d}", num9_not_luhn(r),
                     f"A-{r.randint(100000, 999999)}",
                     f"{r.randint(2019, 2026)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}-{_digits(r, 4)}"))


def _invoice(r: random.Random) -> str:
    pairs = " ".join(_digits(r, 2) for _ in range(3))
    return r.choice((f"FA-{r.randint(2019, 2026)}-{r.randint(1, 99999):05d}",
                     # shaped like phone numbers, but of 11 or 8 digits
                     f"0{r.randint(1, 9)} {pairs} {_digits(r, 3)}", "0" + _digits(r, 10),
                     f"0{r.randint(1, 9)}.{pairs.replace(' ', '.')}"))


def _version(r: random.Random) -> str:
    return r.choice((f"{r.randint(1, 4)}.{r.randint(0, 24)}.{r.randint(0, 15)}",
                     f"{r.randint(1, 12)}.{r.randint(0, 9)}", f"10.0.{r.randint(10000, 22999)}",
                     f"{r.randint(1, 3)}.{r.randint(0, 30)}.{r.randint(0, 9)}-rc{r.randint(1, 4)}"))


def _time(r: random.Random) -> str:
    quarter = r.choice((0, 15, 30, 45))
    return r.choice((f"{r.randint(7, 20)}:{quarter:02d}", f"{r.randint(7, 20)}h{quarter:02d}",
                     f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"))


def _percent(r: random.Random) -> str:
    return r.choice((f"{r.randint(1, 99)},{r.randint(1, 9)} %", f"{r.randint(1, 100)}%",
                     f"{r.randint(90, 99)}.{r.randint(1, 9)}%"))


def _product(r: random.Random) -> str:
    return r.choice((f"REF-{r.randint(10000, 99999)}-{r.choice('ABCDEF')}", f"SKU {ean13(r)}",
                     f"EAN {ean13(r)}", f"P/N {_digits(r, 4)}-{_digits(r, 4)}-{_digits(r, 2)}",
                     f"XK-{r.randint(100, 9999)}"))


def _tracking(r: random.Random) -> str:
    return r.choice((f"6A{_digits(r, 11)}", f"1Z{r.randint(100, 999)}AA1{_digits(r, 10)}",
                     f"LX{_digits(r, 9)}FR"))


def _ticket(r: random.Random) -> str:
    return r.choice((f"#{r.randint(10000, 99999)}", f"INC{r.randint(1, 999999):07d}",
                     f"SR-{r.randint(2024, 2026)}-{r.randint(100, 9999)}"))


NOISE: dict[str, Callable[[random.Random], str]] = {
    "PRICE": _price, "PRICE_EN": _price_en, "ORDER": _order, "INVOICE": _invoice, "NUM9": num9_not_luhn,
    "VERSION": _version, "TIME": _time, "PERCENT": _percent, "PRODUCT": _product, "TRACKING": _tracking,
    "TICKET": _ticket,
    "AMOUNT": lambda r: f"{r.randint(1, 50)} 000 €",
    "QTY": lambda r: str(r.randint(1, 24)),
    "YEAR": lambda r: str(r.randint(1998, 2024)),
    "AGE": lambda r: str(r.randint(19, 67)),
    "LAST4": lambda r: _digits(r, 4),
    "DAYS": lambda r: str(r.choice((10, 15, 30, 60))),
    "COMPANY": lambda r: r.choice(_COMPANIES),
    "CLINIC": lambda r: r.choice(_CLINICS),
    "CITY": lambda r: r.choice(_CITIES)[1],
}


# ---------------------------------------------------------------------------------------
# Templates. {PLACEHOLDER}: labelled values (upper case types below) or noise (NOISE).
# Persona placeholders end in 2 or 3 for a second or third person of the same document.
# ---------------------------------------------------------------------------------------

FR_TEMPLATES: dict[str, str] = {
    "fr_bank_iban": (
        "Objet : changement de coordonnées bancaires\n\nBonjour,\n\nJe souhaite que mes prélèvements soient "
        "désormais effectués sur mon nouveau compte : IBAN {IBAN}. Mon ancien compte sera clôturé le {DATE}. "
        "Pour toute question, vous pouvez me joindre au {PHONE_FR} ou par e-mail à {EMAIL}.\n\n"
        "Cordialement,\n{NAME}\n{ADDRESS_ML}"),
    "fr_hr_form": (
        "FICHE SALARIÉ — dossier {NUM9}\nNom : {LAST_CAPS}\nPrénom : {FIRST}\nNé(e) le : {DOB_FR}\n"
        "N° de sécurité sociale : {NIR}\nAdresse : {ADDRESS}\nTéléphone : {PHONE_FR}\nCourriel : {EMAIL}\n"
        "IBAN pour le versement du salaire : {IBAN}\nDate d'entrée : {DATE}\nSalaire brut annuel : {AMOUNT}"),
    "fr_support_ticket": (
        "Ticket {TICKET} — priorité haute\nClient : {NAME} ({EMAIL})\nSociété : {COMPANY}, SIRET {SIRET}\n\n"
        "Bonjour, depuis la mise à jour {VERSION} notre serveur {IPV4} n'arrive plus à joindre l'API. "
        "Le problème survient tous les jours vers {TIME}, taux d'erreur {PERCENT}. Pouvez-vous rappeler "
        "notre responsable technique, {NAME2}, au {PHONE_FR} ?"),
    "fr_medical_letter": (
        "{CLINIC}\n{ADDRESS_ML}\n\n{CIV2} {NAME2},\n\nNous vous confirmons votre rendez-vous avec le "
        "Dr {LAST} le {DATE} à {TIME}. Merci de vous munir de votre carte Vitale (n° {NIR}) et d'une pièce "
        "d'identité. Patient{E2} né{E2} le {DOB_FR}.\nEn cas d'empêchement, prévenez le secrétariat au "
        "{PHONE_FR} au moins 48 h à l'avance.\nTarif de la consultation : {PRICE}, remboursée à {PERCENT} "
        "par l'Assurance maladie."),
    "fr_chat_resiliation": (
        "Peux-tu m'aider à rédiger une lettre de résiliation pour mon abonnement internet ? Je m'appelle "
        "{NAME}, j'habite {ADDRESS}, mon numéro client est le {ORDER} et ma ligne fixe est le {PHONE_FR}. "
        "Le contrat a démarré le {DATE} et je paie {PRICE} par mois."),
    "fr_chat_remboursement": (
        "résume ce message stp : « Salut {FIRST}, c'est {FIRST2}. Je t'envoie le RIB pour le "
        "remboursement du week-end : {IBAN}. C'était {PRICE} au total. Au fait {NAME3} a changé de "
        "numéro, c'est le {PHONE_FR} maintenant. Bises » et dis-moi si le montant est correct"),
    "fr_invoice": (
        "FACTURE N° {INVOICE}\nÉmise le {ISODATE}\n{COMPANY}\nSAS au capital de {AMOUNT} — RCS {CITY} "
        "{SIREN}\nSIRET : {SIRET}\n\nRéf. {PRODUCT} — {QTY} × {PRICE}\nTotal TTC : {PRICE}\n"
        "Règlement par virement : IBAN {IBAN}\nContact facturation : {EMAIL} / {PHONE_FR}"),
    "fr_supplier": (
        "Le fournisseur {COMPANY}, immatriculé sous le n° {SIRET}, représenté par {CIV} {NAME} en "
        "qualité de gérant{E}, s'engage à livrer la commande {ORDER} avant le {DATE}. Pénalité de retard : "
        "{PERCENT} par jour."),
    "fr_fraud": (
        "Bonjour, j'ai constaté sur mon relevé du {DATE} un paiement de {PRICE} que je n'ai pas effectué, "
        "avec ma carte {CARD}. J'ai fait opposition à {TIME}. Mon compte : {IBAN}. La connexion suspecte "
        "venait de l'adresse IP {IP}.\n{NAME}, client{E} depuis {YEAR}"),
    "fr_insurance": (
        "Assuré : {CIV} {NAME_CAPS}\nDate de naissance : {DOB_FR}\nNuméro de sécurité sociale : {NIR}\n"
        "Bénéficiaire : {RELATIVE}, né{E2} le {DOB_FR}\nAdresse : {ADDRESS}\nContrat {PRODUCT}, "
        "cotisation {PRICE} par mois, franchise {PERCENT}."),
    "fr_it_alert": (
        "[alerte] {ISODATE} {TIME} connexion SSH refusée depuis {IPV4} vers srv-prod-03 ({IPV6}). "
        "Compte visé : {EMAIL}. OpenSSH {VERSION}, charge CPU {PERCENT}. Astreinte : {FIRST} "
        "({PHONE_FR})."),
    "fr_sms": (
        "coucou c {FIRST}, mon nouveau num c'est le {PHONE_FR} et mon adresse pour la fête : {ADDRESS}. "
        "j'arrive vers {TIME}, je ramène {QTY} bouteilles !"),
    "fr_rental": (
        "Dossier de location — {ADDRESS}\nCandidat : {CIV} {NAME}, {AGE} ans, né{E} le {DOB_FR}\n"
        "Employeur : {COMPANY} (SIREN {SIREN})\nRevenus mensuels : {PRICE}\nGarant : {NAME2}, {PHONE_EU}, "
        "{EMAIL2}\nLoyer demandé : {PRICE} charges comprises."),
    "fr_meeting": (
        "Lors de la réunion du {DATE}, {NAME} a présenté les résultats du trimestre : chiffre d'affaires "
        "en hausse de {PERCENT}. {NAME2} et {FIRST3} proposent de décaler la version {VERSION} au {DATE}. "
        "Prochain point à {TIME}."),
    "fr_signature": (
        "Bonjour {FIRST2},\n\nVeuillez trouver ci-joint le devis {INVOICE} pour un montant de {PRICE}, "
        "valable {DAYS} jours.\n\nBien à vous,\n--\n{NAME_CAPS}\nChargé{E} de clientèle — {COMPANY}\n"
        "{PHONE_FR} | {EMAIL}\n{ADDRESS_ML}"),
    "fr_company_register": (
        "Extrait Kbis : {COMPANY}, société par actions simplifiée, SIREN {SIREN}, siège social {ADDRESS}. "
        "Établissement secondaire : n° {SIRET}. Président : {CIV} {NAME}, né{E} le {DOB_FR}."),
    "fr_phone_list": (
        "Numéros utiles pour le chantier (commande {ORDER}) :\n- conducteur de travaux, {NAME} : {PHONE_FR}\n"
        "- {FIRST2} (livraisons) : {PHONE_FR}\n- dépannage 24h/24 : {PHONE_FR}\nAccès au local : code "
        "{LAST4}, ouverture à {TIME}."),
}

EN_TEMPLATES: dict[str, str] = {
    "en_bank": (
        "Subject: Direct debit mandate\n\nDear Sir or Madam,\n\nPlease update the account used for my "
        "mortgage payments to {IBAN}. For identification, my date of birth is {DOB_EN}. You can reach me "
        "on {PHONE} or at {EMAIL}.\n\nKind regards,\n{NAME}"),
    "en_hr_onboarding": (
        "New starter form\nFull name: {NAME}\nDate of birth: {DOB_EN}\nHome address: {ADDRESS}\n"
        "Personal email: {EMAIL}\nMobile: {PHONE}\nFrench social security number (NIR): {NIR}\n"
        "Salary account (IBAN): {IBAN}\nStart date: {ISODATE}\nEmployee ID: {ORDER}"),
    "en_support": (
        "Ticket {TICKET}\nFrom: {NAME} <{EMAIL}>\n\nHi team, after upgrading to v{VERSION} our gateway at "
        "{IP} returns 502 errors about {PERCENT} of the time, mostly around {TIME} UTC. Order {ORDER}, "
        "invoice {INVOICE}. Please call me back on {PHONE}.\nThanks,\n{FIRST}"),
    "en_medical": (
        "Dear {CIV} {LAST},\n\nThis letter confirms your appointment with Dr {LAST2} on {DATE_EN} at {TIME} "
        "at our clinic, {ADDRESS}. Please bring your Carte Vitale: our records show social security "
        "number {NIR} and date of birth {DOB_EN}. To cancel, call {PHONE_FR} or email {EMAIL3}.\n\n"
        "Yours sincerely,\n{NAME3}\nPatient services"),
    "en_chat_invoice": (
        "Can you write a polite follow-up email to {NAME} ({EMAIL}) reminding them that invoice "
        "{INVOICE} for {PRICE_EN} has been overdue since {DATE_EN}? Mention our company number, SIREN "
        "{SIREN}, and that payment can be made to {IBAN}."),
    "en_chat_card": (
        "my card {CARD} got declined twice at {TIME}, the shop said error code {PRODUCT}. i'm {FIRST}, "
        "account email {EMAIL}. is it because i moved to {ADDRESS}?"),
    "en_security": (
        "Security alert for {EMAIL}: new sign-in from {IPV6} (previous: {IPV4}) on {ISODATE} at {TIME}. "
        "Device: Chrome {VERSION}. If this wasn't you, call us on {PHONE_EU}. Your card ending {LAST4} "
        "was not affected."),
    "en_prose": (
        "At yesterday's meeting {NAME} explained that the migration to version {VERSION} is {PERCENT} done. "
        "{NAME2} will follow up with the supplier ({COMPANY}, SIRET {SIRET}) before {DATE_EN}, and "
        "{FIRST3} will update the dashboard."),
    "en_travel": (
        "Booking reference {PRODUCT}\nPassenger: {CIV} {NAME_CAPS}\nBorn: {DOB_EN}\nContact: {PHONE}, "
        "{EMAIL}\nPaid {PRICE_EN} with card {CARD} on {ISODATE}. Seat 14C, departure {TIME}."),
    "en_landlord": (
        "Dear {FIRST},\n\nThe deposit of {PRICE_EN} will be returned to your account {IBAN} within {DAYS} "
        "days. The inventory of\n{ADDRESS_ML}\nis attached.\n\nBest,\n{NAME2}\n{PHONE_EU}"),
    "en_complaint": (
        "Hello, I'm writing about order #{ORDER} placed on {DATE_EN}. The parcel (tracking {TRACKING}) "
        "never arrived at {ADDRESS}. I paid {PRICE_EN} by card {CARD}. My phone: {PHONE_FR}. – {NAME}"),
    "en_kyc": (
        "KYC check for {NAME}: DOB {DOB_EN}, passport issued {DATE_EN}, residential address {ADDRESS}, IP "
        "at onboarding {IP}, employer {COMPANY} (SIREN {SIREN}, SIRET no. {SIRET})."),
    "en_chat_cv": (
        "Please improve my CV summary: \"{NAME}, born on {DOB_EN}, data engineer with {QTY} years of "
        "experience, based in {CITY}. Contact: {EMAIL}, {PHONE}.\" Keep it under {QTY} lines."),
}

_LABELLED = {
    "EMAIL": "EMAIL", "EMAIL2": "EMAIL", "EMAIL3": "EMAIL", "PHONE": "PHONE_NUMBER",
    "PHONE_FR": "PHONE_NUMBER", "PHONE_EU": "PHONE_NUMBER", "IBAN": "IBAN", "CARD": "CREDIT_CARD",
    "NIR": "FR_NIR", "SIREN": "FR_SIREN", "SIRET": "FR_SIRET", "IP": "IP_ADDRESS", "IPV4": "IP_ADDRESS",
    "IPV6": "IP_ADDRESS", "DOB_FR": "DATE_OF_BIRTH", "DOB_EN": "DATE_OF_BIRTH", "ADDRESS": "FR_ADDRESS",
    "ADDRESS_ML": "FR_ADDRESS", "RELATIVE": "PERSON",
}
for _i in ("", "2", "3"):
    for _k in ("NAME", "FIRST", "LAST", "NAME_CAPS", "LAST_CAPS"):
        _LABELLED[_k + _i] = "PERSON"

_PLACEHOLDER = re.compile(r"\{([A-Z_0-9]+)\}")


class Builder:
    """One document: text appended piece by piece, labels recorded as values go in."""

    def __init__(self, lang: str, fake: Any, rng: random.Random, fake_fr: Any) -> None:
        self.lang, self.fake, self.rng, self.fake_fr = lang, fake, rng, fake_fr
        self.parts: list[str] = []
        self.size = 0
        self.entities: list[dict[str, Any]] = []
        self.people: dict[str, Person] = {}

    def text(self, value: str) -> None:
        self.parts.append(value)
        self.size += len(value)

    def entity(self, type_: str, value: str) -> None:
        assert value == value.strip() and value, (type_, value)
        self.entities.append({"type": type_, "start": self.size, "end": self.size + len(value),
                              "value": value})
        self.text(value)

    def person(self, index: str) -> Person:
        if index not in self.people:
            self.people[index] = Person(self.fake, self.rng)
        return self.people[index]

    def value(self, key: str) -> str:
        rng = self.rng
        m = re.fullmatch(r"(NAME|FIRST|LAST|NAME_CAPS|LAST_CAPS|EMAIL|CIV|E)([23]?)", key)
        if m:
            kind, index = m.groups()
            p = self.person(index or "1")
            if kind == "NAME":
                return p.name
            if kind == "FIRST":
                return p.first
            if kind == "LAST":
                return p.last
            if kind == "LAST_CAPS":
                return p.last.upper()
            if kind == "NAME_CAPS":
                return f"{p.last.upper()} {p.first}" if rng.random() < 0.5 else f"{p.first} {p.last.upper()}"
            if kind == "EMAIL":
                return p.email(rng)
            if kind == "E":  # French feminine agreement
                return "e" if p.female else ""
            if self.lang == "fr":
                return rng.choice(("Mme", "Madame")) if p.female else rng.choice(("M.", "Monsieur"))
            return rng.choice(("Mrs", "Ms")) if p.female else "Mr"
        if key == "RELATIVE":
            return f"{self.person('2').first} {self.person('1').last}"  # same family name
        if key == "PHONE":
            return make_fr_phone(rng) if rng.random() < 0.6 else make_eu_phone(rng)
        if key == "PHONE_FR":
            return make_fr_phone(rng)
        if key == "PHONE_EU":
            return make_eu_phone(rng)
        if key == "IBAN":
            return make_iban(rng)
        if key == "CARD":
            return make_card(rng)
        if key == "NIR":
            return make_nir(rng)
        if key == "SIREN":
            return fmt_siren(rng, make_siren(rng))
        if key == "SIRET":
            return fmt_siret(rng, make_siret(rng)[0])
        if key in ("IP", "IPV4", "IPV6"):
            v6 = key == "IPV6" or (key == "IP" and rng.random() < 0.35)
            return make_ipv6(rng) if v6 else make_ipv4(rng)
        if key == "DOB_FR":
            return fmt_date_fr(rng, *_ymd(rng, (1940, 2006)))
        if key == "DOB_EN":
            return fmt_date_en(rng, *_ymd(rng, (1940, 2006)))
        if key == "DATE":
            return fmt_date_fr(rng, *_ymd(rng, (2023, 2027)))
        if key == "DATE_EN":
            return fmt_date_en(rng, *_ymd(rng, (2023, 2027)))
        if key == "ISODATE":
            y, mo, d = _ymd(rng, (2023, 2027))
            return f"{y}-{mo:02d}-{d:02d}"
        if key in ("ADDRESS", "ADDRESS_ML"):
            return make_address(rng, self.fake_fr, multiline=key == "ADDRESS_ML")
        return NOISE[key](rng)

    def fill(self, template: str) -> None:
        pos = 0
        for m in _PLACEHOLDER.finditer(template):
            self.text(template[pos:m.start()])
            key = m.group(1)
            value = self.value(key)
            if key in _LABELLED:
                self.entity(_LABELLED[key], value)
            else:
                self.text(value)
            pos = m.end()
        self.text(template[pos:])

    def document(self, template_name: str) -> dict[str, Any]:
        text = "".join(self.parts)
        for e in self.entities:  # every label is exactly the value inserted
            assert text[e["start"]:e["end"]] == e.pop("value"), (template_name, e)
        spans = sorted((e["start"], e["end"]) for e in self.entities)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), template_name
        return {"text": text, "lang": self.lang, "template": template_name, "entities": self.entities}


def template_types(template: str) -> set[str]:
    return {_LABELLED[k] for k in _PLACEHOLDER.findall(template) if k in _LABELLED}


def generate(n_entities: int = DEFAULT_ENTITIES, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """Documents until at least ``n_entities`` labels. Templates are drawn at random, half of the
    time among those that carry the type seen least so far (every type gets its share)."""
    from faker import Faker

    rng = random.Random(seed)
    fakes = {loc: Faker(loc) for loc in ("fr_FR", "en_GB", "en_US")}
    for i, fake in enumerate(fakes.values()):
        fake.seed_instance(seed + i)
    templates = [("fr", name, t) for name, t in FR_TEMPLATES.items()] + \
                [("en", name, t) for name, t in EN_TEMPLATES.items()]
    types_of = {name: template_types(t) for _lang, name, t in templates}
    counts: Counter[str] = Counter({t: 0 for t in TYPES})
    docs: list[dict[str, Any]] = []
    total = 0
    while total < n_entities:
        if rng.random() < 0.5:
            lang, name, template = rng.choice(templates)
        else:
            least = min(TYPES, key=lambda t: (counts[t], TYPES.index(t)))
            lang, name, template = rng.choice([x for x in templates if least in types_of[x[1]]])
        fake = fakes["fr_FR"] if lang == "fr" else fakes[rng.choice(("en_GB", "en_US"))]
        builder = Builder(lang, fake, rng, fakes["fr_FR"])
        builder.fill(template)
        doc = builder.document(name)
        docs.append(doc)
        for e in doc["entities"]:
            counts[e["type"]] += 1
        total += len(doc["entities"])
    return docs


def digest(docs: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(docs, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def stats(docs: list[dict[str, Any]]) -> dict[str, Any]:
    counts = Counter(e["type"] for d in docs for e in d["entities"])
    return {"documents": len(docs), "entities": sum(counts.values()),
            "characters": sum(len(d["text"]) for d in docs),
            "languages": dict(Counter(d["lang"] for d in docs)),
            "per_type": {t: counts[t] for t in TYPES}, "sha256": digest(docs)}


def show(doc: dict[str, Any]) -> str:
    """The text with each label as ⟦TYPE: value⟧."""
    text: str = doc["text"]
    out: list[str] = []
    pos = 0
    for e in sorted(doc["entities"], key=lambda e: e["start"]):
        out += [text[pos:e["start"]], f"⟦{e['type']}: {text[e['start']:e['end']]}⟧"]
        pos = e["end"]
    return "".join(out) + text[pos:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=DEFAULT_ENTITIES, help="at least this many labels")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, help="write the corpus as JSON here")
    parser.add_argument("--show", type=int, default=0, help="print this many documents, labels marked")
    args = parser.parse_args()
    docs = generate(args.entities, args.seed)
    for doc in docs[:args.show]:
        print(f"--- {doc['template']} ({doc['lang']})\n{show(doc)}\n")
    if args.out:
        args.out.write_text(json.dumps(docs, ensure_ascii=False, indent=1) + "\n")
    print(json.dumps(stats(docs), ensure_ascii=False))


if __name__ == "__main__":
    main()
