"""Recognizers: valid identifiers are found wherever they stand, look-alikes are not."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fabrique.policy import ENTITY_TYPES, scan
from fabrique.policy.checksums import IBAN_LENGTHS, iban_valid, luhn, nir_valid
from fabrique.policy.identifiers import EMAIL, RECOGNIZERS, EmailRecognizer
from fabrique.policy.patterns import PatternRecognizer, Prepared


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


@given(st.randoms(use_true_random=False), st.sampled_from([" ", ".", "-", ""]),
       st.sampled_from(["0{}", "+33 {}", "0033 {}", "+33 (0){}"]))
def test_french_phones_are_found_in_any_layout(rng, sep, prefix):
    national = f"{rng.randint(1, 9)}" + "".join(rng.choice("0123456789") for _ in range(8))
    shown = prefix.format(national[0] + sep + sep.join(national[i:i + 2] for i in range(1, 9, 2)))
    assert types(f"Tél. : {shown}, merci") == [("PHONE_NUMBER", shown)]


def test_dotted_versions_are_not_addresses_but_real_ones_are():
    assert types("Passez en version 1.2.3.4 puis redémarrez.") == []
    assert types("release 2.10.1.3 is out; firmware v. 4.1.0.2 too") == []
    assert types("v2.0.0.1 fixes 1.0.0.3 (see the changelog of the new version)") == []
    assert types("Ping 10.0.0.1, then upgrade to version 3.1 on 192.168.1.254.") == [
        ("IP_ADDRESS", "10.0.0.1"), ("IP_ADDRESS", "192.168.1.254")]
    assert types("not 1.2.3.4.5, nor the host 10.1.2.3.example.net") == []


def test_every_builtin_type_is_listed():
    assert {r.type for r in RECOGNIZERS} | {"EMAIL", "PERSON", "FR_ADDRESS", "ADDRESS"} == ENTITY_TYPES


# Pieces that make look-alikes of every identifier when strung together at random.
PIECES = ["FR76", "GB82", "WEST", "3000", "6000", "0112", "189", "2A", "2B", "1", "85", "03", "75",
          "115", "004", "54", " ", "\u00a0", "-", ".", "@", "a", "jean.dupont", ".fr", "é", "+33",
          "+49", "0033", "(0)", "06", "12", "born ", "Né le ", "née le ", "naissance: ", "DOB ",
          "12/03/1985", "3 March 1990", "::", "db8", "2001:", ":", "192.168.1.10", "version ", "%",
          "4111", "1111", "732", "829", "İ", "ı", "K", "monsieur ", "SIREN ", "٣"]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(st.sampled_from(PIECES), max_size=40).map("".join), st.text(max_size=200)))
def test_searching_near_triggers_finds_what_a_whole_text_search_finds(text):
    for recognizer in RECOGNIZERS:
        whole = dataclasses.replace(recognizer, trigger=None, where=None)
        assert list(recognizer.find(Prepared(text))) == list(whole.find(Prepared(text)))
    emails = PatternRecognizer("EMAIL", EMAIL, lambda value: 1.0, compact=False)
    assert list(EmailRecognizer().find(Prepared(text))) == list(emails.find(Prepared(text)))


# Regressions, one family at a time (the benchmark's misses of November 2026).

def test_a_14_digit_number_is_a_siret_unless_a_diners_card_is_spoken_of():
    rng = random.Random(11)
    for prefix in ("", "30", "36", "38"):  # Diners' prefixes pass a SIRET's Luhn check too
        siret = luhn_complete(prefix, 14, rng)
        for cue in ("SIRET", "n°", "établissement", "immatriculé sous le numéro", "no."):
            assert types(f"{cue} {siret}.") == [("FR_SIRET", siret)]
    diners = luhn_complete("36", 14, rng)
    spaced = f"{diners[:4]} {diners[4:10]} {diners[10:]}"
    assert types(f"payé avec ma carte Diners {diners}") == [("CREDIT_CARD", diners)]
    assert types(f"card: {spaced}") == [("CREDIT_CARD", spaced)]


@given(st.randoms(use_true_random=False), st.sampled_from(["34", "37"]), st.sampled_from([" ", "-", ""]))
def test_amex_is_found_as_printed_4_6_5(rng, prefix, sep):
    amex = luhn_complete(prefix, 15, rng)
    shown = sep.join((amex[:4], amex[4:10], amex[10:]))
    assert types(f"I paid by card {shown}. Thanks") == [("CREDIT_CARD", shown)]


@given(st.randoms(use_true_random=False), st.sampled_from(["971", "972", "973", "974", "976", "987"]))
def test_overseas_nir_groups_department_3_and_commune_2(rng, dept):
    nir = make_nir(rng, dept[:2])[:5] + dept  # sex, year, month, then the overseas department
    nir += "".join(rng.choice("0123456789") for _ in range(5))
    nir += f"{97 - int(nir) % 97:02d}"
    spaced = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:8]} {nir[8:10]} {nir[10:13]} {nir[13:]}"
    assert types(f"N° de sécurité sociale : {spaced}") == [("FR_NIR", spaced)]


def test_siret_grouped_by_three_leaves_no_siren_behind():
    rng = random.Random(5)
    for _ in range(20):
        siret = luhn_complete(luhn_complete("", 9, rng), 14, rng)
        for sep in (" ", ".", "\u00a0"):
            shown = sep.join((siret[:3], siret[3:6], siret[6:9], siret[9:12], siret[12:]))
            assert types(f"SIRET : {shown} (siège)") == [("FR_SIRET", shown)]


def ean13_and_luhn(prefix: str, rng: random.Random) -> str:
    while True:
        value = luhn_complete(prefix, 13, rng)
        if sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(value)) % 10 == 0:
            return value


def test_barcodes_are_not_cards():
    rng = random.Random(2)
    for prefix in ("3", "4", "5"):
        code = ean13_and_luhn(prefix, rng)
        for cue in ("SKU", "Réf. EAN", "code-barres :", "GTIN", "article n°", "item #", ""):
            assert types(f"{cue} {code} — 3 × 12 €") == []
    visa = ean13_and_luhn("4", rng)
    assert types(f"ma vieille carte Visa {visa}") == [("CREDIT_CARD", visa)]
    assert ("CREDIT_CARD", "4111111111111111") in types("Réf. client, carte 4111111111111111")


def test_part_numbers_are_not_phones():
    for value in ("0562-1794-04", "0123 4567 89", "06-1234-5678", "06 12.34 56 78", "0612 345 678"):
        assert types(f"P/N {value}") == [], value
        assert types(f"Ref {value} ok") == [], value


@given(st.randoms(use_true_random=False), st.sampled_from(sorted(IBAN_LENGTHS)),
       st.sampled_from(["within 30 days", "with thanks", "merci", "pour le loyer", "ABCD", "A1B2 C3"]))
def test_a_spaced_iban_followed_by_words_ends_at_its_length(rng, country, after):
    shown = groups(make_iban(country, rng))
    assert types(f"returned to your account {shown} {after}.")[:1] == [("IBAN", shown)]


def test_birth_dates_month_first_or_after_is():
    for text, date in [
        ("Born: February 1, 1975", "February 1, 1975"),
        ("DOB November 25, 1957", "November 25, 1957"),
        ("my date of birth is 1953-07-14.", "1953-07-14"),
        ("date of birth was Sept. 3rd, 1990", "Sept. 3rd, 1990"),
        ("born on the 3rd of March 1990", "3rd of March 1990"),
        ("Date of birth: 21/11/2002", "21/11/2002"),
        ("ma date de naissance est le 1er févr. 1988", "1er févr. 1988"),
        ("Né le : 1970/05/02", "1970/05/02"),
    ]:
        assert types(text) == [("DATE_OF_BIRTH", date)], text
    assert types("born in 1975, joined on February 1, 1998") == []


def test_ipv6_needs_enough_of_an_address():
    assert types('root ::= "yes" | "no"') == []  # llama.cpp's grammar syntax
    assert types("listen on :: or ::1, then fe80::1") == []
    address = "2001:db8:85a3::8a2e:370:7334"
    assert types(f"client {address} seen") == [("IP_ADDRESS", address)]
