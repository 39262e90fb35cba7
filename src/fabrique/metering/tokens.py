"""Token counts when an upstream gives none: a documented estimate, always marked as such.

Input: one token per 4 characters of text (OpenAI's rule of thumb for English; French and
code run a little higher) plus 4 per chat message for the role and separators, as the
chat templates of Llama, Mistral and Qwen add. Output of a stream: one token per content
chunk, which is what vLLM, SGLang and llama.cpp send; for a whole answer, 4 characters a
token again. Counted on the request as received, so it is cheap and needs no tokenizer.
"""

from __future__ import annotations

from typing import Any

_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 4


def text_tokens(text: str) -> int:
    return (len(text) + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        return sum(len(part.get("text") or "") for part in content
                   if isinstance(part, dict) and isinstance(part.get("text"), str))
    return 0


def input_tokens(endpoint: str, body: dict[str, Any]) -> int:
    """Estimated prompt tokens of a request body."""
    if endpoint == "chat/completions":
        messages = body.get("messages") or []
        chars = sum(_content_chars(m.get("content")) for m in messages if isinstance(m, dict))
        return (chars + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN + _PER_MESSAGE * len(messages)
    value = body.get("prompt" if endpoint == "completions" else "input")
    if isinstance(value, str):
        return text_tokens(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return len(value)  # token ids
        return sum(text_tokens(v) if isinstance(v, str) else
                   len(v) if isinstance(v, list) else 0 for v in value)
    return 0


def max_output_tokens(body: dict[str, Any], default: int) -> int:
    """The most output a request may produce: its max_tokens (× n choices), else ``default``."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or default
    n = body.get("n") or 1
    return int(limit) * int(n)


def answer_tokens(answer: Any) -> int:
    """Estimated output tokens of a whole (non-streamed) answer."""
    if not isinstance(answer, dict):
        return 0
    chars = 0
    for choice in answer.get("choices") or []:
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            chars += _content_chars(message.get("content") if isinstance(message, dict) else None)
            chars += len(choice.get("text") or "") if isinstance(choice.get("text"), str) else 0
    return (chars + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN
