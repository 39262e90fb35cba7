"""Cost, energy and carbon per million output tokens, from a GPU-hour's cost and throughput."""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class Costs:
    capex_eur_per_gpu: float
    amortization_years: float
    maintenance_per_year: float     # share of capex per year
    energy_eur_per_mwh: float
    utilization: float              # share of hours the GPUs serve at the planned throughput
    idle_power_share: float         # power drawn when idle, as a share of full load
    gco2e_per_kwh: float
    rent_eur_per_gpu_hour: float | None = None   # renting instead of owning: replaces capex+maintenance

    def average_kw(self, full_kw_per_gpu: float) -> float:
        return full_kw_per_gpu * (self.idle_power_share + (1 - self.idle_power_share) * self.utilization)

    def eur_per_gpu_hour(self, full_kw_per_gpu: float) -> float:
        """All-in cost of one GPU-hour (owned: capex amortized plus maintenance; rented: the rent),
        plus energy at the average power (rent includes energy)."""
        if self.rent_eur_per_gpu_hour is not None:
            return self.rent_eur_per_gpu_hour
        capital = self.capex_eur_per_gpu / (self.amortization_years * HOURS_PER_YEAR)
        upkeep = self.capex_eur_per_gpu * self.maintenance_per_year / HOURS_PER_YEAR
        energy = self.average_kw(full_kw_per_gpu) / 1e3 * self.energy_eur_per_mwh
        return capital + upkeep + energy


@dataclass(frozen=True)
class UnitEconomics:
    eur_per_mtok: float
    wh_per_mtok: float
    gco2e_per_mtok: float
    eur_per_gpu_hour: float


def per_mtok(costs: Costs, tokens_per_s_per_gpu: float, full_kw_per_gpu: float) -> UnitEconomics:
    """€, Wh and gCO2e per million output tokens at the planned utilization (grid kW per GPU
    include the GPU's share of the rack, site overhead and cooling)."""
    hourly = costs.eur_per_gpu_hour(full_kw_per_gpu)
    if tokens_per_s_per_gpu <= 0 or costs.utilization <= 0:
        inf = float("inf")
        return UnitEconomics(inf, inf, inf, hourly)
    mtok_per_hour = tokens_per_s_per_gpu * 3600 * costs.utilization / 1e6
    wh = costs.average_kw(full_kw_per_gpu) * 1e3 / mtok_per_hour
    return UnitEconomics(eur_per_mtok=hourly / mtok_per_hour, wh_per_mtok=wh,
                         gco2e_per_mtok=wh / 1e3 * costs.gco2e_per_kwh, eur_per_gpu_hour=hourly)
