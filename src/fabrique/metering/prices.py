"""Euros per token of a deployment: its list price, or derived from a GPU-hour cost.

Self-hosted: a deployment that costs ``gpu_hour_eur`` × ``gpus`` an hour and serves
``output_tokens_per_s`` (all concurrent requests together) costs
``gpu_hour_eur × gpus / 3600 / output_tokens_per_s`` per output token, and likewise per
input token with the prefill throughput. Both sides are charged the whole hour: a choice
of the operator's, who gives the list prices directly to split it otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from fabrique.config import PriceConfig


@dataclass(frozen=True, slots=True)
class Price:
    input_eur: float = 0.0  # per token
    output_eur: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens * self.input_eur + output_tokens * self.output_eur


FREE = Price()


def price_of(config: PriceConfig) -> Price:
    return Price(_per_token(config, "input"), _per_token(config, "output"))


def _per_token(config: PriceConfig, side: str) -> float:
    listed: float | None = getattr(config, f"{side}_eur_per_1m")
    if listed is not None:
        return listed / 1e6
    throughput: float | None = getattr(config, f"{side}_tokens_per_s")
    if config.gpu_hour_eur is not None and throughput:
        return config.gpu_hour_eur * config.gpus / 3600 / throughput
    return 0.0
