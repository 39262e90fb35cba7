"""Usage per request: tokens from upstream (streams via include_usage), an estimate marked
as such otherwise, timings, and streams cut midway billed for what they generated."""

from __future__ import annotations

import orjson

from .helpers import CHAT, auth, rows, sim


async def test_stream_and_plain_answers_record_the_same_usage(gateway_factory):
    client, gw = await gateway_factory()
    headers = await auth(gw)
    plain = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    body = await plain.json()
    streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                 headers=headers)
    events = (await streamed.read()).split(b"\n\n")
    assert b"data: [DONE]" in events
    # Fabrique asked for the usage chunk, not the client: the client does not see it.
    assert not any(b'"usage"' in e for e in events)
    plain_row, stream_row = sorted(await rows(gw, 2), key=lambda r: r["stream"])
    for key in ("input_tokens", "output_tokens", "estimated", "model", "deployment", "tenant"):
        assert plain_row[key] == stream_row[key], key
    assert plain_row["input_tokens"] == body["usage"]["prompt_tokens"]
    assert plain_row["output_tokens"] == body["usage"]["completion_tokens"] == 12
    assert plain_row["estimated"] is False
    assert (plain_row["outcome"], stream_row["outcome"]) == ("ok", "done")
    assert stream_row["ttft_ms"] is not None and plain_row["ttft_ms"] is None
    assert stream_row["tpot_ms"] is not None and stream_row["queue_ms"] is not None
    assert stream_row["latency_ms"] >= stream_row["ttft_ms"]


async def test_the_client_asking_for_usage_gets_fabriques_figures_in_it(gateway_factory):
    client, gw = await gateway_factory()
    resp = await client.post("/v1/chat/completions", headers=await auth(gw), json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    chunks = [orjson.loads(e[6:]) for e in (await resp.read()).split(b"\n\n")
              if e.startswith(b"data: {")]
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 12 and "cost_eur" in usage
    assert chunks[-1]["choices"] == []


async def test_an_upstream_without_usage_is_estimated_and_says_so(gateway_factory, sim_server):
    url = await sim_server()
    client, gw = await gateway_factory(providers=[
        {"name": "up", "type": "openai_compatible", "base_url": url, "stream_usage": False,
         "jurisdiction": "FR"}],
        models=[{"name": "chat", "deployments": [{"provider": "up", "model": "m"}]}])
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                             headers=await auth(gw))
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    assert resp.headers.get("x-fabrique-usage-estimated") is None  # streams: headers went first
    (row,) = await rows(gw, 1)
    assert row["estimated"] is True
    assert row["output_tokens"] == 12  # one token per content chunk
    assert row["input_tokens"] > 0


async def test_a_stream_cut_by_the_upstream_is_billed_for_what_it_generated(gateway_factory):
    client, gw = await gateway_factory(providers=[
        {**sim(), "faults": {"disconnect_rate": 1.0, "seed": 1}}])
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 50},
                             headers=await auth(gw))
    assert b"[DONE]" not in await resp.read()
    (row,) = await rows(gw, 1)
    assert row["outcome"] == "upstream_error"
    assert row["estimated"] is True
    assert row["output_tokens"] == 3  # the simulator cuts after three chunks: never 0, never 50


async def test_a_cancelled_stream_is_billed_for_what_it_generated(gateway_factory):
    client, gw = await gateway_factory(providers=[sim(decode_ms_per_token=20.0)])
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 200},
                             headers=await auth(gw))
    seen = 0
    async for line in resp.content:
        seen += line.startswith(b"data: {")
        if seen == 5:
            break
    resp.close()  # the client goes away mid-stream
    (row,) = await rows(gw, 1)
    # aiohttp cancels the handler in tests (handler_cancellation); run_app lets it see the
    # closed connection instead: both are finished.
    assert row["outcome"] in ("client_gone", "cancelled")
    assert seen <= row["output_tokens"] < 200
    assert row["estimated"] is True


async def test_refused_requests_are_recorded_with_nothing_billed(gateway_factory):
    client, gw = await gateway_factory()
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"},
                             headers=await auth(gw))
    assert resp.status == 404
    (row,) = await rows(gw, 1)
    assert (row["status"], row["outcome"], row["input_tokens"], row["output_tokens"],
            row["cost_eur"]) == (404, "model_not_found", 0, 0, 0.0)


async def test_a_metering_bug_does_not_cost_the_answer(gateway_factory, monkeypatch, caplog):
    client, gw = await gateway_factory(metering={"budgets": [
        {"scope": "tenant", "period": "daily", "tokens": 10_000}]})

    def broken(*_):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("fabrique.metering.measure", broken)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=await auth(gw))
    assert resp.status == 200 and (await resp.json())["choices"]
    assert "metering failed" in caplog.text
    (row,) = await rows(gw, 1)
    assert row["estimated"] is True and row["input_tokens"] > 0  # charged its estimate
