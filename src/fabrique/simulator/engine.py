"""The simulated engine: OpenAI-shaped answers with profile-driven timing and faults."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from fabrique.config import SimFaults, SimProfile

_WORDS = (
    "simulated", "token", "stream", "from", "the", "fabrique", "engine", "with",
    "deterministic", "words", "for", "tests", "latency", "throughput", "sovereign", "europe",
    "factory", "model", "answer", "gateway", "request", "budget", "energy", "watt", "carbon",
    "ledger", "proof", "tenant", "policy", "route", "deployment", "chunk", "batch", "prefill",
    "decode", "cache",
)


# The longest prompt plus completion the simulated model takes, in tokens.
CONTEXT_WINDOW = 32768


class SimDisconnect(Exception):
    """The simulated engine drops the connection in the middle of a stream."""


@dataclass
class SimResponse:
    """One answer: a status with a JSON body, or a 200 stream of SSE data payloads."""

    status: int
    body: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, message: str, code: str, param: str | None = None,
           type_: str = "invalid_request_error") -> SimResponse:
    return SimResponse(status, {"error": {"message": message, "type": type_,
                                          "param": param, "code": code}})


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: about four characters a token, at least one."""
    return max(1, (len(text) + 3) // 4)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


class SimEngine:
    """Answers chat, completion and embedding requests like an inference server would."""

    def __init__(self, profile: SimProfile | None = None, faults: SimFaults | None = None,
                 models: list[str] | None = None) -> None:
        self.profile = profile or SimProfile()
        self.faults = faults or SimFaults()
        self.models = models
        self.active = 0  # sequences being decoded now
        self._dice = random.Random(self.faults.seed)

    # -- entry points ------------------------------------------------------------------

    async def respond(self, endpoint: str, body: Any) -> SimResponse:
        if not isinstance(body, dict):
            return _error(400, "The body must be a JSON object.", "invalid_json")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "'model' is required.", "missing_required_parameter", "model")
        if self.models is not None and model not in self.models:
            return _error(404, f"The model '{model}' does not exist.", "model_not_found", "model")
        faults = self._faults_for(body)
        dice = self._dice.random
        if faults.rate_limit_rate and dice() < faults.rate_limit_rate:
            return _error(429, "Simulated overload: too many requests.", "rate_limit_exceeded",
                          type_="rate_limit_error")
        if faults.error_rate and dice() < faults.error_rate:
            return _error(500, "Simulated engine failure.", "internal_error", type_="server_error")
        stall = faults.stall_rate and dice() < faults.stall_rate
        if endpoint == "embeddings":
            return await self._embeddings(body, model)
        if endpoint == "chat/completions":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return _error(400, "'messages' must be a non-empty array.", "invalid_value",
                              "messages")
            prompt = "\n".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
            prompt_tokens = sum(count_tokens(_text_of(m.get("content"))) + 4
                                for m in messages if isinstance(m, dict))
        elif endpoint == "completions":
            raw = body.get("prompt")
            prompt = raw if isinstance(raw, str) else " ".join(map(str, raw or []))
            if not prompt:
                return _error(400, "'prompt' is required.", "missing_required_parameter", "prompt")
            prompt_tokens = count_tokens(prompt)
        else:
            return _error(404, f"Unknown endpoint {endpoint}.", "not_found")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            return _error(400, "'max_tokens' must be a positive integer.", "invalid_value",
                          "max_tokens")
        if prompt_tokens + (max_tokens or 0) > CONTEXT_WINDOW:
            # As a real engine does; without it a huge max_tokens would build a huge answer.
            return _error(400, f"This model's maximum context length is {CONTEXT_WINDOW} tokens; "
                          f"you requested {prompt_tokens + (max_tokens or 0)} ({prompt_tokens} in "
                          f"the prompt, {max_tokens or 0} for the completion).",
                          "context_length_exceeded", "max_tokens")
        plan = _Plan(self, endpoint, body, model, prompt, prompt_tokens, max_tokens,
                     faults, bool(stall))
        if body.get("stream") is True:
            return SimResponse(200, stream=plan.stream())
        return SimResponse(200, await plan.whole())

    def _faults_for(self, body: dict[str, Any]) -> SimFaults:
        # A request may override the engine's faults: {"sim_faults": {"error_rate": 1}}.
        override = body.get("sim_faults")
        if isinstance(override, dict):
            try:
                return self.faults.model_copy(update=SimFaults(**override).model_dump(
                    exclude_unset=True))
            except (TypeError, ValueError):
                return self.faults
        return self.faults

    async def _embeddings(self, body: dict[str, Any], model: str) -> SimResponse:
        raw = body.get("input")
        inputs: list[Any]
        if isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            inputs = raw
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            inputs = [raw]  # a token array is one input
        elif isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
            inputs = raw
        else:
            return _error(400, "'input' must be a string, an array of strings or of token "
                          "arrays.", "invalid_value", "input")
        dim = body.get("dimensions") or self.profile.embedding_dim
        if not isinstance(dim, int) or not 1 <= dim <= 8192:
            return _error(400, "'dimensions' must be an integer from 1 to 8192.",
                          "invalid_value", "dimensions")
        data, tokens = [], 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            tokens += count_tokens(text) if isinstance(item, str) else len(item)
            data.append({"object": "embedding", "index": i, "embedding": _vector(text, dim)})
        await self._sleep(self.profile.base_ttft_ms / 1000
                          + tokens / self.profile.prefill_tokens_per_s)
        return SimResponse(200, {"object": "list", "data": data, "model": model,
                                 "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @staticmethod
    async def _sleep(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def slowdown(self) -> float:
        return 1.0 + self.profile.concurrency_slowdown * max(0, self.active - 1)


def _vector(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for ``text``."""
    out: list[float] = []
    counter = 0
    while len(out) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend(v / 2**31 for v in struct.unpack("<8i", digest))
        counter += 1
    out = out[:dim]
    norm = math.sqrt(sum(v * v for v in out)) or 1.0
    return [round(v / norm, 6) for v in out]


class _Plan:
    """The answer to one generation request, produced whole or as a stream."""

    def __init__(self, engine: SimEngine, endpoint: str, body: dict[str, Any], model: str,
                 prompt: str, prompt_tokens: int, max_tokens: int | None, faults: SimFaults,
                 stall: bool) -> None:
        self.engine, self.endpoint, self.body, self.model = engine, endpoint, body, model
        self.prompt_tokens, self.faults, self.stall = prompt_tokens, faults, stall
        profile = engine.profile
        self.limit = max_tokens if max_tokens is not None else profile.max_tokens_default
        n = body.get("n", 1)
        self.n = n if isinstance(n, int) and 1 <= n <= 16 else 1
        seed = body.get("seed")
        self.rng = random.Random(hashlib.sha256(f"{seed}|{model}|{prompt}".encode()).digest())
        self.created = int(time.time())
        kind = "chatcmpl" if endpoint == "chat/completions" else "cmpl"
        self.id = f"{kind}-sim{os.urandom(8).hex()}"  # unique, like a real engine's ids
        self.tool = self._tool_to_call()
        self.ttft = (profile.base_ttft_ms / 1000 + prompt_tokens / profile.prefill_tokens_per_s)

    def _tool_to_call(self) -> dict[str, Any] | None:
        tools = self.body.get("tools")
        choice = self.body.get("tool_choice")
        if not isinstance(tools, list) or not tools or self.endpoint != "chat/completions":
            return None
        functions = [t["function"] for t in tools if isinstance(t, dict)
                     and isinstance(t.get("function"), dict)
                     and isinstance(t["function"].get("name"), str)]
        if not functions:
            return None
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            wanted = choice["function"].get("name")
            return next((f for f in functions if f["name"] == wanted), None)
        return functions[0] if choice == "required" else None

    def _arguments(self) -> str:
        params = (self.tool or {}).get("parameters") or {}
        props = params.get("properties") if isinstance(params, dict) else None
        args: dict[str, Any] = {}
        for name, spec in (props if isinstance(props, dict) else {}).items():
            kind = spec.get("type") if isinstance(spec, dict) else None
            kind = kind if isinstance(kind, str) else None  # e.g. ["string", "null"]
            args[name] = {"integer": 1, "number": 1.5, "boolean": True, "array": [],
                          "object": {}}.get(kind, f"simulated {name}")  # type: ignore[arg-type]
        return orjson.dumps(args).decode()

    def _tokens(self) -> list[str]:
        words = ["[simulated]"] + [self.rng.choice(_WORDS) for _ in range(self.limit - 1)]
        return [w if i == 0 else " " + w for i, w in enumerate(words[: self.limit])]

    def _finish(self) -> str:
        if self.tool is not None:
            return "tool_calls"
        explicit = self.body.get("max_completion_tokens", self.body.get("max_tokens"))
        return "length" if explicit is not None else "stop"

    def _usage(self, completion_tokens: int) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens}

    async def _before_first(self) -> None:
        await self.engine._sleep(self.ttft * self.engine.slowdown())
        if self.stall:
            await self.engine._sleep(self.faults.stall_before_first_token_s)

    def _decode_interval(self) -> float:
        return self.engine.profile.decode_ms_per_token / 1000 * self.engine.slowdown()

    async def whole(self) -> dict[str, Any]:
        engine = self.engine
        engine.active += 1
        try:
            await self._before_first()
            tokens = self._tokens()
            if self.stall:
                await engine._sleep(self.faults.stall_after_first_token_s)
            await engine._sleep(self._decode_interval() * max(0, len(tokens) - 1) * self.n)
        finally:
            engine.active -= 1
        text = "".join(tokens)
        choices: list[dict[str, Any]] = []
        for i in range(self.n):
            if self.endpoint == "completions":
                choices.append({"index": i, "text": text, "logprobs": None,
                                "finish_reason": self._finish()})
                continue
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.tool is not None:
                message = {"role": "assistant", "content": None, "tool_calls": [{
                    "id": f"call_sim{i}", "type": "function",
                    "function": {"name": self.tool["name"], "arguments": self._arguments()}}]}
            choices.append({"index": i, "message": message, "logprobs": None,
                            "finish_reason": self._finish()})
        obj = "chat.completion" if self.endpoint == "chat/completions" else "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": "fabrique-simulator", "choices": choices,
                "usage": self._usage(len(tokens) * self.n)}

    def _chunk(self, index: int, delta: dict[str, Any] | str, finish: str | None) -> bytes:
        if self.endpoint == "completions":
            choice: dict[str, Any] = {"index": index, "text": delta, "logprobs": None,
                                      "finish_reason": finish}
            obj = "text_completion"
        else:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = "chat.completion.chunk"
        return orjson.dumps({"id": self.id, "object": obj, "created": self.created,
                             "model": self.model, "system_fingerprint": "fabrique-simulator",
                             "choices": [choice]})

    def _pieces(self) -> list[dict[str, Any] | str]:
        if self.endpoint == "completions":
            return list(self._tokens())
        if self.tool is not None:
            args = self._arguments()
            step = max(1, len(args) // max(1, min(self.limit, 8)))
            parts: list[dict[str, Any] | str] = [{"role": "assistant", "content": None,
                                                  "tool_calls": [{
                "index": 0, "id": "call_sim0", "type": "function",
                "function": {"name": self.tool["name"], "arguments": ""}}]}]
            for start in range(0, len(args), step):
                parts.append({"tool_calls": [{"index": 0, "function": {
                    "arguments": args[start:start + step]}}]})
            return parts
        tokens = self._tokens()
        first: dict[str, Any] = {"role": "assistant", "content": tokens[0]}
        return [first, *({"content": t} for t in tokens[1:])]

    async def stream(self) -> AsyncIterator[bytes]:
        engine = self.engine
        include_usage = (isinstance(self.body.get("stream_options"), dict)
                         and self.body["stream_options"].get("include_usage") is True)
        pieces = self._pieces()
        disconnect_at = (min(3, len(pieces) - 1) if self.faults.disconnect_rate
                         and engine._dice.random() < self.faults.disconnect_rate else None)
        engine.active += 1
        try:
            await self._before_first()
            for i, piece in enumerate(pieces):
                if i == disconnect_at:
                    raise SimDisconnect("simulated disconnect mid-stream")
                if i == 1 and self.stall:
                    await engine._sleep(self.faults.stall_after_first_token_s)
                elif i > 0:
                    await engine._sleep(self._decode_interval())
                for index in range(self.n):
                    yield self._chunk(index, piece, None)
            empty: dict[str, Any] | str = "" if self.endpoint == "completions" else {}
            for index in range(self.n):
                yield self._chunk(index, empty, self._finish())
        finally:
            engine.active -= 1
        if include_usage:
            yield orjson.dumps({"id": self.id, "object": "chat.completion.chunk"
                                if self.endpoint == "chat/completions" else "text_completion",
                                "created": self.created, "model": self.model, "choices": [],
                                "usage": self._usage(len(pieces) * self.n)})
        yield b"[DONE]"
