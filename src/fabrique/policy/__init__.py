"""Data sovereignty: personal-data recognizers, residency policies, pseudonymization."""

from fabrique.policy.ner import NerUnavailable
from fabrique.policy.recognizers import ENTITY_TYPES, Entity, RecognizerSpec, Scanner, scan

__all__ = ["ENTITY_TYPES", "Entity", "NerUnavailable", "RecognizerSpec", "Scanner", "scan"]
