"""Retries, fallback and circuit breakers, driven by the simulator's fault injection."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from fabrique.config import Config
from fabrique.routing import CircuitBreaker, RoutingTable

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
FAST = {"decode_ms_per_token": 0.0, "base_ttft_ms": 0.0, "prefill_tokens_per_s": 1e9}


def sim(name: str, **faults) -> dict:
    return {"name": name, "type": "simulated", "profile": FAST, "faults": faults}


async def start(gateway_factory, providers, models, **routing):
    settings = {"backoff_base_s": 0.001, "backoff_max_s": 0.01, **routing}
    client, gw = await gateway_factory(providers=providers, models=models, routing=settings)
    _, key = await gw.keys.create_key("acme")
    return client, gw, {"Authorization": f"Bearer {key}"}


async def test_retry_on_same_deployment_recovers(gateway_factory, sim_server):
    # An HTTP upstream that fails half the time (seeded): one retry is enough for most calls.
    url = await sim_server(error_rate=0.5, seed=3)
    client, _gw, auth = await start(
        gateway_factory, [{"name": "up", "type": "openai_compatible", "base_url": url}],
        [{"name": "chat", "deployments": [{"provider": "up"}]}], retries=4,
        breaker={"failure_threshold": 100})
    statuses = Counter()
    for _ in range(20):
        statuses[(await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status] += 1
    assert statuses == {200: 20}


async def test_fallback_to_next_deployment(gateway_factory):
    client, _gw, auth = await start(
        gateway_factory, [sim("broken", error_rate=1.0), sim("healthy")],
        [{"name": "chat", "strategy": "weighted", "deployments": [
            {"provider": "broken", "weight": 1000}, {"provider": "healthy", "weight": 0.001}]}],
        retries=1, breaker={"failure_threshold": 1000})
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 200
    assert resp.headers["x-fabrique-deployment"] == "healthy/chat"


async def test_fallback_model_when_all_deployments_fail(gateway_factory):
    client, _gw, auth = await start(
        gateway_factory, [sim("broken", error_rate=1.0), sim("healthy")],
        [{"name": "chat", "deployments": [{"provider": "broken"}], "fallbacks": ["backup"]},
         {"name": "backup", "deployments": [{"provider": "healthy", "model": "small"}]}])
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 200
    assert resp.headers["x-fabrique-deployment"] == "healthy/small"
    assert (await resp.json())["model"] == "chat"


async def test_all_failing_is_502_after_bounded_attempts(gateway_factory):
    client, _gw, auth = await start(
        gateway_factory, [sim("a", error_rate=1.0), sim("b", error_rate=1.0)],
        [{"name": "chat", "deployments": [{"provider": "a"}, {"provider": "b"}]}],
        retries=2, max_attempts=4, breaker={"failure_threshold": 1000})
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "upstream_error"
    assert resp.headers["x-fabrique-attempts"] == "4"


async def test_unreachable_upstream_is_503_and_falls_back(gateway_factory, unused_tcp_port):
    dead = {"name": "dead", "type": "openai_compatible",
            "base_url": f"http://127.0.0.1:{unused_tcp_port}/v1", "timeouts": {"connect_s": 1}}
    client, _gw, auth = await start(gateway_factory, [dead], [
        {"name": "chat", "deployments": [{"provider": "dead"}]}], retries=1)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "upstream_unavailable"


async def test_first_token_timeout_is_504(gateway_factory):
    stalling = sim("slow", stall_rate=1.0, stall_before_first_token_s=30)
    stalling["timeouts"] = {"first_token_s": 0.1, "total_s": 0.2}
    client, _gw, auth = await start(gateway_factory, [stalling],
                                   [{"name": "chat", "deployments": [{"provider": "slow"}]}],
                                   retries=0)
    for stream in (False, True):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                                 headers=auth)
        assert resp.status == 504
        assert (await resp.json())["error"]["code"] == "upstream_timeout"


async def test_stall_before_first_token_falls_back(gateway_factory):
    stalling = sim("slow", stall_rate=1.0, stall_before_first_token_s=30)
    stalling["timeouts"] = {"first_token_s": 0.1}
    client, _gw, auth = await start(
        gateway_factory, [stalling, sim("fast")],
        [{"name": "chat", "strategy": "weighted", "deployments": [
            {"provider": "slow", "weight": 1000}, {"provider": "fast", "weight": 0.001}]}],
        retries=0)
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    assert resp.status == 200
    assert resp.headers["x-fabrique-deployment"] == "fast/chat"
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")


async def test_breaker_opens_then_skips_the_deployment(gateway_factory):
    client, gw, auth = await start(
        gateway_factory, [sim("broken", error_rate=1.0), sim("healthy")],
        [{"name": "chat", "strategy": "weighted", "deployments": [
            {"provider": "broken", "weight": 1000}, {"provider": "healthy", "weight": 0.001}]}],
        retries=0, breaker={"failure_threshold": 3, "cooldown_s": 60})
    broken = gw.table.get("chat").deployments[0]
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
    assert broken.breaker.state == "open"
    failures_before = broken.breaker.failures
    for _ in range(5):
        resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert resp.headers["x-fabrique-deployment"] == "healthy/chat"
    assert broken.breaker.failures == failures_before  # not called while open
    ready = await (await client.get("/readyz")).json()
    assert ready["deployments"]["broken/chat"] == "open"


async def test_every_circuit_open_is_503(gateway_factory):
    client, _gw, auth = await start(
        gateway_factory, [sim("broken", error_rate=1.0)],
        [{"name": "chat", "deployments": [{"provider": "broken"}]}],
        retries=0, breaker={"failure_threshold": 1, "cooldown_s": 60})
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 502
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "no_healthy_deployment"
    assert "Retry-After" in resp.headers
    assert (await client.get("/readyz")).status == 503


def test_breaker_half_open_probe(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("fabrique.routing.breaker.time.monotonic", lambda: now[0])
    breaker = CircuitBreaker(threshold=2, cooldown_s=10)
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] += 10
    assert breaker.state == "half_open"
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # and only one
    breaker.failure()  # the probe failed: open again for a full cooldown
    assert breaker.state == "open"
    now[0] += 10
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def _table(strategy: str, weights=(1.0, 1.0)) -> RoutingTable:
    config = Config.model_validate({
        "providers": [{"name": "a", "type": "simulated"}, {"name": "b", "type": "simulated"}],
        "models": [{"name": "m", "strategy": strategy, "deployments": [
            {"provider": "a", "weight": weights[0]}, {"provider": "b", "weight": weights[1]}]}]})
    return RoutingTable(config)


def test_weighted_strategy_follows_weights():
    group = _table("weighted", (3.0, 1.0)).get("m")
    rng = random.Random(1)
    firsts = Counter(group.ordered(rng)[0].name for _ in range(4000))
    assert 0.70 < firsts["a/m"] / 4000 < 0.80


def test_least_inflight_strategy():
    group = _table("least_inflight").get("m")
    group.deployments[0].inflight = 5
    assert all(group.ordered()[0].name == "b/m" for _ in range(20))


def test_lowest_latency_strategy_measures_then_prefers_fastest():
    group = _table("lowest_latency").get("m")
    a, b = group.deployments
    b.observe_latency(0.5, alpha=0.5)
    assert group.ordered()[0] is a  # unmeasured first
    a.observe_latency(0.1, alpha=0.5)
    assert group.ordered()[0] is a
    for _ in range(5):
        a.observe_latency(2.0, alpha=0.5)
    assert group.ordered()[0] is b


@pytest.mark.parametrize("misconfigured", ["unknown_model", "wrong_key"])
async def test_upstream_auth_or_model_errors_fall_back_without_retry(gateway_factory, sim_server,
                                                                     misconfigured):
    # 404 (the engine does not serve our model name) and 401 (our upstream key is wrong)
    # are the operator's mistakes: no retry on that deployment, the next one answers.
    if misconfigured == "unknown_model":
        url = await sim_server(models=["other"])
    else:
        url = await sim_server(api_key="right-key")
    client, _gw, auth = await start(
        gateway_factory, [{"name": "up", "type": "openai_compatible", "base_url": url,
                           "api_key": "wrong-key"}, sim("healthy")],
        [{"name": "chat", "strategy": "weighted", "deployments": [
            {"provider": "up", "weight": 1000}, {"provider": "healthy", "weight": 0.001}]}],
        retries=3)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 200
    assert resp.headers["x-fabrique-deployment"] == "healthy/chat"
    assert resp.headers["x-fabrique-attempts"] == "2"


async def test_upstream_api_key_from_environment(gateway_factory, sim_server, monkeypatch, tmp_path):
    from fabrique.config import load_config

    url = await sim_server(api_key="s3cret")
    monkeypatch.setenv("UPSTREAM_KEY", "s3cret")
    path = tmp_path / "fabrique.yaml"
    path.write_text(f"""
data_dir: {tmp_path / "data"}
providers:
  - name: up
    type: openai_compatible
    base_url: {url}
    api_key: ${{UPSTREAM_KEY}}
models:
  - name: chat
    deployments: [{{provider: up}}]
""")
    config = load_config(path)
    assert "s3cret" not in repr(config)  # a secret prints masked
    client, gw = await gateway_factory(config)
    _, key = await gw.keys.create_key("acme")
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200


async def test_upstream_client_error_is_relayed_not_retried(gateway_factory, sim_server):
    url = await sim_server()
    client, gw, auth = await start(
        gateway_factory, [{"name": "up", "type": "openai_compatible", "base_url": url}],
        [{"name": "chat", "deployments": [{"provider": "up"}]}], retries=3)
    # The gateway checks max_tokens itself; the simulator rejects an empty prompt list.
    resp = await client.post("/v1/completions", json={"model": "chat", "prompt": [""]}, headers=auth)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "missing_required_parameter"  # the engine's own code, kept
    assert error["message"] == "'prompt' is required."
    dep = gw.table.get("chat").deployments[0]
    assert dep.breaker.failures == 0


def _half_open(dep) -> None:
    import time

    dep.breaker.failures = dep.breaker.threshold
    dep.breaker.opened_at = time.monotonic() - dep.breaker.cooldown_s - 1


async def test_a_probe_is_not_claimed_when_no_attempt_is_left(gateway_factory):
    client, gw, auth = await start(
        gateway_factory, [sim("broken", error_rate=1.0), sim("healthy")],
        [{"name": "chat", "strategy": "weighted", "deployments": [
            {"provider": "broken", "weight": 1000}, {"provider": "healthy", "weight": 0.001}]}],
        retries=0, max_attempts=1)
    healthy = gw.table.get("chat").deployments[1]
    _half_open(healthy)
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 502
    assert not healthy.breaker.probing  # not claimed, so not leaked
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "chat"}, headers=auth)
    assert resp.status in (200, 502)
    assert healthy.breaker.allow()  # a later request can still probe it


async def test_a_failed_probe_is_settled_even_under_a_name_seen_before(gateway_factory):
    # The fallback group's deployment has the same name (same provider, same upstream model)
    # as the first group's: a failed probe must still reopen its circuit, not stay claimed.
    client, gw, auth = await start(
        gateway_factory, [sim("broken", error_rate=1.0)],
        [{"name": "chat", "deployments": [{"provider": "broken", "model": "x"}],
          "fallbacks": ["backup"]},
         {"name": "backup", "deployments": [{"provider": "broken", "model": "x"}]}],
        retries=0)
    first, backup = gw.table.get("chat").deployments[0], gw.table.get("backup").deployments[0]
    assert first.name == backup.name
    _half_open(backup)
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 502
    assert not backup.breaker.probing
    assert backup.breaker.state == "open"


async def test_start_up_warns_about_models_the_upstream_does_not_list(gateway_factory, sim_server):
    url = await sim_server(models=["served-model"])
    _, gw = await gateway_factory(
        providers=[{"name": "up", "type": "openai_compatible", "base_url": url}],
        models=[{"name": "good", "deployments": [{"provider": "up", "model": "served-model"}]},
                {"name": "typo", "deployments": [{"provider": "up", "model": "servd-model"}]}])
    warnings = await gw.check_upstream_models()
    assert len(warnings) == 1
    assert "'servd-model'" in warnings[0] and "served-model" in warnings[0]
