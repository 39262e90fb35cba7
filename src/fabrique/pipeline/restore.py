"""Put the original values back into an answer to a pseudonymized request.

Used by route for JSON answers and by relay for streams. In a stream a placeholder can be
cut anywhere between chunks: each choice's text (and each tool call's arguments, which are
JSON text) goes through its own ``StreamRestorer``, which holds back only what could still
become a placeholder, and gives it back when the choice finishes.
"""

from __future__ import annotations

from typing import Any

from fabrique.policy.vault import StreamRestorer, Vault

# Text an assistant message or delta can carry (reasoning engines add their own field).
_TEXT = ("content", "reasoning_content", "reasoning", "refusal")


def restore_answer(data: dict[str, Any], vault: Vault) -> None:
    """Restore a chat or text completion in place."""
    for choice in _dicts(data.get("choices")):
        if isinstance(choice.get("text"), str):
            choice["text"] = vault.restore(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            for key in _TEXT:
                if isinstance(message.get(key), str):
                    message[key] = vault.restore(message[key])
            for function in _functions(message):
                function["arguments"] = vault.restore_json(function["arguments"])


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _functions(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The function objects with string arguments: tool calls, and the legacy function_call."""
    functions = [c.get("function") for c in _dicts(message.get("tool_calls"))]
    functions.append(message.get("function_call"))
    return [f for f in functions if isinstance(f, dict) and isinstance(f.get("arguments"), str)]


class StreamRestore:
    """Restores a stream chunk by chunk; one restorer per choice and field."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.text: dict[tuple[int, str], StreamRestorer] = {}
        self.args: dict[tuple[int, int], StreamRestorer] = {}
        self.last: dict[str, Any] = {}  # id, object, created of the stream, for a tail chunk

    def chunk(self, chunk: dict[str, Any]) -> None:
        """Restore one chunk in place."""
        self.last = {k: chunk[k] for k in ("id", "object", "created") if k in chunk}
        for choice in _dicts(chunk.get("choices")):
            index = choice.get("index", 0)
            if isinstance(choice.get("text"), str):
                choice["text"] = self._text(index, "text").feed(choice["text"])
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for key in _TEXT:
                    if isinstance(delta.get(key), str):
                        delta[key] = self._text(index, key).feed(delta[key])
                for call in _dicts(delta.get("tool_calls")):
                    function = call.get("function")
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        restorer = self._args(index, call.get("index", 0))
                        function["arguments"] = restorer.feed(function["arguments"])
            if choice.get("finish_reason") is not None:
                self._finish(index, choice)

    def tail(self) -> dict[str, Any] | None:
        """A last chunk with whatever is still held back (a stream whose choices never said
        finish_reason), or None."""
        choices: dict[int, dict[str, Any]] = {}
        for index in sorted({i for i, _ in self.text} | {i for i, _ in self.args}):
            choice: dict[str, Any] = {"index": index, "finish_reason": None}
            self._finish(index, choice)
            if "delta" in choice or "text" in choice:
                choices[index] = choice
        if not choices:
            return None
        return {**self.last, "choices": list(choices.values())}

    def _text(self, index: int, key: str) -> StreamRestorer:
        restorer = self.text.get((index, key))
        if restorer is None:
            restorer = self.text[index, key] = StreamRestorer(self.vault)
        return restorer

    def _args(self, index: int, call: int) -> StreamRestorer:
        restorer = self.args.get((index, call))
        if restorer is None:
            restorer = self.args[index, call] = StreamRestorer(self.vault, json_string=True)
        return restorer

    def _finish(self, index: int, choice: dict[str, Any]) -> None:
        """Flush a choice's held-back text into its last chunk."""
        for (i, key), restorer in list(self.text.items()):
            if i != index:
                continue
            del self.text[i, key]
            rest = restorer.flush()
            if not rest:
                continue
            if key == "text":
                choice["text"] = (choice.get("text") or "") + rest
            else:
                delta = choice.setdefault("delta", {})
                delta[key] = (delta.get(key) or "") + rest
        for (i, call), restorer in list(self.args.items()):
            if i != index:
                continue
            del self.args[i, call]
            rest = restorer.flush()
            if rest:
                self._append_args(choice.setdefault("delta", {}), call, rest)

    @staticmethod
    def _append_args(delta: dict[str, Any], call: int, rest: str) -> None:
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            calls = delta["tool_calls"] = []
        for entry in _dicts(calls):
            if entry.get("index", 0) == call and isinstance(entry.get("function"), dict):
                function = entry["function"]
                function["arguments"] = (function.get("arguments") or "") + rest
                return
        calls.append({"index": call, "function": {"arguments": rest}})
