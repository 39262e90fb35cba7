"""The simulated engine: deterministic, OpenAI-shaped, profile-timed, faulty on request."""

from __future__ import annotations

import orjson
import pytest

from fabrique.config import SimFaults, SimProfile
from fabrique.simulator import SimEngine

CHAT = {"model": "sim-chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
FAST = SimProfile(decode_ms_per_token=0, base_ttft_ms=0, prefill_tokens_per_s=1e9)


async def collect(answer) -> list[dict]:
    return [orjson.loads(p) async for p in answer.stream if p != b"[DONE]"]


async def test_deterministic_text_and_usage():
    engine = SimEngine(FAST)
    a = (await engine.respond("chat/completions", CHAT)).body
    b = (await engine.respond("chat/completions", CHAT)).body
    assert a["choices"] == b["choices"]
    assert a["usage"]["completion_tokens"] == 4
    other = (await engine.respond("chat/completions", {**CHAT, "seed": 9})).body
    assert other["choices"][0]["message"]["content"] != a["choices"][0]["message"]["content"]


async def test_stream_matches_whole_answer_and_usage_when_asked():
    engine = SimEngine(FAST)
    whole = (await engine.respond("chat/completions", CHAT)).body
    chunks = await collect(await engine.respond(
        "chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}}))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == whole["usage"]
    no_usage = await collect(await engine.respond("chat/completions", {**CHAT, "stream": True}))
    assert all("usage" not in c for c in no_usage)


def test_timing_follows_the_profile():
    from fabrique.simulator.engine import _Plan

    profile = SimProfile(base_ttft_ms=10, prefill_tokens_per_s=1000, concurrency_slowdown=0.1)
    engine = SimEngine(profile)

    def plan(prompt: str) -> _Plan:
        return _Plan(engine, "chat/completions", CHAT, "m", prompt, len(prompt) // 4, 4,
                     SimFaults(), False)

    assert plan("x" * 4000).ttft > plan("x" * 40).ttft  # longer prompts, later first token
    assert plan("x" * 4000).ttft == pytest.approx(0.010 + 1000 / 1000)
    engine.active = 1
    single = plan("x")._decode_interval()
    engine.active = 11
    assert plan("x")._decode_interval() == pytest.approx(single * 2.0)


@pytest.mark.parametrize(("faults", "status"), [({"error_rate": 1.0}, 500),
                                                ({"rate_limit_rate": 1.0}, 429)])
async def test_faults_before_first_byte(faults, status):
    answer = await SimEngine(FAST, SimFaults(**faults)).respond("chat/completions", CHAT)
    assert answer.status == status and set(answer.body["error"]) >= {"message", "code"}


async def test_per_request_fault_override():
    engine = SimEngine(FAST)
    answer = await engine.respond("chat/completions", {**CHAT, "sim_faults": {"error_rate": 1}})
    assert answer.status == 500


async def test_fault_rate_is_a_probability():
    engine = SimEngine(FAST, SimFaults(error_rate=0.3, seed=5))
    statuses = [(await engine.respond("chat/completions", CHAT)).status for _ in range(1000)]
    assert 0.25 < statuses.count(500) / 1000 < 0.35


async def test_unknown_model_is_404_when_models_are_listed():
    engine = SimEngine(FAST, models=["sim-chat"])
    assert (await engine.respond("chat/completions", {**CHAT, "model": "x"})).status == 404


async def test_embeddings_are_unit_vectors():
    body = (await SimEngine(FAST).respond("embeddings", {"model": "e", "input": ["a", "b"],
                                                         "dimensions": 16})).body
    vec = body["data"][0]["embedding"]
    assert len(vec) == 16 and abs(sum(v * v for v in vec) - 1) < 1e-3
