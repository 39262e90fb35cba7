"""Person names by context, without NER: strong cues find names, capitals alone do not."""

from __future__ import annotations

import pytest

from fabrique.policy import Scanner

RULES = Scanner(cache_size=0)


def persons(text: str) -> list[str]:
    return [e.text for e in RULES.scan(text) if e.type == "PERSON"]


@pytest.mark.parametrize(("text", "names"), [
    ("Le dossier de M. Jean DUPONT est complet.", ["Jean DUPONT"]),
    ("Mme Lefèvre et Mlle Zoé Caron sont arrivées.", ["Lefèvre", "Zoé Caron"]),
    ("Rendez-vous avec le docteur Martin, puis avec Me Durand-Leroy.", ["Martin", "Durand-Leroy"]),
    ("Monsieur de Villepin a écrit à Pr. Anne-Sophie d'Arcy.", ["de Villepin", "Anne-Sophie d'Arcy"]),
    ("Mr. Jean-Pierre de La Fontaine, Mrs O'Connor and Dr Vincent van Gogh", [
        "Jean-Pierre de La Fontaine", "O'Connor", "Vincent van Gogh"]),
    ("Bonjour, je m'appelle Léa Martin et j'ai une question.", ["Léa Martin"]),
    ("Hi! My name is John Smith, I need help.", ["John Smith"]),
    ("Dear Sarah,\nthanks for the update.", ["Sarah"]),
    ("Bonjour Paul, voici le devis.", ["Paul"]),
    ("Nom : DUPONT\nPrénom : Jean", ["DUPONT", "Jean"]),
    ("Full name: Karen Clark", ["Karen Clark"]),
    ("Merci d'avance.\nCordialement,\nMarie Lefèvre\nService clients", ["Marie Lefèvre"]),
    ("Thanks again.\n\nBest regards,\nJohn Carter", ["John Carter"]),
    ("Marie Dupont, née Martin, habite ici.", ["Martin"]),
    ("Signé par Hugo Lambert le 3 mars.", ["Hugo Lambert"]),
    ("Łukasz Wałęsa? Oui : Monsieur Wałęsa.", ["Wałęsa"]),
    ("hey, i'm Philip, account email below", ["Philip"]),
    ("Bien à vous,\n--\nDELAHAYE Nathalie\nChargée de clientèle", ["DELAHAYE Nathalie"]),
    ("M. Jean Dupont et Xavier Martin proposent un report.", ["Jean Dupont", "Xavier Martin"]),
])
def test_cues_find_names(text, names):
    found = persons(text)
    assert [n for n in names if n in found] == names, found


def test_a_name_found_once_is_found_everywhere_in_the_text():
    text = "M. Jean Dupont a appelé. Dupont rappellera ; Jean attend le dossier Dupontel."
    assert persons(text) == ["Jean Dupont", "Dupont", "Jean"]


@pytest.mark.parametrize("text", [
    "Dear Sir or Madam, Hello World! Dear Customer, Bonjour à tous.",
    "Dear Hiring Manager, Dear Valued Customer, Hi there, Hello Team!",
    "La Commission Européenne et le Parlement Européen siègent à Bruxelles.",
    "Cordialement,\nLa Direction",
    "Regards,\nThe Fabrique Team",
    "Merci,\nBonne journée à tous",
    "Le Président de la République a reçu Monsieur le Maire.",
    "Madame la Directrice, veuillez trouver ci-joint le rapport.",
    "Me and my team shipped version 2 on Monday. Call me tomorrow.",
    "Je m'appelle comment déjà ? my name is not important.",
    "I'm French and I am Sorry about the delay; i'm not sure.",
])
def test_capitals_without_a_cue_are_not_names(text):
    assert persons(text) == []
