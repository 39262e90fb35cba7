"""Data sovereignty: personal-data recognizers (policy and pseudonymization to follow)."""

from fabrique.policy.recognizers import Entity, scan

__all__ = ["Entity", "scan"]
