"""Admission in one process: rate limits as token buckets, budgets reserved then settled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fabrique.metering.plan import Who

from .helpers import CHAT, auth, rows


async def _budget_state(gw, tenant="acme", key="", agent=None):
    _, budgets = gw.metering.control.planner.plan(Who(tenant, key, agent, "chat"), 0, 0.0,
                                          datetime.now(UTC))
    return await gw.metering.control.spent(budgets[0])


async def test_rpm_limits_answer_429_with_retry_after_and_headers(gateway_factory):
    client, gw = await gateway_factory(metering={"limits": [{"scope": "tenant", "rpm": 3}]})
    headers = await auth(gw)
    first = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "2"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    statuses = [(await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status
                for _ in range(2)]
    refused = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert statuses == [200, 200] and refused.status == 429
    error = (await refused.json())["error"]
    assert error["code"] == "rate_limit_exceeded" and "tenant acme" in error["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    # Another tenant has its own bucket.
    other = await client.post("/v1/chat/completions", json=CHAT, headers=await auth(gw, "beta"))
    assert other.status == 200


async def test_tpm_and_agent_limits(gateway_factory):
    client, gw = await gateway_factory(metering={"limits": [
        {"scope": "agent", "name": "bot", "tpm": 40}]})
    headers = await auth(gw)
    bot = {**headers, "x-fabrique-agent-id": "bot"}
    # Each request is charged its estimate (12 output + its prompt) then settled to its usage.
    answers = [await client.post("/v1/chat/completions", json=CHAT, headers=bot) for _ in range(4)]
    assert [a.status for a in answers].count(429) >= 1
    assert answers[0].headers["x-ratelimit-limit-tokens"] == "40"
    # Requests of another agent, or none, are not counted against bot.
    for agent in ({"x-fabrique-agent-id": "other"}, {}):
        resp = await client.post("/v1/chat/completions", json=CHAT, headers={**headers, **agent})
        assert resp.status == 200
    bad = await client.post("/v1/chat/completions", json=CHAT,
                            headers={**headers, "x-fabrique-agent-id": "x" * 200})
    assert bad.status == 400


async def test_a_budget_refuses_what_does_not_fit_and_settles_to_real_usage(gateway_factory):
    client, gw = await gateway_factory(metering={"budgets": [
        {"scope": "tenant", "period": "daily", "tokens": 100}]})
    headers = await auth(gw)
    statuses = []
    for _ in range(8):
        statuses.append((await client.post("/v1/chat/completions", json=CHAT,
                                            headers=headers)).status)
    assert 200 in statuses and statuses[-1] == 429
    refused = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    error = (await refused.json())["error"]
    assert (error["code"], error["type"]) == ("budget_exceeded", "insufficient_quota")
    assert "daily budget of tenant acme" in error["message"]
    assert refused.headers["x-should-retry"] == "false"  # the SDKs would retry a 429 otherwise
    spent, reserved = await _budget_state(gw)
    used = sum(r["input_tokens"] + r["output_tokens"] for r in await rows(gw, 9))
    assert (spent, reserved) == (used, 0)
    assert spent <= 100


async def test_concurrent_requests_never_overshoot_a_budget(gateway_factory):
    client, gw = await gateway_factory(metering={"budgets": [
        {"scope": "key", "period": "monthly", "eur": 0.001}],
        "deployments": {"sim/sim-chat": {"price": {"input_eur_per_1m": 2.0,
                                                   "output_eur_per_1m": 6.0}}}})
    headers = await auth(gw)
    answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT,
                                                 headers=headers) for _ in range(200)))
    statuses = [a.status for a in answers]
    assert statuses.count(200) > 0 and statuses.count(429) > 0
    recorded = await rows(gw, 200)
    cost = sum(r["cost_eur"] for r in recorded)
    assert cost <= 0.001 + 1e-9
    key_id = headers["Authorization"].split("-", 1)[1].split("_", 1)[0]
    spent, reserved = await _budget_state(gw, key=key_id)
    assert reserved == 0
    assert abs(spent - cost * 1e6) <= statuses.count(200)  # micro-euros, rounded up per request


async def test_embeddings_reserve_their_input_only(gateway_factory):
    client, gw = await gateway_factory(metering={"budgets": [
        {"scope": "tenant", "period": "daily", "tokens": 50}]})
    resp = await client.post("/v1/embeddings", json={"model": "embed", "input": "un deux trois"},
                             headers=await auth(gw))
    assert resp.status == 200  # a chat request's default max_tokens (1024) would not fit
    (row,) = await rows(gw, 1)
    assert row["output_tokens"] == 0 and row["input_tokens"] > 0
    assert await _budget_state(gw) == (row["input_tokens"], 0)


async def test_the_admin_api_shows_budgets_spent_and_reserved(gateway_factory):
    client, gw = await gateway_factory(metering={"budgets": [
        {"scope": "tenant", "period": "daily", "tokens": 1000},
        {"scope": "agent", "name": "bot", "period": "monthly", "eur": 2.5}]})
    headers = {**await auth(gw), "x-fabrique-agent-id": "bot"}
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 200
    (row,) = await rows(gw, 1)
    admin = {"Authorization": "Bearer test-admin-token"}
    data = (await (await client.get("/admin/budgets?tenant=acme&agent=bot", headers=admin))
            .json())["data"]
    tenant, agent = sorted(data, key=lambda b: b["scope"], reverse=True)
    assert (tenant["scope"], tenant["unit"], tenant["limit"]) == ("tenant", "tokens", 1000)
    assert tenant["spent"] == row["input_tokens"] + row["output_tokens"]
    assert tenant["reserved"] == 0
    assert (agent["name"], agent["unit"], agent["limit"], agent["spent"]) == ("bot", "eur", 2.5, 0)
    assert (await client.get("/admin/budgets", headers=admin)).status == 400
    assert (await client.get("/admin/budgets?tenant=acme", headers=headers)).status == 401


async def test_a_restart_does_not_start_a_budget_again_from_zero(gateway_factory):
    budget = {"budgets": [{"scope": "tenant", "period": "daily", "tokens": 100}]}
    client, gw = await gateway_factory(metering=budget)
    headers = await auth(gw)
    statuses = [(await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status
                for _ in range(8)]
    assert statuses[-1] == 429
    used = sum(r["input_tokens"] + r["output_tokens"] for r in await rows(gw))
    await client.close()  # the gateway stops; its usage rows are written

    client, gw = await gateway_factory(metering=budget)  # the same database
    assert await _budget_state(gw) == (used, 0)
    refused = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "budget_exceeded"
