"""Stream relay: chunk by chunk, fields passed through, failures after the first byte."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


class ScriptedUpstream:
    """An OpenAI-like upstream whose stream the test drives step by step."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.release = asyncio.Event()
        self.mode = "gated"  # "gated", "no_done", "error_event", "json"
        self.peers: set[tuple] = set()  # one per upstream connection the gateway opened

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    @staticmethod
    def chunk(content: str, finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({
            "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "upstream-name",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}) + b"\n\n"

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.peers.add(request.transport.get_extra_info("peername"))
        body = await request.json()
        self.bodies.append(body)
        if not body.get("stream"):
            return web.json_response({
                "id": "c1", "object": "chat.completion", "created": 1, "model": "upstream-name",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(self.chunk("first"))
        if self.mode == "gated":
            await self.release.wait()  # the test opens this only after it saw "first"
        if self.mode == "burst_error":  # two events and a failure in one TCP write
            await resp.write(self.chunk(" second") + self.chunk(" third")
                             + b'data: {"error": {"message": "out of memory"}}\n\n')
            return resp
        if self.mode == "error_event":
            await resp.write(b'data: {"error": {"message": "engine crashed at /opt/x/y.py line 3"}}\n\n')
            return resp
        # Split one event across two writes, CRLF line endings: the relay must reassemble it.
        tail = self.chunk(" second", "stop").replace(b"\n", b"\r\n")
        await resp.write(tail[:17])
        await resp.write(tail[17:])
        if self.mode != "no_done":
            await resp.write(b"data: [DONE]\r\n\r\n")
        await asyncio.sleep(0.05)  # the body's end comes a moment after [DONE]
        return resp


@pytest.fixture
async def scripted(gateway_factory):
    upstream = ScriptedUpstream()
    server = TestServer(upstream.app())
    await server.start_server()
    client, gw = await gateway_factory(
        providers=[{"name": "up", "type": "openai_compatible",
                    "base_url": str(server.make_url("/v1"))}],
        models=[{"name": "chat", "deployments": [{"provider": "up", "model": "upstream-name"}]}])
    _, key = await gw.keys.create_key("acme")
    yield upstream, client, {"Authorization": f"Bearer {key}"}
    await server.close()


async def read_events(resp) -> list[bytes]:
    return [line[6:] for line in (await resp.read()).split(b"\n\n") if line.startswith(b"data: ")]


async def test_first_chunk_arrives_before_upstream_finishes(scripted):
    upstream, client, auth = scripted
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    assert resp.status == 200
    first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout=10)
    assert orjson.loads(first[6:])["choices"][0]["delta"]["content"] == "first"
    assert not upstream.release.is_set()  # the upstream is still holding the rest back
    upstream.release.set()
    rest = await read_events(resp)
    assert rest[-1] == b"[DONE]"
    assert orjson.loads(rest[0])["choices"][0]["delta"]["content"] == " second"
    assert orjson.loads(rest[0])["model"] == "chat"


async def test_unknown_fields_pass_through_untouched(scripted):
    upstream, client, auth = scripted
    extra = {
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto", "response_format": {"type": "json_object"}, "seed": 7,
        "logprobs": True, "top_logprobs": 2, "n": 1, "temperature": 0.2,
        "x_vendor_option": {"nested": [1, 2, {"deep": None}]},
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    resp = await client.post("/v1/chat/completions", json={**CHAT, **extra}, headers=auth)
    assert resp.status == 200
    sent = upstream.bodies[-1]
    assert sent.pop("model") == "upstream-name"  # the one field Fabrique maps
    assert sent == {**extra}
    assert (await resp.json())["model"] == "chat"


async def test_stream_options_are_kept_and_usage_requested(scripted):
    upstream, client, auth = scripted
    upstream.release.set()
    body = {**CHAT, "stream": True, "stream_options": {"include_obfuscation": False}}
    await (await client.post("/v1/chat/completions", json=body, headers=auth)).read()
    assert upstream.bodies[-1]["stream_options"] == {"include_obfuscation": False,
                                                     "include_usage": True}


async def test_stream_without_done_ends_in_error_event(scripted):
    upstream, client, auth = scripted
    upstream.mode = "no_done"
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    events = await read_events(resp)
    assert b"[DONE]" not in events
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_error"
    assert set(error) == {"message", "type", "param", "code"}


async def test_error_event_mid_stream_is_sanitized(scripted):
    upstream, client, auth = scripted
    upstream.mode = "error_event"
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    events = await read_events(resp)
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "first"
    assert b"[DONE]" not in events
    message = orjson.loads(events[-1])["error"]["message"]
    assert "/opt/x" not in message and "line 3" not in message


async def test_openai_sdk_raises_on_mid_stream_failure(sim_server, gateway_factory):
    url = await sim_server(disconnect_rate=1.0)
    client, gw = await gateway_factory(
        providers=[{"name": "up", "type": "openai_compatible", "base_url": url}],
        models=[{"name": "chat", "deployments": [{"provider": "up"}]}])
    _, key = await gw.keys.create_key("acme")
    async with AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], max_tokens=10, stream=True)
        got = []
        with pytest.raises(Exception, match="interrupted"):
            async for chunk in stream:
                got.append(chunk)
    assert got, "some chunks arrived before the failure"


async def test_stall_after_first_token_ends_with_timeout_event(gateway_factory):
    client, gw = await gateway_factory(
        providers=[{"name": "sim", "type": "simulated",
                    "profile": {"decode_ms_per_token": 0, "base_ttft_ms": 0},
                    "faults": {"stall_rate": 1.0, "stall_after_first_token_s": 30},
                    "timeouts": {"idle_s": 0.2}}],
        models=[{"name": "chat", "deployments": [{"provider": "sim"}]}])
    _, key = await gw.keys.create_key("acme")
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 5},
                             headers={"Authorization": f"Bearer {key}"})
    events = await asyncio.wait_for(read_events(resp), timeout=10)
    assert b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_timeout"


async def test_tool_calls_stream_intact(client, auth):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"iban": {"type": "string"}, "count": {"type": "integer"}}}}}]
    body = {**CHAT, "tools": tools, "tool_choice": "required", "stream": True}
    events = await read_events(await client.post("/v1/chat/completions", json=body, headers=auth))
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"]]
    arguments = "".join(tc[0]["function"].get("arguments", "") for tc in calls if tc)
    assert calls[0][0]["function"]["name"] == "lookup"
    assert orjson.loads(arguments) == {"iban": "simulated iban", "count": 1}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_tool_calls_non_stream(client, auth):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    body = {**CHAT, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "lookup"}}}
    message = (await (await client.post("/v1/chat/completions", json=body,
                                        headers=auth)).json())["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "lookup", "arguments": "{}"}


async def test_client_leaving_mid_stream_frees_the_deployment(gateway_factory):
    client, gw = await gateway_factory(
        providers=[{"name": "sim", "type": "simulated",
                    "profile": {"decode_ms_per_token": 20, "base_ttft_ms": 0}}],
        models=[{"name": "chat", "strategy": "least_inflight",
                 "deployments": [{"provider": "sim"}]}])
    _, key = await gw.keys.create_key("acme")
    dep = gw.table.get("chat").deployments[0]
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 500},
                             headers={"Authorization": f"Bearer {key}"})
    await resp.content.readuntil(b"\n\n")
    assert dep.inflight == 1
    resp.close()  # the client goes away mid-stream
    for _ in range(200):
        if dep.inflight == 0:
            break
        await asyncio.sleep(0.02)
    assert dep.inflight == 0
    assert dep.breaker.failures == 0
    assert dep.provider.engine.active == 0  # the upstream generation was stopped too


async def test_upstream_connections_are_reused_after_streams(scripted):
    upstream, client, auth = scripted
    upstream.release.set()
    for _ in range(5):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
        assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    assert len(upstream.peers) == 1


async def test_a_stream_cut_by_shutdown_ends_with_an_error_event(gateway_factory):
    import time

    from fabrique import pipeline
    from fabrique.pipeline.context import RequestContext
    from fabrique.pipeline.relay import relay_stream

    _, gw = await gateway_factory(
        providers=[{"name": "sim", "type": "simulated", "profile": {"decode_ms_per_token": 20}}],
        models=[{"name": "chat", "deployments": [{"provider": "sim"}]}])
    _, key = await gw.keys.create_key("acme")
    principal = await gw.keys.authenticate(f"Bearer {key}")
    ctx = RequestContext(gw, "req_test", "chat/completions",
                         {**CHAT, "stream": True, "max_tokens": 1000}, principal, time.perf_counter())
    await pipeline.run(ctx)
    written: list[bytes] = []
    first = asyncio.Event()

    async def start() -> None:
        pass

    async def write(data: bytes) -> None:
        written.append(data)
        first.set()

    async def end() -> None:
        written.append(b"<eof>")

    task = asyncio.create_task(relay_stream(ctx, start, write, end))
    await first.wait()
    task.cancel()  # what aiohttp does to handlers still running past its shutdown grace
    with pytest.raises(asyncio.CancelledError):
        await task
    assert written[-1] == b"<eof>"
    assert orjson.loads(written[-2][6:])["error"]["code"] == "gateway_shutdown"
    assert b"data: [DONE]\n\n" not in written
    assert ctx.deployment.inflight == 0


async def test_end_streams_ends_open_streams_with_an_error_event(gateway_factory):
    client, gw = await gateway_factory(
        providers=[{"name": "sim", "type": "simulated", "profile": {"decode_ms_per_token": 20}}],
        models=[{"name": "chat", "deployments": [{"provider": "sim"}]}])
    _, key = await gw.keys.create_key("acme")
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 1000},
                             headers={"Authorization": f"Bearer {key}"})
    first = await resp.content.readuntil(b"\n\n")
    assert first.startswith(b"data: {")
    assert len(gw.streams) == 1
    gw.end_streams()
    rest = await resp.read()
    assert b"[DONE]" not in rest
    last = rest.strip().split(b"\n\n")[-1]
    assert orjson.loads(last[6:])["error"]["code"] == "gateway_shutdown"
    assert not gw.streams
    assert gw.table.groups["chat"].deployments[0].breaker.state == "closed"


async def test_a_client_that_stops_reading_does_not_trip_the_breaker(gateway_factory):
    client, gw = await gateway_factory(
        providers=[{"name": "sim", "type": "simulated",
                    "profile": {"decode_ms_per_token": 0, "base_ttft_ms": 0},
                    "timeouts": {"idle_s": 0.3}}],
        models=[{"name": "chat", "deployments": [{"provider": "sim"}]}])
    _, key = await gw.keys.create_key("acme")
    dep = gw.table.get("chat").deployments[0]
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 30000},
                             headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200  # and then the client reads nothing more
    for _ in range(300):
        if dep.inflight == 0:
            break
        await asyncio.sleep(0.05)
    assert dep.inflight == 0  # the gateway gave up on the client and freed the upstream
    assert dep.breaker.failures == 0
    assert dep.provider.engine.active == 0
    resp.close()


async def test_total_deadline_counts_from_the_answering_call_and_blames_no_one(gateway_factory):
    client, gw = await gateway_factory(
        providers=[{"name": "sim", "type": "simulated",
                    "profile": {"decode_ms_per_token": 20, "base_ttft_ms": 0},
                    "timeouts": {"total_s": 0.3, "idle_s": 5}}],
        models=[{"name": "chat", "deployments": [{"provider": "sim"}]}])
    _, key = await gw.keys.create_key("acme")
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True, "max_tokens": 500},
                             headers={"Authorization": f"Bearer {key}"})
    events = await read_events(resp)
    assert len(events) > 3  # it streamed for a while
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_timeout" and "total_s" in error["message"]
    assert gw.table.get("chat").deployments[0].breaker.failures == 0


async def test_stream_usage_can_be_left_out_for_apis_that_reject_it(gateway_factory):
    upstream = ScriptedUpstream()
    upstream.release.set()
    server = TestServer(upstream.app())
    await server.start_server()
    try:
        client, gw = await gateway_factory(
            providers=[{"name": "up", "type": "openai_compatible", "stream_usage": False,
                        "base_url": str(server.make_url("/v1"))}],
            models=[{"name": "chat", "deployments": [{"provider": "up"}]}])
        _, key = await gw.keys.create_key("acme")
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                 headers={"Authorization": f"Bearer {key}"})
        assert (await resp.read()).endswith(b"data: [DONE]\n\n")
        assert "stream_options" not in upstream.bodies[-1]
    finally:
        await server.close()


async def test_events_read_together_with_a_failure_all_reach_the_client_first(scripted):
    upstream, client, auth = scripted
    upstream.mode = "burst_error"
    upstream.release.set()
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    events = await read_events(resp)
    contents = [orjson.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert contents == ["first", " second", " third"]
    assert orjson.loads(events[-1])["error"]["message"] == "out of memory"
