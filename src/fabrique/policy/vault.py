"""Typed placeholders for personal values sent beyond the allowed boundary, and their restoration.

A `Vault` gives each (type, value) a placeholder «TYPE_N» (numbered per type, the same value always
the same placeholder) and puts the originals back into the answer. Restoration reads:

    «KEY»                  exact, guillemets included
    KEY                    bare, as a whole word: models often drop the guillemets
    JSON-string mode also  \\u00abKEY\\u00bb (any mix with « »), and KEY right after an escape such
                           as \\n; escapes are read as tokens, so an escaped backslash is never
                           taken for the start of \\u00ab

and only keys of the vault are restored. `avoid` keeps a new key from being one that already occurs
in the input, so a user's own «EMAIL_1» survives the round trip.

Values are kept exact, not normalized: each spelling of an IBAN ("FR76 3000 …", "FR763000…") is
restored as it was written, which a normalized key could not do.

The matching regexes are static (any KEY-shaped word, then a dict lookup), so nothing is rebuilt as
the vault grows. `StreamRestorer` runs the same scanner over deltas, stopping at the first suffix
the vault could still complete; that suffix is at most the longest key plus its delimiters.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from fabrique.policy.recognizers import Entity

_KEY = r"[A-Z][A-Z0-9_]*"
_OPEN_J = r"(?:«|\\u00[aA][bB])"
_CLOSE_J = r"(?:»|\\u00[bB][bB])"

# Complete forms. Group names tell the replacement what matched: g (delimited), b (bare),
# e (bare after an escape, kept in esc), esc alone (an escape token, left as is).
_G = rf"«(?P<g>{_KEY})»"
_GJ = rf"{_OPEN_J}(?P<g>{_KEY}){_CLOSE_J}"
_E = rf'(?P<esc>\\[nrtbf"/\\])(?:(?P<e>{_KEY})(?!\w))?'
_B = rf"(?<!\w)(?P<b>{_KEY})(?!\w)"

# Suffixes that more text could still turn into a match, tried first; the vault then says
# whether its keys could complete them (pr must be a whole key, the others a key prefix).
_PG = r"«(?P<pg>[A-Z0-9_]*)\Z"
_PGJ = rf"{_OPEN_J}(?P<pg>[A-Z0-9_]*)\Z"
_PR = rf"{_OPEN_J}(?P<pr>{_KEY})\\(?:u(?:0(?:0[bB]?)?)?)?\Z"
_PU = r"\\u(?:0(?:0[aA]?)?)?\Z"
_PE = r'\\(?:[nrtbf"/\\](?P<pe>[A-Z0-9_]*))?\Z'
_PB = rf"(?<!\w)(?P<pb>{_KEY})\Z"

_MAIN = {False: re.compile(f"{_G}|{_B}"), True: re.compile(f"{_GJ}|{_E}|{_B}")}
_STREAM = {False: re.compile(f"{_PG}|{_PB}|{_G}|{_B}"),
           True: re.compile(f"{_PR}|{_PGJ}|{_PU}|{_PE}|{_PB}|{_GJ}|{_E}|{_B}")}
_PARTIAL = frozenset({None, "pg", "pr", "pe", "pb"})  # None: a bare "\" or "\u00a", always open

# A key can only occur inside a run of [A-Z0-9_] that has "_<digit>" in it.
_RUN = re.compile(r"(?<![A-Z0-9_])[A-Z0-9_]*?_[0-9][A-Z0-9_]*")
_NUMBER = re.compile(r"_([1-9][0-9]*)")
_NOT_LABEL = re.compile(r"[^A-Z0-9]+")
_MAX_DIGITS = 12  # no vault holds 10**12 values


def _label(entity_type: str) -> str:
    """The type as it appears in a key: UPPER_SNAKE ASCII, starting with a letter."""
    label = _NOT_LABEL.sub("_", entity_type.upper()).strip("_")
    return label if re.match("[A-Z]", label) else f"PII_{label}".rstrip("_")


def _checked_spans(text: str, entities: Sequence[Entity]) -> list[tuple[int, int, str]]:
    """Non-empty spans in order; checked before the vault changes, so a bad list leaves it as it was."""
    spans = sorted((e.start, e.end, e.type) for e in entities if e.end != e.start)
    ends = [0] + [end for _, end, _ in spans]
    if any(start < end_before or end < start or end > len(text)
           for (start, end, _), end_before in zip(spans, ends, strict=False)):
        raise ValueError("entities must be non-overlapping spans inside the text")
    return spans


def _json_escape(value: str) -> str:
    try:
        return orjson.dumps(value).decode()[1:-1]
    except orjson.JSONEncodeError:  # lone surrogates: json escapes them as \udxxx
        return json.dumps(value)[1:-1]


class Vault:
    """Placeholders for one request (or one session): the same value always gets the same placeholder."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], str] = {}  # (type, value) -> key
        self._values: dict[str, str] = {}  # key -> value
        self._escaped: dict[str, str] = {}  # key -> value escaped for a JSON string
        self._prefixes: set[str] = set()  # every prefix of every key, "" included
        self._last: dict[str, int] = {}  # label -> last number given
        self._counts: dict[str, int] = {}
        self._avoided: dict[str, set[str]] = {}  # number prefix -> runs of input text containing it

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values: this is personal data
        counts = ", ".join(f"{t}={n}" for t, n in sorted(self._counts.items()))
        return f"Vault({counts})"

    def counts(self) -> dict[str, int]:
        """Distinct values by entity type."""
        return dict(self._counts)

    def avoid(self, text: str) -> None:
        """Never give a key that occurs anywhere in `text`. Call on every text of the request
        before pseudonymizing any, so a placeholder made for one cannot collide with another."""
        for run in _RUN.findall(text):
            for number in _NUMBER.findall(run):
                for i in range(1, min(len(number), _MAX_DIGITS) + 1):
                    self._avoided.setdefault(number[:i], set()).add(run)

    def placeholder(self, entity_type: str, value: str) -> str:
        key = self._keys.get((entity_type, value)) or self._add(entity_type, value)
        return f"«{key}»"

    def pseudonymize(self, text: str, entities: Sequence[Entity]) -> str:
        """Replace each entity's span by its placeholder; empty spans are left alone."""
        spans = _checked_spans(text, entities)
        self.avoid(text)  # the round trip must hold even if the caller forgot
        out: list[str] = []
        done = 0
        for start, end, entity_type in spans:
            out += (text[done:start], self.placeholder(entity_type, text[start:end]))
            done = end
        out.append(text[done:])
        return "".join(out)

    def restore(self, text: str) -> str:
        return self._scan(text, 0, json_string=False, final=True)[0] if self._values else text

    def restore_json(self, text: str) -> str:
        """Restore inside JSON text (tool-call arguments): values are inserted JSON-escaped."""
        return self._scan(text, 0, json_string=True, final=True)[0] if self._values else text

    def _add(self, entity_type: str, value: str) -> str:
        label = _label(entity_type)
        number = self._last.get(label, 0) + 1
        while self._is_avoided(f"{label}_{number}", number):
            number += 1
        self._last[label] = number
        key = f"{label}_{number}"
        self._keys[entity_type, value] = key
        self._values[key] = value
        self._counts[entity_type] = self._counts.get(entity_type, 0) + 1
        self._prefixes.update(key[:i] for i in range(len(key) + 1))
        return key

    def _is_avoided(self, key: str, number: int) -> bool:
        return any(key in run for run in self._avoided.get(str(number), ()))

    def _scan(self, s: str, pos: int, *, json_string: bool, final: bool) -> tuple[str, int]:
        """Restore s[pos:] (s[:pos] is context for look-behind). Unless final, stop at the first
        suffix the vault could still complete; return the text and where it stopped."""
        pattern, main = (_MAIN if final else _STREAM)[json_string], _MAIN[json_string]
        out: list[str] = []
        done = pos
        while (m := pattern.search(s, pos)) is not None:
            at = m.start()
            if m.lastgroup in _PARTIAL:
                if self._could_complete(m):
                    out.append(s[done:at])
                    return "".join(out), at
                # Not completable: the complete forms decide here, as they will on the whole text.
                if (complete := main.match(s, at)) is None:
                    pos = at + 1
                    continue
                m = complete
            out += (s[done:at], self._replacement(m, json_string))
            done = pos = m.end()
        out.append(s[done:])
        return "".join(out), len(s)

    def _could_complete(self, m: re.Match[str]) -> bool:
        group = m.lastgroup
        if group is None:
            return bool(self._values)
        return m[group] in (self._values if group == "pr" else self._prefixes)

    def _replacement(self, m: re.Match[str], json_string: bool) -> str:
        group = m.lastgroup
        key = m[group] if group is not None and group != "esc" else None
        if key is None or key not in self._values:
            return m[0]
        value = self._json_value(key) if json_string else self._values[key]
        return m["esc"] + value if group == "e" else value

    def _json_value(self, key: str) -> str:
        if (escaped := self._escaped.get(key)) is None:
            escaped = self._escaped[key] = _json_escape(self._values[key])
        return escaped


class StreamRestorer:
    """Restore a streamed answer delta by delta: the joined output equals restoring the whole text,
    however it was split. Only a suffix that could still become a placeholder is held back."""

    def __init__(self, vault: Vault, *, json_string: bool = False) -> None:
        self._vault = vault
        self._json = json_string
        self._pending = ""
        self._before = ""  # the last character given out: context for the whole-word test

    def feed(self, delta: str) -> str:
        if not self._vault:
            return delta
        text = self._before + self._pending + delta
        out, cut = self._vault._scan(text, len(self._before), json_string=self._json, final=False)
        if cut > len(self._before):
            self._before = text[cut - 1]
        self._pending = text[cut:]
        return out

    def flush(self) -> str:
        """At the end of the stream: what was held back, restored if complete."""
        text, start = self._before + self._pending, len(self._before)
        self._pending = self._before = ""
        return self._vault._scan(text, start, json_string=self._json, final=True)[0]


class VaultStore:
    """Session vaults kept in memory, bounded (max entries, LRU) with a time-to-live; keyed by
    (tenant, session id). The time-to-live runs from the last use."""

    def __init__(self, max_sessions: int = 10_000, ttl_s: float = 3600.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_sessions < 1 or ttl_s <= 0:
            raise ValueError("max_sessions must be at least 1 and ttl_s positive")
        self._max = max_sessions
        self._ttl = ttl_s
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[Vault, float]] = OrderedDict()  # LRU first

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tenant: str, session: str) -> Vault:
        """The session's vault, or a new one if it never existed, expired or was evicted."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.pop((tenant, session), None)
        vault = entry[0] if entry is not None else Vault()
        self._entries[tenant, session] = (vault, now)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return vault

    def _expire(self, now: float) -> None:
        # Entries are in order of last use, so the expired ones are all at the front.
        while self._entries:
            key, (_, used) = next(iter(self._entries.items()))
            if now - used < self._ttl:
                return
            del self._entries[key]
