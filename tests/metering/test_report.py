"""Usage reports, from the CLI and the admin API, match the requests sent."""

from __future__ import annotations

import asyncio
import csv
import io

import orjson
from typer.testing import CliRunner

from fabrique.cli import app

from .helpers import CHAT, auth, rows

ADMIN = {"Authorization": "Bearer test-admin-token"}
METERING = {"deployments": {"sim/sim-chat": {"price": {"input_eur_per_1m": 1,
                                                       "output_eur_per_1m": 2}}}}


async def _traffic(client, gw):
    acme, beta = await auth(gw, "acme"), await auth(gw, "beta")
    sent = {"acme": 0, "beta": 0}
    for i in range(5):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5 + i},
                                 headers={**acme, "x-fabrique-agent-id": "bot" if i % 2 else "crm"})
        assert resp.status == 200
        sent["acme"] += 1
    for _ in range(3):
        resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                                 headers=beta)
        await resp.read()
        sent["beta"] += 1
    await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=beta)
    return sent


async def test_the_admin_api_reports_what_was_sent(gateway_factory):
    client, gw = await gateway_factory(metering=METERING)
    await _traffic(client, gw)
    recorded = await rows(gw, 9)
    resp = await client.get("/admin/usage?by=tenant&since=1h", headers=ADMIN)
    data = {r["tenant"]: r for r in (await resp.json())["data"]}
    assert data["acme"]["requests"] == 5 and data["beta"]["requests"] == 4
    assert data["beta"]["refused"] == 1
    assert data["acme"]["output_tokens"] == sum(range(5, 10))
    assert data["beta"]["output_tokens"] == 3 * 12
    for tenant in ("acme", "beta"):
        mine = [r for r in recorded if r["tenant"] == tenant]
        assert data[tenant]["input_tokens"] == sum(r["input_tokens"] for r in mine)
        assert abs(data[tenant]["cost_eur"] - sum(r["cost_eur"] for r in mine)) < 1e-9
    by_agent = {r["agent"]: r["requests"] for r in (await (await client.get(
        "/admin/usage?by=agent&tenant=acme", headers=ADMIN)).json())["data"]}
    assert by_agent == {"bot": 2, "crm": 3}
    assert (await client.get("/admin/usage?by=color", headers=ADMIN)).status == 400
    assert (await client.get("/admin/usage?since=yesterday", headers=ADMIN)).status == 400
    # A tenant's key is not the admin token: no one else's usage.
    assert (await client.get("/admin/usage", headers=await auth(gw, "acme"))).status == 401


async def test_the_cli_reports_what_was_sent(gateway_factory, tmp_path):
    client, gw = await gateway_factory(metering=METERING)
    await _traffic(client, gw)
    await rows(gw, 9)
    config = tmp_path / "fabrique.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")  # the same database as the gateway
    runner = CliRunner()

    async def invoke(args):  # the CLI runs its own event loop: in a thread
        return await asyncio.to_thread(runner.invoke, app, args)

    out = await invoke(["usage", "--by", "model", "--since", "7d", "--json",
                        "--config", str(config)])
    assert out.exit_code == 0, out.output
    lines = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert {(r["model"], r["requests"]) for r in lines} == {("chat", 8), ("nope", 1)}
    out = await invoke(["usage", "--by", "deployment", "--csv", "--config", str(config)])
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {(r["deployment"], r["requests"]) for r in table} == {("sim/sim-chat", "8"), ("", "1")}
    out = await invoke(["usage", "--by", "tenant", "--config", str(config)])
    assert out.exit_code == 0 and "acme" in out.stdout and "beta" in out.stdout
    out = await invoke(["usage", "--by", "color", "--config", str(config)])
    assert out.exit_code == 1 and "by: one of" in out.stderr


async def test_a_tenant_sees_its_own_usage_only(gateway_factory):
    client, gw = await gateway_factory(metering=METERING)
    await _traffic(client, gw)
    await rows(gw, 9)
    beta = await auth(gw, "beta")  # another key of beta's
    resp = await client.get("/v1/fabrique/usage?by=model&since=1h", headers=beta)
    body = await resp.json()
    assert body["tenant"] == "beta"
    assert {(r["model"], r["requests"]) for r in body["data"]} == {("chat", 3), ("nope", 1)}
    by_key = (await (await client.get("/v1/fabrique/usage?by=key", headers=beta)).json())["data"]
    assert sum(r["requests"] for r in by_key) == 4  # acme's five are not there
    refused = await client.get("/v1/fabrique/usage?by=tenant", headers=beta)
    assert refused.status == 400
    assert (await client.get("/v1/fabrique/usage")).status == 401
