"""Turn an upstream's error body into a message safe to show a client.

Engines put stack traces, file paths and library internals in their errors; the
client gets the upstream's own short explanation when it has one, and nothing else.
"""

from __future__ import annotations

import re

import orjson

_UNSAFE = re.compile(
    r"Traceback|File \"|\bline \d+\b|(?:^|[\s'\"(=])(?:/[\w.@+-]+){2,}|[A-Za-z]:\\\\|"
    r"\b(?:Exception|Error) at 0x|<[a-z_.]+ object at 0x", re.IGNORECASE)
_MAX = 400
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,64}$")


def upstream_error(body: bytes | None) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) of an upstream's error, each None unless safe to show."""
    message = upstream_message(body)
    if message is None:
        return None, None, None
    error = orjson.loads(body or b"{}")
    error = error.get("error", error) if isinstance(error, dict) else {}
    if not isinstance(error, dict):
        return message, None, None
    code, param = error.get("code"), error.get("param")
    return (message, code if isinstance(code, str) and _SAFE_CODE.match(code) else None,
            param if isinstance(param, str) and _SAFE_CODE.match(param) else None)


def upstream_message(body: bytes | None) -> str | None:
    """The upstream's error message if it is short and reveals no internals, else None."""
    if not body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    message = None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
        elif isinstance(error, str):
            message = error
        if message is None and isinstance(data.get("detail"), str):
            message = data["detail"]
    if not isinstance(message, str) or not message.strip():
        return None
    message = message.strip()
    if len(message) > _MAX or _UNSAFE.search(message):
        return None
    return message
