"""Cost, energy and carbon per request: headers, the answer's usage object, the usage row."""

from __future__ import annotations

import orjson
import pytest

from fabrique.config import EnergyConfig, PriceConfig
from fabrique.errors import ConfigError
from fabrique.metering.energy import energy_model
from fabrique.metering.grid import builtin
from fabrique.metering.prices import price_of

from .helpers import CHAT, auth, rows

METERING = {"deployments": {"sim/sim-chat": {
    "price": {"input_eur_per_1m": 1.0, "output_eur_per_1m": 3.0},
    "energy": {"source": "model", "input_wh_per_1k": 0.1, "output_wh_per_1k": 1.0}}}}


def expected(usage: dict[str, int]) -> tuple[float, float, float]:
    cost = usage["prompt_tokens"] * 1.0e-6 + usage["completion_tokens"] * 3.0e-6
    wh = usage["prompt_tokens"] * 0.1e-3 + usage["completion_tokens"] * 1.0e-3
    return cost, wh, wh / 1000 * builtin()["FR"]["g_per_kwh"]  # type: ignore[operator]


async def test_a_plain_answer_carries_its_cost_energy_and_carbon(gateway_factory):
    client, gw = await gateway_factory(metering=METERING)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=await auth(gw))
    body = await resp.json()
    cost, wh, co2 = expected(body["usage"])
    assert float(resp.headers["x-fabrique-cost-eur"]) == pytest.approx(cost, abs=1e-8)
    assert float(resp.headers["x-fabrique-energy-wh"]) == pytest.approx(wh, abs=1e-6)
    assert float(resp.headers["x-fabrique-co2e-g"]) == pytest.approx(co2, abs=1e-6)
    assert resp.headers["x-fabrique-energy-source"] == "model"
    usage = body["usage"]
    assert usage["cost_eur"] == pytest.approx(cost) and usage["energy_source"] == "model"
    assert usage["energy_wh"] == pytest.approx(wh, abs=1e-6)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    (row,) = await rows(gw, 1)
    assert row["cost_eur"] == pytest.approx(cost) and row["co2e_g"] == pytest.approx(co2)
    assert row["energy_source"] == "model"


async def test_a_stream_carries_them_in_its_usage_chunk(gateway_factory):
    client, gw = await gateway_factory(metering=METERING)
    resp = await client.post("/v1/chat/completions", headers=await auth(gw), json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    last = [orjson.loads(e[6:]) for e in (await resp.read()).split(b"\n\n")
            if e.startswith(b"data: {")][-1]
    cost, wh, _ = expected(last["usage"])
    assert last["usage"]["cost_eur"] == pytest.approx(cost)
    assert last["usage"]["energy_wh"] == pytest.approx(wh, abs=1e-6)


def test_self_hosted_prices_derive_from_gpu_hours_and_throughput():
    price = price_of(PriceConfig(gpu_hour_eur=3.6, gpus=2, input_tokens_per_s=10_000,
                                 output_tokens_per_s=1_000))
    assert price.output_eur == pytest.approx(3.6 * 2 / 3600 / 1000)
    assert price.input_eur == pytest.approx(3.6 * 2 / 3600 / 10_000)
    with pytest.raises(ValueError, match="output_tokens_per_s"):
        PriceConfig(gpu_hour_eur=3.6, input_tokens_per_s=10)


def test_energy_sources():
    measured = energy_model(EnergyConfig(source="measured", watts=700, concurrency=7, pue=1.2))
    assert measured.wh(100, 100, busy_s=3.0) == pytest.approx(700 * 1.2 / 7 * 3.0 / 3600)
    eco = energy_model(EnergyConfig(source="ecologits", active_params_b=8))
    big = energy_model(EnergyConfig(source="ecologits", active_params_b=70))
    assert 0 < eco.output_wh < big.output_wh  # grows with the model
    assert eco.input_wh == pytest.approx(eco.output_wh * 0.1)  # prefill counted, apart
    assert eco.embodied(1000) > 0
    with pytest.raises(ValueError, match="active_params_b"):
        EnergyConfig(source="ecologits")


def test_the_grid_table_has_its_regions_and_sources():
    table = builtin()
    for region in ("FR", "DE", "NL", "BE", "ES", "IT", "PL", "SE", "FI", "IE", "US", "US-CAMX"):
        assert table[region]["g_per_kwh"] > 0 and table[region]["source"]  # type: ignore[operator]


async def test_unknown_deployments_and_regions_fail_at_start(gateway_factory):
    with pytest.raises(ConfigError, match="unknown deployment 'nope'"):
        await gateway_factory(metering={"deployments": {"nope": {}}})
    with pytest.raises(ConfigError, match="region 'XX'"):
        await gateway_factory(metering={"deployments": {"sim/sim-chat": {"region": "XX"}}})
    _, gw = await gateway_factory(metering={"grid": {"FR": 50.0}})
    assert gw.metering.regions["sim/sim-chat"] == ("FR", 50.0)


@pytest.mark.parametrize("answer", [
    {"id": "x", "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
    {"id": "x", "usage": {}},
    {"id": "x"},
    {"id": "x", "choices": [{"message": {"content": '"usage":{ in a string'}}], "usage": {"a": 1}},
    {},
])
def test_figures_are_spliced_into_usage_without_reparsing(answer):
    from fabrique.api.openai import with_usage_fields

    out = orjson.loads(with_usage_fields(orjson.dumps(answer), {"cost_eur": 0.5, "x": "y"}))
    assert out["usage"] == {**(answer.get("usage") or {}), "cost_eur": 0.5, "x": "y"}
    assert {k: v for k, v in out.items() if k != "usage"} == {
        k: v for k, v in answer.items() if k != "usage"}
