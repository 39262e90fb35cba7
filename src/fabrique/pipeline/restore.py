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
_LEGACY = -1  # the restorer of a legacy function_call's arguments, beside tool calls' 0, 1…


def json_content(body: dict[str, Any]) -> bool:
    """Whether the answer's content is JSON (response_format), so that values are restored
    escaped: an address with a line break must not break the client's JSON."""
    response_format = body.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in (
        "json_object", "json_schema")


def restore_answer(data: dict[str, Any], vault: Vault, as_json: bool = False) -> None:
    """Restore a chat or text completion in place; ``as_json``: the content is JSON text."""
    text = vault.restore_json if as_json else vault.restore
    for choice in _dicts(data.get("choices")):
        if isinstance(choice.get("text"), str):
            choice["text"] = text(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            for key in _TEXT:
                if isinstance(message.get(key), str):
                    message[key] = text(message[key]) if key == "content" else vault.restore(
                        message[key])
            audio = message.get("audio")
            if isinstance(audio, dict) and isinstance(audio.get("transcript"), str):
                audio["transcript"] = vault.restore(audio["transcript"])
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

    def __init__(self, vault: Vault, as_json: bool = False) -> None:
        self.vault = vault
        self.as_json = as_json  # the content is JSON text (response_format)
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
                audio = delta.get("audio")
                if isinstance(audio, dict) and isinstance(audio.get("transcript"), str):
                    audio["transcript"] = self._text(index, "transcript").feed(audio["transcript"])
                calls = [(c.get("index", position), c.get("function"))
                         for position, c in enumerate(_dicts(delta.get("tool_calls")))]
                calls.append((_LEGACY, delta.get("function_call")))
                for call, function in calls:
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        restorer = self._args(index, call)
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
            as_json = self.as_json and key in ("content", "text")
            restorer = self.text[index, key] = StreamRestorer(self.vault, json_string=as_json)
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
            elif key == "transcript":
                audio = choice.setdefault("delta", {}).setdefault("audio", {})
                audio["transcript"] = (audio.get("transcript") or "") + rest
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
        if call == _LEGACY:
            function = delta.get("function_call")
            if not isinstance(function, dict):
                function = delta["function_call"] = {}
            function["arguments"] = (function.get("arguments") or "") + rest
            return
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            calls = delta["tool_calls"] = []
        for entry in _dicts(calls):
            if entry.get("index", 0) == call and isinstance(entry.get("function"), dict):
                function = entry["function"]
                function["arguments"] = (function.get("arguments") or "") + rest
                return
        calls.append({"index": call, "function": {"arguments": rest}})
