"""pipeline.finish: the closing stages run once per request, whatever its outcome, and
before the answer is acknowledged complete."""

from __future__ import annotations

import orjson
import pytest

from fabrique.errors import LedgerUnavailable
from fabrique.pipeline import finishers as finish_module

from ..conftest import FAST

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@pytest.fixture
def seen(monkeypatch):
    """Each finished request as (status, outcome, tokens known); a finisher that fails on demand."""
    calls: list[tuple[int, str, int | None]] = []
    fail = {"on": False}

    async def recorder(ctx):
        calls.append((ctx.status, ctx.outcome, (ctx.usage or {}).get("total_tokens")))
        if fail["on"]:
            raise LedgerUnavailable("The audit ledger cannot be written.")

    monkeypatch.setattr(finish_module, "FINISHERS", (recorder,))
    return calls, fail


async def test_every_outcome_is_finished_once(gateway_factory, seen):
    calls, _ = seen
    client, gw = await gateway_factory()
    _, key = await gw.keys.create_key("acme")
    auth = {"Authorization": f"Bearer {key}"}

    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    assert (await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"},
                              headers=auth)).status == 404
    assert (await client.post("/v1/chat/completions", json=CHAT)).status == 401  # no tenant yet
    assert calls[0][:2] == (200, "ok") and calls[0][2]
    assert calls[1][:2] == (200, "done") and calls[1][2]  # usage known before [DONE]
    assert calls[2][:2] == (404, "model_not_found")
    assert len(calls) == 3


async def test_a_failing_finisher_turns_the_answer_into_its_error(gateway_factory, seen):
    _, fail = seen
    fail["on"] = True
    client, gw = await gateway_factory()
    _, key = await gw.keys.create_key("acme")
    auth = {"Authorization": f"Bearer {key}"}

    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "ledger_unavailable"

    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    body = await resp.read()
    assert b"[DONE]" not in body
    last = body.strip().split(b"\n\n")[-1]
    assert orjson.loads(last.removeprefix(b"data: "))["error"]["code"] == "ledger_unavailable"


async def test_a_stream_cut_midway_is_finished_with_its_error(gateway_factory, seen):
    calls, _ = seen
    client, gw = await gateway_factory(
        providers=[{"name": "sim", "type": "simulated", "profile": FAST,
                    "faults": {"disconnect_rate": 1.0, "seed": 1}}])
    _, key = await gw.keys.create_key("acme")
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 50},
                             headers={"Authorization": f"Bearer {key}"})
    assert b"[DONE]" not in await resp.read()
    assert len(calls) == 1 and calls[0][0] == 200 and calls[0][1] not in ("ok", "done")
