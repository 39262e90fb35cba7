"""From grid megawatts to racks and GPUs, and back."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fabrique.planner.catalog import Accelerator


@dataclass(frozen=True)
class Site:
    grid_mw: float          # power drawn from the grid at full load
    pue: float
    overhead: float         # share of IT power outside the GPU racks (storage, network, CPUs)
    systems: int
    gpus: int
    it_mw: float            # IT power at full load (racks + overhead)

    @property
    def kw_per_gpu(self) -> float:
        """Grid kW per GPU at full load (rack share, overhead and cooling included)."""
        return self.grid_mw * 1e3 / self.gpus if self.gpus else 0.0


def from_power(acc: Accelerator, grid_mw: float, pue: float, overhead: float) -> Site:
    """The whole systems a grid connection powers: IT = grid / PUE; racks get (1 - overhead)."""
    it_kw = grid_mw * 1e3 / pue
    systems = math.floor(it_kw * (1.0 - overhead) / acc.system_power_kw + 1e-9)
    return _site(acc, systems, pue, overhead)


def from_gpus(acc: Accelerator, gpus: int, pue: float, overhead: float) -> Site:
    """The grid power `gpus` GPUs need, in whole systems."""
    systems = math.ceil(gpus / acc.gpus_per_system)
    return _site(acc, systems, pue, overhead)


def _site(acc: Accelerator, systems: int, pue: float, overhead: float) -> Site:
    rack_kw = systems * acc.system_power_kw
    it_mw = rack_kw / (1.0 - overhead) / 1e3
    return Site(grid_mw=it_mw * pue, pue=pue, overhead=overhead, systems=systems,
                gpus=systems * acc.gpus_per_system, it_mw=it_mw)
