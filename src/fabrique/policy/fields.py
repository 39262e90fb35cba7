"""Every place text enters a request, found once for classification and again, in the same
order, for pseudonymization.

Scanned: message content (a string or text parts), message names, tool-call and function-call
arguments, tool and function definitions (descriptions, titles, enum values and defaults of
their JSON schemas), response_format schemas, predicted outputs, ``user`` and ``metadata``,
completions' ``prompt`` and ``suffix``, embeddings' ``input``. Content Fabrique cannot read
(images, audio, files, prompts given as token ids) is reported as such, so that the policy
can count it as personal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Keys of a JSON schema whose string values are prose a developer wrote (and may have
# filled with an example customer's details).
_SCHEMA_TEXT = frozenset({"description", "title", "enum", "default", "examples", "const"})


@dataclass(slots=True)
class Slot:
    """One string in the body: ``parent[key]``. ``json`` marks JSON text (arguments)."""

    parent: Any
    key: Any
    json: bool = False

    @property
    def text(self) -> str:
        value: str = self.parent[self.key]
        return value


@dataclass(slots=True)
class Uninspectable:
    """Content that may hold personal data Fabrique cannot see (an image, token ids…)."""

    where: str
    what: str


def walk(body: dict[str, Any], endpoint: str) -> Iterator[Slot | Uninspectable]:
    """Every text slot and uninspectable part of a request body, in a fixed order."""
    if endpoint == "chat/completions":
        messages = body.get("messages")
        if isinstance(messages, list):
            for i, message in enumerate(messages):
                if isinstance(message, dict):
                    yield from _message(message, f"messages[{i}]")
        yield from _tools(body)
        prediction = body.get("prediction")
        if isinstance(prediction, dict):
            yield from _content(prediction, "content", "prediction.content")
        response_format = body.get("response_format")
        if isinstance(response_format, dict):
            yield from _schema_texts(response_format)
    elif endpoint == "completions":
        yield from _prompt(body, "prompt")
        if isinstance(body.get("suffix"), str):
            yield Slot(body, "suffix")
    elif endpoint == "embeddings":
        yield from _prompt(body, "input")
    if isinstance(body.get("user"), str):
        yield Slot(body, "user")
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        yield from (Slot(metadata, k) for k, v in metadata.items() if isinstance(v, str))


def _message(message: dict[str, Any], where: str) -> Iterator[Slot | Uninspectable]:
    yield from _content(message, "content", f"{where}.content")
    if isinstance(message.get("name"), str):
        yield Slot(message, "name")
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                yield Slot(function, "arguments", json=True)
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
        yield Slot(legacy, "arguments", json=True)


def _content(owner: dict[str, Any], key: str, where: str) -> Iterator[Slot | Uninspectable]:
    content = owner.get(key)
    if isinstance(content, str):
        yield Slot(owner, key)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, str):
                yield Slot(content, j)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    yield Slot(part, "text")
                elif isinstance(part.get("refusal"), str):
                    yield Slot(part, "refusal")
                else:
                    yield Uninspectable(f"{where}[{j}]", str(part.get("type") or "a non-text part"))


def _prompt(body: dict[str, Any], key: str) -> Iterator[Slot | Uninspectable]:
    value = body.get(key)
    if isinstance(value, str):
        yield Slot(body, key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield Slot(value, i)
            else:
                yield Uninspectable(f"{key}[{i}]", "token ids")
                return  # one token array is enough to say it, and they can be long lists


def _tools(body: dict[str, Any]) -> Iterator[Slot]:
    for key in ("tools", "functions"):
        tools = body.get(key)
        if isinstance(tools, list):
            for tool in tools:
                if isinstance(tool, dict):
                    yield from _schema_texts(tool)


def _schema_texts(node: Any, depth: int = 0) -> Iterator[Slot]:
    """Prose in a tool definition or JSON schema: descriptions, titles, enums, defaults."""
    if depth > 64:  # a body is at most 254 levels deep; schemas this deep are not prose
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _SCHEMA_TEXT:
                yield from _strings(node, key)
            if isinstance(value, dict | list):  # also a property that is named "description"
                yield from _schema_texts(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_texts(item, depth + 1)


def _strings(parent: Any, key: Any) -> Iterator[Slot]:
    value = parent[key]
    if isinstance(value, str):
        yield Slot(parent, key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield Slot(value, i)
