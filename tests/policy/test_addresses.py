"""Postal addresses: French ones in their usual layouts, English street addresses, and the
numbers followed by words that are no address."""

from __future__ import annotations

import pytest

from fabrique.policy import Scanner

SCANNER = Scanner(cache_size=0)


def addresses(text: str) -> list[tuple[str, str]]:
    return [(e.type, e.text) for e in SCANNER.scan(text) if e.type in ("FR_ADDRESS", "ADDRESS")]


@pytest.mark.parametrize("address", [
    "12 rue des Lilas",
    "12 bis rue des Lilas, 75011 Paris",
    "3 ter, avenue Jean Jaurès\n69007 Lyon",
    "5, avenue du 8 Mai 1945\n69003 LYON CEDEX 03",
    "140 bd Haussmann 75008 Paris",
    "2 place de l'Église - 35000 Rennes",
    "7 chemin des Vignes, BP 42, 33000 Bordeaux Cedex",
    "18 Quai Saint-Vincent",
    "1 allée Marcel Pagnol, 13090 Aix-en-Provence",
    "24 impasse du Moulin",
    "9 rue des lilas, 75011 Paris",
])
def test_french_street_addresses(address):
    assert addresses(f"Livraison au {address}. Merci.") == [("FR_ADDRESS", address)]


@pytest.mark.parametrize("address", [
    "BP 123, 75001 Paris Cedex 01", "CS 12345 - 92100 Boulogne-Billancourt",
    "TSA 40111\n69422 Lyon Cedex 03",
])
def test_french_postal_boxes(address):
    assert addresses(f"Écrire à : {address}") == [("FR_ADDRESS", address)]


@pytest.mark.parametrize("address", [
    "221B Baker Street, London NW1 6XE", "10 Downing Street", "350 5th Avenue",
    "1600 Pennsylvania Avenue, Washington, DC 20500", "42 Elm Rd.",
])
def test_english_street_addresses(address):
    assert addresses(f"Send it to {address}. Thanks") == [("ADDRESS", address)]


def test_a_street_name_wins_over_the_person_it_honours():
    assert [e.type for e in SCANNER.scan("Au 4 rue du Dr Roux, 75015 Paris")] == ["FR_ADDRESS"]


@pytest.mark.parametrize("text", [
    "J'ai 5 cours de maths et 2 places de cinéma pour 3 personnes.",
    "Les 12 routes et 4 chemins de la région ; 3 places disponibles.",
    "We took 2 Road Trips, made 10 Lane changes per hour and 3 Square meals.",
    "Le code postal 75011, l'article 12 rue de la loi, version 3.2 place de marché.",
    "BP a publié 12345 résultats ; CS 101 est un cours.",
])
def test_numbers_before_words_are_not_addresses(text):
    assert addresses(text) == []
