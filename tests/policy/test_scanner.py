"""The Scanner: custom recognizers beside the built-in ones, the result cache, and ordinary
prose that must give no finding."""

from __future__ import annotations

import pytest

from fabrique.policy import RecognizerSpec, Scanner, scan


def found(scanner: Scanner, text: str) -> list[tuple[str, str, float]]:
    return [(e.type, e.text, e.score) for e in scanner.scan(text)]


def test_a_custom_pattern_reports_its_named_group():
    spec = RecognizerSpec("employee ids", "EMPLOYEE_ID", patterns=(r"\bEMP-(?P<v>\d{6})\b",))
    scanner = Scanner([spec])
    assert found(scanner, "Badge EMP-004211, e-mail léa@example.fr") == [
        ("EMPLOYEE_ID", "004211", 1.0), ("EMAIL", "léa@example.fr", 1.0)]


def test_a_deny_list_matches_whole_words_in_any_case_and_spacing():
    spec = RecognizerSpec("projects", "PROJECT", deny_list=("Blue Falcon", "orion"), score=0.8)
    scanner = Scanner([spec])
    assert found(scanner, "Le projet blue   FALCON et ORION, pas Orionis.") == [
        ("PROJECT", "blue   FALCON", 0.8), ("PROJECT", "ORION", 0.8)]


def test_context_words_raise_a_low_score_and_the_threshold_applies():
    spec = RecognizerSpec("badges", "BADGE", patterns=(r"\b\d{5}\b",), score=0.4,
                          context=("badge", "carte d'accès"))
    scanner = Scanner([spec])
    text = "Carte d'accès : 12345. Par ailleurs, la commande passée hier porte le numéro 67890."
    assert found(scanner, text) == [("BADGE", "12345", 1.0)]
    assert found(Scanner([spec], min_score=0.3), "commande 67890") == [("BADGE", "67890", 0.4)]


def test_custom_findings_follow_the_overlap_rules():
    # Longer wins; at equal length a built-in type comes before a new one.
    longer = RecognizerSpec("accounts", "ACCOUNT", patterns=(r"IBAN FR\d\d[\d ]+",))
    same = RecognizerSpec("mails", "MAIL_ALIAS", patterns=(r"\S+@\S+\.fr",))
    text = "IBAN FR76 3000 6000 0112 3456 7890 189 ; léa@example.fr"
    assert [t for t, _, _ in found(Scanner([longer, same]), text)] == ["ACCOUNT", "EMAIL"]


@pytest.mark.parametrize(("spec", "message"), [
    (RecognizerSpec("bad regex", "X", patterns=("(unclosed",)),
     "recognizer 'bad regex': pattern 1 is not a valid regular expression"),
    (RecognizerSpec("empty", "X"), "recognizer 'empty': give patterns or a deny_list"),
    (RecognizerSpec("lower", "employee_id", patterns=("x",)),
     "recognizer 'lower': entity type 'employee_id' is not UPPER_SNAKE"),
    (RecognizerSpec("greedy", "X", patterns=("ok", r"\d*")),
     "recognizer 'greedy': pattern 2 matches the empty string"),
    (RecognizerSpec("blank", "X", deny_list=("a", "  ")), "recognizer 'blank': deny_list entry 2 is empty"),
    (RecognizerSpec("score", "X", patterns=("x",), score=1.5), "recognizer 'score': score 1.5"),
])
def test_a_wrong_custom_recognizer_is_refused_by_name(spec, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        Scanner([spec])


def test_repeated_texts_are_answered_from_the_cache():
    scanner = Scanner(cache_size=2)
    history = ["Bonjour, je m'appelle Léa Martin, joignable au 06 12 34 56 78 ou lea@example.fr.",
               "Mon IBAN est FR76 3000 6000 0112 3456 7890 189, merci de vérifier mon dossier.",
               "Et mon adresse : 12 rue des Lilas, 75011 Paris ; mon collègue M. Jean Dupont aussi."]
    first = [scanner.scan(t) for t in history[:2]]
    assert scanner.cache_info() == (0, 2, 2)
    again = [scanner.scan(t) for t in history[:2]]  # the next turn resends the history
    assert again == first and scanner.cache_info() == (2, 2, 2)
    again[0].clear()  # a caller's list is its own
    assert scanner.scan(history[0]) == first[0]
    scanner.scan(history[2])  # the least recently used (history[1]) goes
    scanner.scan(history[1])
    assert scanner.cache_info() == (3, 4, 2)
    assert Scanner(cache_size=2).scan("M. Dupont") == scanner.scan("M. Dupont")  # short: not cached
    assert scanner.cache_info().size == 2


def test_the_module_scan_is_a_default_scanner():
    text = "Contact: M. Jean Dupont, +33 6 12 34 56 78, 1 SIREN guess 732 829 320"
    assert scan(text) == Scanner().scan(text)
    assert [e.type for e in scan(text, min_score=0.95)] == ["PHONE_NUMBER", "FR_SIREN"]


# Ordinary prose, with numbers, versions, prices, dates, times and capitals: no finding.
PROSE = [
    """Bonjour à tous, voici le compte rendu de la réunion du 12 mars 2024. Nous avons passé en revue
    les 3 chantiers : la refonte du portail, le passage à la version 4.2.1.0 du moteur et la baisse des
    coûts. Le budget est de 125 000 € (dont 40 % engagés), soit 1 234,56 € par mois. Réponse en 850 ms
    au 95e centile contre 300 ms visés. Prochaine réunion le jeudi 21/03/2024 à 14h30, salle 204, au
    troisième étage. Le séminaire se tiendra à Lyon du 3 au 5 juin ; la Direction Générale et le
    Comité de Pilotage y seront. Python 3.11.7 est déployé sur 80 % des services (v2.0.0.1 du SDK).
    Commande n° 2024-0042, réf. 10.0.0.256, 5 cours de formation, mise en place prévue. Cordialement,
    L'équipe Projet""",
    """Hi everyone, here are the notes from Tuesday's meeting. We reviewed the three workstreams and
    the upgrade to release 1.2.3.4 of the search engine. The budget is $125,000 (40 percent committed),
    p95 latency is 850 ms against 300 ms, and version 10.2 ships on 2024-03-21 at 2:30 pm in room 204.
    The European Commission and the Board of Directors will attend. Call me tomorrow; Me and Paris
    are fine. Dear all, thanks. Order 12345678, invoice INV-2024-0042, 3 Main lines of work.
    Best regards,
    The Platform Team""",
]


@pytest.mark.parametrize("text", PROSE)
def test_ordinary_prose_gives_no_finding(text):
    assert scan(text) == []
