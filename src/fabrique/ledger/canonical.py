"""Canonical JSON: the exact bytes a ledger leaf commits to, reproducible by anyone.

The encoding is RFC 8785 (JCS) restricted so that every mainstream JSON library writes
it the same way: object keys are ASCII and sorted, no whitespace, strings escaped as
ECMAScript's ``JSON.stringify`` does (``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, other
control characters as ``\\u00xx``, everything else as raw UTF-8), and numbers are
integers only. Floats are the classic trap of canonical JSON (``1e21`` or ``1e+21``?), so
a record never holds one: quantities are integers in small units (microseconds) and
anything fractional (euros, watt-hours) is a decimal string. ``docs/ledger.md`` writes
this down for auditors.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_SORT_KEYS


class NotCanonical(ValueError):
    """The value holds something canonical JSON does not allow (a float, a non-ASCII key)."""


def canonical(value: Any) -> bytes:
    """The canonical bytes of ``value``; raises ``NotCanonical`` on floats or odd keys."""
    _check(value)
    return orjson.dumps(value, option=_OPTIONS)


def canonical_unchecked(value: Any) -> bytes:
    """The canonical bytes of a value already known to be canonical (parsed from an
    export, or built by ``record.build``): the verifier's fast path. A float slipped into
    a tampered export still encodes to bytes whose hash cannot match; a value that cannot
    be encoded at all (an integer beyond 64 bits) raises NotCanonical."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise NotCanonical(str(exc)) from None


def decimal(value: float | int | Decimal | None) -> str | None:
    """A fractional quantity as the decimal string a record holds: the shortest digits
    that round-trip, in plain notation (``1e-07`` is written ``0.0000001``)."""
    if value is None:
        return None
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return format(exact, "f")


def _check(value: Any) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:  # beyond what an IEEE double (JavaScript) reads exactly
            raise NotCanonical(f"integer {value} is outside ±(2^53 - 1)")
        return
    if isinstance(value, float):
        raise NotCanonical(f"float {value!r}: write integers in small units or decimal strings")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise NotCanonical(f"key {key!r}: keys must be ASCII strings")
            _check(item)
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item)
        return
    raise NotCanonical(f"{type(value).__name__} is not JSON")
