"""Recognizers: valid identifiers are found wherever they stand, look-alikes are not."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from fabrique.policy import scan
from fabrique.policy.checksums import IBAN_LENGTHS, iban_valid, luhn, nir_valid


def make_iban(country: str, rng: random.Random) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(IBAN_LENGTHS[country] - 4))
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return next(body + d for d in "0123456789" if luhn(body + d))


def make_nir(rng: random.Random, dept: str | None = None) -> str:
    dept = dept or f"{rng.randint(1, 95):02d}"
    body = (f"{rng.choice('12')}{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{dept}"
            f"{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}")
    numeric = body.replace("2A", "19").replace("2B", "18")
    return f"{body}{97 - int(numeric) % 97:02d}"


def groups(value: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(value[i:i + size] for i in range(0, len(value), size))


def types(text: str) -> list[tuple[str, str]]:
    return [(e.type, e.text) for e in scan(text)]


def test_checksums_accept_generated_and_reject_altered_values():
    rng = random.Random(7)
    for country in IBAN_LENGTHS:
        iban = make_iban(country, rng)
        assert iban_valid(iban)
        assert not iban_valid(iban[:-1] + str((int(iban[-1]) + 1) % 10))
    for dept in (None, "2A", "2B"):
        nir = make_nir(rng, dept)
        assert nir_valid(nir), nir
        assert not nir_valid(nir[:-2] + f"{(int(nir[-2:]) + 1) % 100:02d}")


@given(st.randoms(use_true_random=False), st.sampled_from(sorted(IBAN_LENGTHS)),
       st.sampled_from(["", " "]))
def test_ibans_are_found_in_any_sepa_country_and_layout(rng, country, sep):
    iban = make_iban(country, rng)
    shown = groups(iban) if sep else iban
    assert types(f"Virement sur {shown}, merci.") == [("IBAN", shown)]


@given(st.randoms(use_true_random=False), st.sampled_from(["4", "51", "37", "6011"]),
       st.sampled_from([" ", "-", ""]))
def test_cards_are_found(rng, prefix, sep):
    card = luhn_complete(prefix, 16 if prefix != "37" else 15, rng)
    shown = groups(card, sep=sep) if sep else card
    assert types(f"carte {shown} exp 12/29") == [("CREDIT_CARD", shown)]


@given(st.randoms(use_true_random=False), st.sampled_from([None, "2A", "2B"]))
def test_nir_is_found_with_or_without_spaces_including_corsica(rng, dept):
    nir = make_nir(rng, dept)
    spaced = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
    assert types(f"n° sécu {spaced}.") == [("FR_NIR", spaced)]
    assert types(f"NIR:{nir}") == [("FR_NIR", nir)]


def test_siren_and_siret():
    rng = random.Random(3)
    siren = luhn_complete("", 9, rng)
    siret = luhn_complete(siren, 14, rng)
    assert types(f"SIREN {groups(siren, 3)}") == [("FR_SIREN", groups(siren, 3))]
    shown = f"{groups(siren, 3)} {siret[9:]}"
    assert types(f"SIRET : {shown}") == [("FR_SIRET", shown)]


def test_phones_emails_ips_and_birth_dates():
    text = ("Appelez le 06 12 34 56 78, le +33 (0)1 23 45 67 89 ou le +49 30 1234567 ; "
            "écrivez à jean.dupont@example.fr ; IP 192.168.1.10 ou 2001:db8::1 ; née le 12/03/1985, "
            "born on 3 March 1990.")
    assert types(text) == [
        ("PHONE_NUMBER", "06 12 34 56 78"), ("PHONE_NUMBER", "+33 (0)1 23 45 67 89"),
        ("PHONE_NUMBER", "+49 30 1234567"), ("EMAIL", "jean.dupont@example.fr"),
        ("IP_ADDRESS", "192.168.1.10"), ("IP_ADDRESS", "2001:db8::1"),
        ("DATE_OF_BIRTH", "12/03/1985"), ("DATE_OF_BIRTH", "3 March 1990")]


def test_ordinary_numbers_do_not_match():
    text = ("Commande 12345 du 12/03/2024 à 12:30:00, total 1 234,56 €, réf. 2024-0042, "
            "version 10.0.0.256, 3 articles, code postal 75011, année 1985, 0000000000000000.")
    assert types(text) == []


@given(st.text(max_size=300))
def test_offsets_always_point_at_the_text(text):
    for entity in scan(text):
        assert text[entity.start:entity.end] == entity.text
