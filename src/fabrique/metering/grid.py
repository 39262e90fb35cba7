"""Grid carbon intensity by region, from the package's table (each value with its source),
overridden or extended by ``metering.grid`` in the config."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def builtin() -> dict[str, dict[str, object]]:
    text = resources.files("fabrique.metering").joinpath("data/grid_intensity.json").read_text()
    regions: dict[str, dict[str, object]] = json.loads(text)["regions"]
    return regions


def intensities(overrides: dict[str, float]) -> dict[str, float]:
    """gCO2e/kWh by region: the built-in table with the config's values over it."""
    table = {region: float(entry["g_per_kwh"]) for region, entry in builtin().items()  # type: ignore[arg-type]
             }
    table.update(overrides)
    return table


def source(region: str, overrides: dict[str, float]) -> str:
    if region in overrides:
        return "config (metering.grid)"
    return str(builtin().get(region, {}).get("source", "unknown"))
