"""Facility, economics and product capacity: the arithmetic, and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabrique.planner import catalog, facility
from fabrique.planner.capacity import Demand, users_served
from fabrique.planner.economics import Costs, per_mtok

GB200 = catalog.accelerator("GB200-NVL72")


def test_44_mw_is_250_gb200_racks() -> None:
    site = facility.from_power(GB200, 44.0, pue=1.2, overhead=0.10)
    assert site.systems == 250 and site.gpus == 18_000
    assert site.grid_mw == pytest.approx(44.0)


@given(mw=st.floats(0.5, 2000), pue=st.floats(1.0, 2.0), overhead=st.floats(0.0, 0.5),
       gpu=st.sampled_from([a.name for a in catalog.accelerators()]))
def test_power_to_gpus_and_back(mw: float, pue: float, overhead: float, gpu: str) -> None:
    acc = catalog.accelerator(gpu)
    site = facility.from_power(acc, mw, pue, overhead)
    assert site.grid_mw <= mw * (1 + 1e-9)                      # never over the connection
    one_more = facility.from_gpus(acc, site.gpus + acc.gpus_per_system, pue, overhead)
    assert one_more.grid_mw > mw * (1 - 1e-9)                   # and one system more would be
    assert facility.from_gpus(acc, site.gpus, pue, overhead).systems == site.systems


def costs(**kw: float) -> Costs:
    base = dict(capex_eur_per_gpu=40_000.0, amortization_years=4.0, maintenance_per_year=0.05,
                energy_eur_per_mwh=100.0, utilization=0.5, idle_power_share=0.3,
                gco2e_per_kwh=50.0)
    return Costs(**{**base, **kw})  # type: ignore[arg-type]


def test_unit_economics_by_hand() -> None:
    c = costs()
    # capital 40,000/(4*8760) = 1.1416; upkeep 40,000*0.05/8760 = 0.2283;
    # energy: 2 kW x (0.3 + 0.7*0.5) = 1.3 kW x 0.1 €/kWh = 0.13 €/h
    assert c.eur_per_gpu_hour(2.0) == pytest.approx(1.1416 + 0.2283 + 0.13, abs=1e-3)
    u = per_mtok(c, tokens_per_s_per_gpu=1000.0, full_kw_per_gpu=2.0)
    mtok_per_hour = 1000 * 3600 * 0.5 / 1e6
    assert u.eur_per_mtok == pytest.approx(c.eur_per_gpu_hour(2.0) / mtok_per_hour)
    assert u.wh_per_mtok == pytest.approx(1300 / mtok_per_hour)
    assert u.gco2e_per_mtok == pytest.approx(u.wh_per_mtok / 1000 * 50)


def test_rent_replaces_capex_and_energy() -> None:
    assert costs(rent_eur_per_gpu_hour=3.0).eur_per_gpu_hour(2.0) == 3.0


@given(t=st.floats(1, 1e5), u=st.floats(0.05, 1.0))
def test_more_throughput_or_utilization_is_cheaper_per_token(t: float, u: float) -> None:
    base = per_mtok(costs(utilization=u), t, 2.0)
    assert per_mtok(costs(utilization=u), t * 2, 2.0).eur_per_mtok < base.eur_per_mtok
    assert per_mtok(costs(utilization=u), t * 2, 2.0).wh_per_mtok < base.wh_per_mtok


def test_users_from_the_peak_demand() -> None:
    d = Demand(requests_per_day=86.4, output_tokens=500, input_tokens=1000, peak_factor=2.0)
    assert d.peak_tokens_per_s == pytest.approx(1.0)           # 86.4*500/86400*2
    assert users_served(10_000.0, d) == pytest.approx(10_000)
    assert d.tokens_per_month == pytest.approx(86.4 * 500 * 22)
