"""Residency through the gateway: refuse, route in clear, or pseudonymize and restore.

Two recording upstreams stand in for an EU and a US deployment. They echo what they
received, so a placeholder they saw comes back in the answer, and keep every raw body, so
a test can prove that no original value reached the one outside the boundary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fabrique.config import Config

from ..conftest import GatewayFactory

IBAN = "FR76 3000 6000 0112 3456 7890 189"
EMAIL = "claire.martin@exemple.fr"
PHONE = "06 12 34 56 78"
PERSONAL = f"Mon IBAN est {IBAN}, écrivez à {EMAIL} ou appelez le {PHONE}. Merci {EMAIL} !"


class Recorder:
    """An OpenAI-compatible upstream that echoes the last message and records raw bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.bodies.append(raw)
        body = json.loads(raw)
        last = body["messages"][-1]["content"]
        text = f"Vous avez écrit : {last}" if isinstance(last, str) else "une image"
        if body.get("response_format", {}).get("type") == "json_object":
            text = json.dumps({"echo": text}, ensure_ascii=False)
        tools = bool(body.get("tools")) or bool(body.get("functions"))
        legacy = bool(body.get("functions"))
        arguments = json.dumps({"note": text}, ensure_ascii=False)
        step = int(request.headers.get("x-test-chunk", "4"))
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if tools else text}
            if tools:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": "note", "arguments": arguments}}]
            return web.json_response({
                "id": "x", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        source = arguments if tools else text
        for i in range(0, len(source), step):
            piece = source[i:i + step]
            delta: dict[str, Any] = (
                {"function_call": {"arguments": piece}} if legacy
                else {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} if tools
                else {"content": piece})
            await self._event(response, {"id": "x", "object": "chat.completion.chunk",
                                         "created": 1, "model": body["model"],
                                         "choices": [{"index": 0, "delta": delta,
                                                      "finish_reason": None}]})
        await self._event(response, {"id": "x", "object": "chat.completion.chunk", "created": 1,
                                     "model": body["model"],
                                     "choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "stop"}]})
        await response.write(b"data: [DONE]\n\n")
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        return web.json_response({"object": "list", "model": "e", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]})

    @staticmethod
    async def _event(response: web.StreamResponse, chunk: dict[str, Any]) -> None:
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

    def received(self) -> str:
        return b"\n".join(self.bodies).decode()


@pytest.fixture
async def upstreams() -> Any:
    eu, us = Recorder(), Recorder()
    servers = [TestServer(eu.app()), TestServer(us.app())]
    for server in servers:
        await server.start_server()
    yield {"eu": (eu, str(servers[0].make_url("/v1"))), "us": (us, str(servers[1].make_url("/v1")))}
    for server in servers:
        await server.close()


def config(tmp_path: Path, upstreams: dict[str, Any], **sovereignty: Any) -> Config:
    return Config.model_validate({
        "data_dir": str(tmp_path / "data"),
        "server": {"admin_token": "test-admin-token"},
        "providers": [
            {"name": "eu", "type": "openai_compatible", "base_url": upstreams["eu"][1], "jurisdiction": "FR",
             "hosting": "self-hosted"},
            {"name": "us", "type": "openai_compatible", "base_url": upstreams["us"][1], "jurisdiction": "US",
             "hosting": "non-eu-cloud"},
        ],
        "models": [
            {"name": "us-only", "deployments": [{"provider": "us", "model": "big"}]},
            {"name": "eu-only", "deployments": [{"provider": "eu", "model": "small"}]},
            {"name": "us-then-eu", "deployments": [{"provider": "us", "model": "big"}],
             "fallbacks": ["eu-only"]},
            {"name": "embed-us", "kind": "embedding", "deployments": [{"provider": "us"}]},
        ],
        "sovereignty": {"policies": [
            {"name": "pseudo", "personal": {"jurisdictions": ["EEA"], "outside": "pseudonymize"}},
        ], **sovereignty},
    })


async def start(gateway_factory: GatewayFactory, tmp_path: Path, upstreams: dict[str, Any],
                policy: str | None = None, **sovereignty: Any) -> tuple[Any, dict[str, str]]:
    client, gateway = await gateway_factory(config(tmp_path, upstreams, **sovereignty))
    _, key = await gateway.keys.create_key("acme", policy=policy)
    return client, {"Authorization": f"Bearer {key}"}


def chat(model: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


async def test_personal_data_is_refused_where_the_default_policy_forbids_it(
        gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams)
    resp = await client.post("/v1/chat/completions", json=chat("us-only", PERSONAL), headers=auth)
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "residency_policy"
    assert error["type"] == "permission_error"
    assert error["message"].startswith(
        "This request holds personal data (EMAIL×2, IBAN×1, PHONE_NUMBER×1) and policy "
        "'default' keeps personal data in EEA jurisdictions; no deployment of the model "
        "'us-only' qualifies")
    assert "us/big (US, non-eu-cloud, exposed to non-EU law)" in error["message"]
    assert resp.headers["x-fabrique-data-class"] == "personal"
    assert upstreams["us"][0].bodies == []


async def test_text_without_personal_data_goes_anywhere(gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams)
    resp = await client.post("/v1/chat/completions",
                             json=chat("us-only", "Quelle est la capitale du Portugal ?"),
                             headers=auth)
    assert resp.status == 200
    assert resp.headers["x-fabrique-data-class"] == "internal"
    assert resp.headers["x-fabrique-jurisdiction"] == "US"
    assert "x-fabrique-pseudonymized" not in resp.headers


async def test_personal_data_falls_back_to_a_deployment_inside_the_boundary(
        gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams)
    resp = await client.post("/v1/chat/completions", json=chat("us-then-eu", PERSONAL),
                             headers=auth)
    assert resp.status == 200
    assert resp.headers["x-fabrique-jurisdiction"] == "FR"
    assert resp.headers["x-fabrique-deployment"] == "eu/small"
    assert IBAN in (await resp.json())["choices"][0]["message"]["content"]
    assert upstreams["us"][0].bodies == []  # never even tried


async def test_pseudonymized_request_never_shows_originals_upstream_and_is_restored(
        gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams, policy="pseudo")
    resp = await client.post("/v1/chat/completions", json=chat("us-only", PERSONAL), headers=auth)
    assert resp.status == 200, await resp.text()
    assert resp.headers["x-fabrique-pseudonymized"] == "4"
    answer = (await resp.json())["choices"][0]["message"]["content"]
    assert answer == f"Vous avez écrit : {PERSONAL}"
    seen = upstreams["us"][0].received()
    for value in (IBAN, EMAIL, PHONE, IBAN.replace(" ", "")):
        assert value not in seen
    sent = json.loads(upstreams["us"][0].bodies[0])["messages"][0]["content"]
    assert sent.count("«EMAIL_1»") == 2  # the same value, the same placeholder
    assert "«IBAN_1»" in sent


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11])
async def test_streams_are_restored_whatever_the_chunking(gateway_factory, tmp_path, upstreams,
                                                          chunk):
    client, auth = await start(gateway_factory, tmp_path, upstreams, policy="pseudo")
    resp = await client.post("/v1/chat/completions", json=chat("us-only", PERSONAL, stream=True),
                             headers={**auth, "x-test-chunk": str(chunk)})
    assert resp.status == 200
    text = ""
    events = (await resp.text()).split("\n\n")
    assert events[-2] == "data: [DONE]"
    for event in events[:-2]:
        delta = json.loads(event.removeprefix("data: "))["choices"][0]["delta"]
        text += delta.get("content") or ""
    assert text == f"Vous avez écrit : {PERSONAL}"
    assert EMAIL not in upstreams["us"][0].received()


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_call_arguments_are_restored_as_valid_json(gateway_factory, tmp_path,
                                                              upstreams, stream):
    client, auth = await start(gateway_factory, tmp_path, upstreams, policy="pseudo")
    quoted = f'Le client "{EMAIL}" a un \\ dans son nom'
    body = chat("us-only", quoted, stream=stream, tools=[{"type": "function", "function": {
        "name": "note", "description": "Save a note", "parameters": {"type": "object"}}}])
    resp = await client.post("/v1/chat/completions", json=body,
                             headers={**auth, "x-test-chunk": "3"})
    assert resp.status == 200
    if stream:
        arguments = ""
        for event in (await resp.text()).split("\n\n")[:-2]:
            delta = json.loads(event.removeprefix("data: "))["choices"][0]["delta"]
            for call in delta.get("tool_calls") or []:
                arguments += call["function"]["arguments"]
    else:
        message = (await resp.json())["choices"][0]["message"]
        arguments = message["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"note": f"Vous avez écrit : {quoted}"}
    assert EMAIL not in upstreams["us"][0].received()


async def test_every_text_field_is_scanned(gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams)
    cases = [
        {"messages": [{"role": "system", "content": f"Client : {EMAIL}"},
                      {"role": "user", "content": "Bonjour"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": f"IBAN {IBAN}"}]}]},
        {"messages": [{"role": "user", "content": "ok"}],
         "tools": [{"type": "function", "function": {
             "name": "pay", "description": f"Pays to {IBAN}", "parameters": {}}}]},
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [{
            "id": "c", "type": "function",
            "function": {"name": "mail", "arguments": json.dumps({"to": EMAIL})}}]},
            {"role": "user", "content": "ok"}]},
        {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
        {"messages": [{"role": "user", "content": "ok"}], "user": EMAIL},
    ]
    for case in cases:
        resp = await client.post("/v1/chat/completions", json={"model": "us-only", **case},
                                 headers=auth)
        assert resp.status == 403, case
    resp = await client.post("/v1/chat/completions", json={"model": "us-only", **cases[4]},
                             headers=auth)
    assert "(no entity; cannot inspect image_url in messages[0].content[0])" in (
        await resp.json())["error"]["message"]
    resp = await client.post("/v1/embeddings", json={"model": "embed-us", "input": [
        "rien", f"mail {EMAIL}"]}, headers=auth)
    assert resp.status == 403
    assert upstreams["us"][0].bodies == []


async def test_declared_class_raises_the_floor_and_bad_values_are_refused(
        gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams)
    body = chat("us-only", "Rien de personnel ici.")
    resp = await client.post("/v1/chat/completions", json=body,
                             headers={**auth, "x-fabrique-data-class": "personal"})
    assert resp.status == 403
    resp = await client.post("/v1/chat/completions", json=chat("eu-only", "Rien."),
                             headers={**auth, "x-fabrique-data-class": "Public"})
    assert resp.headers["x-fabrique-data-class"] == "internal"  # never lowered
    resp = await client.post("/v1/chat/completions", json=body,
                             headers={**auth, "x-fabrique-data-class": "secret"})
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "x-fabrique-data-class"


async def test_declared_personal_data_is_not_sent_out_pseudonymized(
        gateway_factory, tmp_path, upstreams):
    # Nothing was found to replace: "pseudonymizing" would send the personal data as is.
    client, auth = await start(gateway_factory, tmp_path, upstreams, policy="pseudo")
    resp = await client.post("/v1/chat/completions", json=chat("us-only", f"Voir {EMAIL}"),
                             headers={**auth, "x-fabrique-data-class": "personal"})
    assert resp.status == 403
    assert "pseudonymized, it would still be personal data" in (await resp.json())["error"]["message"]


async def test_session_keeps_placeholders_across_requests(gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams, policy="pseudo")
    other = "jean.dupont@exemple.fr"
    for content in (f"Écrire à {other}", f"Écrire à {EMAIL} et {other}"):
        resp = await client.post("/v1/chat/completions", json=chat("us-only", content),
                                 headers={**auth, "x-fabrique-session-id": "s1"})
        assert resp.status == 200
    sent = [json.loads(b)["messages"][0]["content"] for b in upstreams["us"][0].bodies]
    assert sent == ["Écrire à «EMAIL_1»", "Écrire à «EMAIL_2» et «EMAIL_1»"]


async def test_tenant_policy_through_the_admin_api(gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams)
    admin = {"Authorization": "Bearer test-admin-token"}
    resp = await client.put("/admin/tenants/ghost/policy", json={"policy": "pseudo"}, headers=admin)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "tenant_not_found"
    resp = await client.put("/admin/tenants/acme/policy", json={"policy": "nope"}, headers=admin)
    assert resp.status == 400
    assert "unknown policy 'nope'" in (await resp.json())["error"]["message"]
    resp = await client.put("/admin/tenants/acme/policy", json={"policy": "pseudo"}, headers=admin)
    assert resp.status == 200
    assert (await resp.json())["policy"] == "pseudo"
    resp = await client.post("/v1/chat/completions", json=chat("us-only", PERSONAL), headers=auth)
    assert resp.status == 200
    resp = await client.get("/admin/policies", headers=admin)
    names = {p["name"]: p for p in (await resp.json())["data"]}
    assert names["default"]["default"] is True
    assert names["pseudo"]["personal"]["outside"] == "pseudonymize"


async def test_config_assigns_policies_to_tenants_and_a_key_overrides(
        gateway_factory, tmp_path, upstreams):
    client, gateway = await gateway_factory(config(tmp_path, upstreams, tenants={"acme": "pseudo"}))
    _, key = await gateway.keys.create_key("acme")
    _, strict = await gateway.keys.create_key("acme", policy="default")
    body = chat("us-only", PERSONAL)
    resp = await client.post("/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200
    resp = await client.post("/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {strict}"})
    assert resp.status == 403


async def test_long_prompts_are_scanned_whole_off_the_event_loop(gateway_factory, tmp_path,
                                                                 upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams)
    long = "Rien à signaler. " * 8000 + f"Sauf {EMAIL}."  # ~136 KB: scanned in the worker
    resp = await client.post("/v1/chat/completions", json=chat("us-only", long), headers=auth)
    assert resp.status == 403
    resp = await client.post("/v1/chat/completions", json=chat("us-only", long[:-40]),
                             headers=auth)
    assert resp.status == 200


async def test_ner_finds_names_without_cues(gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams, ner=True)
    text = "Le dossier de Sophie Lefèvre est arrivé hier à Lyon."
    resp = await client.post("/v1/chat/completions", json=chat("us-only", text), headers=auth)
    assert resp.status == 403
    assert resp.headers["x-fabrique-data-class"] == "personal"


async def test_the_decision_trail_has_class_counts_rule_and_jurisdiction_never_values(
        gateway_factory, tmp_path, upstreams):
    from fabrique import pipeline
    from fabrique.keys import Principal
    from fabrique.pipeline.context import RequestContext

    _, gateway = await gateway_factory(config(tmp_path, upstreams))
    ctx = RequestContext(gateway, "req_1", "chat/completions", chat("us-then-eu", PERSONAL),
                         Principal("acme", 1, "k", "pseudo"), 0.0)
    await pipeline.run(ctx)
    assert ctx.upstream is not None
    await ctx.upstream.close()
    trail = [(d.stage, d.outcome, d.reason) for d in ctx.decisions]
    assert trail[0] == ("classify", "personal", "EMAIL×2, IBAN×1, PHONE_NUMBER×1")
    assert trail[1][:2] == ("decide", "mixed")
    assert "policy 'pseudo' keeps personal data in EEA" in trail[1][2]
    assert trail[2] == ("protect", "pseudonymized", "4 value(s) replaced by placeholders")
    assert trail[-1][0] == "route" and "jurisdiction " in trail[-1][2]
    for value in (IBAN, EMAIL, PHONE, "FR76"):
        assert value not in repr(trail)


async def test_entity_classes_raise_or_silence_a_type(gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams,
                               entity_classes={"IP_ADDRESS": "internal", "EMAIL": "sensitive"})
    resp = await client.post("/v1/chat/completions",
                             json=chat("us-only", "Le serveur 192.168.12.7 ne répond plus."),
                             headers=auth)
    assert resp.status == 200 and resp.headers["x-fabrique-data-class"] == "internal"
    resp = await client.post("/v1/chat/completions", json=chat("eu-only", f"Écrire à {EMAIL}"),
                             headers=auth)
    assert resp.headers["x-fabrique-data-class"] == "sensitive"


@pytest.mark.parametrize("stream", [False, True])
async def test_json_answers_stay_valid_json_when_a_value_has_a_line_break(
        gateway_factory, tmp_path, upstreams, stream):
    client, auth = await start(gateway_factory, tmp_path, upstreams, policy="pseudo")
    address = "12 rue des Lilas\n75011 Paris"
    body = chat("us-only", f"Livrer au {address}", stream=stream,
                response_format={"type": "json_object"})
    resp = await client.post("/v1/chat/completions", json=body, headers={**auth, "x-test-chunk": "3"})
    assert resp.status == 200
    if stream:
        content = "".join(json.loads(e.removeprefix("data: "))["choices"][0]["delta"].get("content")
                          or "" for e in (await resp.text()).split("\n\n")[:-2])
    else:
        content = (await resp.json())["choices"][0]["message"]["content"]
    assert json.loads(content) == {"echo": f"Vous avez écrit : Livrer au {address}"}
    assert "Lilas" not in upstreams["us"][0].received()


async def test_legacy_function_call_streams_are_restored(gateway_factory, tmp_path, upstreams):
    client, auth = await start(gateway_factory, tmp_path, upstreams, policy="pseudo")
    body = chat("us-only", f"Écrire à {EMAIL}", stream=True,
                functions=[{"name": "note", "parameters": {"type": "object"}}])
    resp = await client.post("/v1/chat/completions", json=body, headers={**auth, "x-test-chunk": "2"})
    arguments = ""
    for event in (await resp.text()).split("\n\n")[:-2]:
        delta = json.loads(event.removeprefix("data: "))["choices"][0]["delta"]
        arguments += (delta.get("function_call") or {}).get("arguments") or ""
    assert json.loads(arguments) == {"note": f"Vous avez écrit : Écrire à {EMAIL}"}


async def test_sessions_belong_to_one_key(gateway_factory, tmp_path, upstreams):
    client, gateway = await gateway_factory(config(tmp_path, upstreams))
    alice = (await gateway.keys.create_key("acme", policy="pseudo"))[1]
    bob = (await gateway.keys.create_key("acme", policy="pseudo"))[1]
    session = {"x-fabrique-session-id": "42"}
    resp = await client.post("/v1/chat/completions", json=chat("us-only", f"IBAN {IBAN}"),
                             headers={"Authorization": f"Bearer {alice}", **session})
    assert resp.status == 200
    # Bob's request is pseudonymized too (his e-mail), so his answer is restored: from his
    # own session's vault, which has no IBAN_1.
    resp = await client.post("/v1/chat/completions",
                             json=chat("us-only", f"Répétez «IBAN_1» à {EMAIL}"),
                             headers={"Authorization": f"Bearer {bob}", **session})
    assert resp.headers["x-fabrique-pseudonymized"] == "1"
    answer = (await resp.json())["choices"][0]["message"]["content"]
    assert answer == f"Vous avez écrit : Répétez «IBAN_1» à {EMAIL}"


async def test_a_policy_removed_from_the_config_falls_back_and_says_so(
        gateway_factory, tmp_path, upstreams, caplog):
    _, first = await gateway_factory(config(tmp_path, upstreams))
    _, key = await first.keys.create_key("acme")
    await first.keys.set_tenant_policy("acme", "pseudo")
    client, _ = await gateway_factory(config(tmp_path, upstreams, policies=[]))
    assert "policy 'pseudo' is given to tenants or keys in the database" in caplog.text
    resp = await client.post("/v1/chat/completions", json=chat("us-only", PERSONAL),
                             headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 403
    assert "policy 'default'" in (await resp.json())["error"]["message"]
