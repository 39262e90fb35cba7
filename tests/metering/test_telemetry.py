"""/metrics in Prometheus format with the GenAI names, and spans reaching an OTLP receiver."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .helpers import CHAT, auth

GENAI = ["gen_ai_client_token_usage", "gen_ai_client_operation_duration_seconds",
         "gen_ai_server_request_duration_seconds", "gen_ai_server_time_to_first_token_seconds",
         "gen_ai_server_time_per_output_token_seconds"]
FABRIQUE = ["fabrique_cost_eur_total", "fabrique_energy_wh_total", "fabrique_co2e_g_total",
            "fabrique_policy_decisions_total", "fabrique_breaker_state",
            "fabrique_limiter_redis_up", "fabrique_usage_queue_depth"]


async def test_metrics_expose_the_genai_and_fabrique_names(gateway_factory):
    client, gw = await gateway_factory(metering={
        "limits": [{"scope": "tenant", "rpm": 2}],
        "deployments": {"sim/sim-chat": {
            "price": {"input_eur_per_1m": 1, "output_eur_per_1m": 2},
            "energy": {"source": "model", "input_wh_per_1k": 0.1, "output_wh_per_1k": 1}}}})
    headers = await auth(gw)
    await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    await (await client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                             headers=headers)).read()
    await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=headers)
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 429
    text = await (await client.get("/metrics")).text()
    for name in GENAI + FABRIQUE:
        assert f"\n{name}" in text, name
    assert ('gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name='
            '"sim",gen_ai_request_model="chat",gen_ai_token_type="output"} 2.0') in text
    assert 'gen_ai_server_time_to_first_token_seconds_count{' in text
    assert 'fabrique_policy_decisions_total{decision="model_not_found"} 1.0' in text
    assert 'fabrique_policy_decisions_total{decision="admitted"} 2.0' in text
    assert 'fabrique_policy_decisions_total{decision="rate_limit_exceeded"} 1.0' in text
    assert text.count("fabrique_policy_decisions_total{") == 3  # each refusal counted once
    assert 'fabrique_breaker_state{deployment="sim/sim-chat"} 0.0' in text
    assert 'fabrique_energy_wh_total{deployment="sim/sim-chat",source="model"}' in text
    assert "Bonjour" not in text  # never content
    assert gw.metering.tracing is None  # no endpoint, no spans


async def test_metrics_may_require_the_admin_token(gateway_factory):
    client, _ = await gateway_factory(metering={"telemetry": {"metrics_admin_only": True}})
    assert (await client.get("/metrics")).status == 401
    resp = await client.get("/metrics", headers={"Authorization": "Bearer test-admin-token"})
    assert resp.status == 200


async def test_a_trace_reaches_an_otlp_receiver(gateway_factory):
    received: list[ExportTraceServiceRequest] = []
    arrived = asyncio.Event()

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        arrived.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    receiver = TestServer(app)
    await receiver.start_server()
    try:
        endpoint = str(receiver.make_url("/v1/traces"))
        client, gw = await gateway_factory(metering={"telemetry": {"otlp_endpoint": endpoint}})
        resp = await client.post("/v1/chat/completions", json=CHAT, headers=await auth(gw))
        request_id = resp.headers["x-fabrique-request-id"]
        await client.close()  # shutting the gateway down flushes its spans
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        await receiver.close()
    spans = [s for m in received for rs in m.resource_spans for ss in rs.scope_spans
             for s in ss.spans]
    (span,) = spans
    attrs = {a.key: a.value for a in span.attributes}
    assert span.name == "chat chat"
    assert attrs["gen_ai.operation.name"].string_value == "chat"
    assert attrs["gen_ai.request.model"].string_value == "chat"
    assert attrs["gen_ai.provider.name"].string_value == "sim"
    assert attrs["gen_ai.usage.output_tokens"].int_value == 12
    assert attrs["fabrique.request_id"].string_value == request_id
    assert span.end_time_unix_nano > span.start_time_unix_nano
    assert not any("Bonjour" in str(v) for v in attrs.values())
