"""Every place text enters a request, found once for classification and again, in the same
order, for pseudonymization.

Every string in the body is scanned — message content, names, tool definitions and their
schemas, tool-call arguments, ``stop``, ``user``, ``metadata``, vendor extensions — except
under keys whose values are identifiers or enumerations (``model``, ``role``, ``type`` …).
A string that holds a JSON object or array (tool-call arguments, tool results) is scanned
decoded, so that ``\\u00e9`` escapes do not hide a name, and written back re-encoded.
Content Fabrique cannot read (images, audio, files, prompts given as token ids, nesting
too deep to follow) is reported as such, so that the policy can count it as personal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

# Keys whose string values are identifiers, enumerations or binary data, never prose.
_SKIP = frozenset({
    "model", "role", "type", "id", "tool_call_id", "url", "data", "detail", "format",
    "encoding_format", "voice", "modalities", "reasoning_effort", "service_tier", "logit_bias",
})
# Content parts that carry text; any other part (image, audio, file…) cannot be read.
_TEXT_PARTS = frozenset({"text", "input_text", "output_text", "refusal"})
# Fields whose lists hold prompts: a list of integers there is token ids.
_PROMPTS = frozenset({"prompt", "input"})
_MAX_DEPTH = 256  # read_json refuses deeper bodies: orjson cannot write them back


@dataclass(slots=True)
class Slot:
    """One string in the body: ``parent[key]``."""

    parent: Any
    key: Any

    @property
    def text(self) -> str:
        value: str = self.parent[self.key]
        return value


@dataclass(slots=True)
class Reencode:
    """A JSON string walked decoded: after its slots are rewritten, ``parent[key]`` becomes
    ``value`` encoded again."""

    parent: Any
    key: Any
    value: Any

    def write(self) -> None:
        self.parent[self.key] = orjson.dumps(self.value).decode()


@dataclass(slots=True)
class Uninspectable:
    """Content that may hold personal data Fabrique cannot see (an image, token ids…)."""

    where: str
    what: str


Item = Slot | Reencode | Uninspectable


def walk(body: dict[str, Any], endpoint: str = "") -> Iterator[Item]:
    """Every text slot and uninspectable part of a request body, in a fixed order."""
    yield from _value(body, "", 0)


def _value(node: Any, where: str, depth: int) -> Iterator[Item]:
    if depth > _MAX_DEPTH:
        yield Uninspectable(where or "body", "nesting too deep to follow")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in _SKIP:
                yield from _member(node, key, value, _join(where, key), depth)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _member(node, i, item, f"{where}[{i}]", depth)


def _member(parent: Any, key: Any, value: Any, where: str, depth: int) -> Iterator[Item]:
    if isinstance(value, str):
        yield from _string(parent, key, value, where, depth)
    elif isinstance(value, list):
        if key in _PROMPTS and value and all(isinstance(v, int | list) for v in value):
            yield Uninspectable(where, "token ids")
        elif key == "content":
            yield from _parts(value, where, depth + 1)
        else:
            yield from _value(value, where, depth + 1)
    elif isinstance(value, dict):
        yield from _value(value, where, depth + 1)


def _parts(parts: list[Any], where: str, depth: int) -> Iterator[Item]:
    """A message's content parts: text parts are read, any other kind cannot be."""
    for j, part in enumerate(parts):
        at = f"{where}[{j}]"
        kind = part.get("type", "text") if isinstance(part, dict) else "text"
        # A type that is not a string ({"type": []}) cannot be a text part: unreadable, not a 500.
        if not isinstance(kind, str) or kind not in _TEXT_PARTS:
            yield Uninspectable(at, str(kind))
        else:
            yield from _member(parts, j, part, at, depth)


def _string(parent: Any, key: Any, text: str, where: str, depth: int) -> Iterator[Item]:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[") and len(stripped) > 1:
        try:
            decoded = orjson.loads(text)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict | list):
            yield from _value(decoded, where, depth + 1)
            yield Reencode(parent, key, decoded)
            return
    yield Slot(parent, key)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
