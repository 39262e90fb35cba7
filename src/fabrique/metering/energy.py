"""Energy of a request, from the best source a deployment has, named in every figure.

- ``measured``: the operator's measured accelerator-and-host power × the request's busy
  time (the upstream call), shared by the mean concurrency, × PUE. Includes prefill and
  decode as they happened; excludes idle time between requests.
- ``model``: Wh per 1,000 input and output tokens from a hardware model (the planner's,
  or the operator's own). Includes what that model includes.
- ``ecologits``: the EcoLogits method (github.com/genai-impact/ecologits): GPU energy per
  output token regressed on active parameters (ML.ENERGY leaderboard data), plus the
  server's share, × PUE; computed once per deployment at start for 1,000 tokens and scaled.
  EcoLogits counts decode only: prefill is charged ``prefill_ratio`` of an output token per
  input token (an assumption, configurable). It also gives embodied emissions, kept apart.

Carbon is energy × the grid intensity of the deployment's region (``metering.grid``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fabrique.config import EnergyConfig

_TOKENS = 1000


@dataclass(frozen=True, slots=True)
class EnergyModel:
    source: str  # "measured", "model" or "ecologits"
    input_wh: float = 0.0  # per token (model, ecologits)
    output_wh: float = 0.0
    watts: float = 0.0  # measured: per request, after sharing and PUE
    embodied_g: float = 0.0  # per output token

    def wh(self, input_tokens: int, output_tokens: int, busy_s: float) -> float:
        if self.source == "measured":
            return self.watts * busy_s / 3600
        return input_tokens * self.input_wh + output_tokens * self.output_wh

    def embodied(self, output_tokens: int) -> float:
        return output_tokens * self.embodied_g


def energy_model(config: EnergyConfig) -> EnergyModel:
    embodied = (config.embodied_g_per_1k_output or 0.0) / _TOKENS
    if config.source == "measured":
        assert config.watts is not None
        return EnergyModel("measured", watts=config.watts * config.pue / config.concurrency,
                           embodied_g=embodied)
    if config.source == "model":
        assert config.input_wh_per_1k is not None and config.output_wh_per_1k is not None
        return EnergyModel("model", config.input_wh_per_1k / _TOKENS,
                           config.output_wh_per_1k / _TOKENS, embodied_g=embodied)
    output_wh, embodied_eco = _ecologits_per_token(config)
    return EnergyModel("ecologits", output_wh * config.prefill_ratio, output_wh,
                       embodied_g=embodied if config.embodied_g_per_1k_output is not None
                       else embodied_eco)


def _ecologits_per_token(config: EnergyConfig) -> tuple[float, float]:
    """(Wh, embodied gCO2e) per output token by EcoLogits, for this model and PUE."""
    from ecologits.impacts.llm import compute_llm_impacts  # 0.2 s to import: at start only

    assert config.active_params_b is not None
    impacts = compute_llm_impacts(
        model_active_parameter_count=config.active_params_b,
        model_total_parameter_count=config.total_params_b or config.active_params_b,
        output_token_count=_TOKENS, request_latency=math.inf,
        # Carbon is Fabrique's own (grid table); only energy and embodied are taken here.
        if_electricity_mix_adpe=0.0, if_electricity_mix_pe=0.0, if_electricity_mix_gwp=0.0,
        if_electricity_mix_wue=0.0, datacenter_pue=config.pue, datacenter_wue=0.0)
    kwh = _mid(impacts.energy.value)
    embodied_kg = _mid(impacts.embodied.gwp.value) if impacts.embodied is not None else 0.0
    return kwh * 1000 / _TOKENS, embodied_kg * 1000 / _TOKENS


def _mid(value: object) -> float:
    """EcoLogits gives a range when a parameter count is uncertain: take its middle."""
    low, high = getattr(value, "min", value), getattr(value, "max", value)
    return (float(low) + float(high)) / 2  # type: ignore[arg-type]
