"""How many users (or agents) a throughput serves, from a per-user demand profile."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Demand:
    requests_per_day: float      # per user
    output_tokens: float         # per request
    input_tokens: float
    peak_factor: float           # busiest hour's rate over the day's average rate
    active_days_per_month: float = 22.0

    @property
    def peak_tokens_per_s(self) -> float:
        """Output tokens per second one user needs in the busiest hour."""
        return self.requests_per_day * self.output_tokens / 86400.0 * self.peak_factor

    @property
    def tokens_per_month(self) -> float:
        return self.requests_per_day * self.output_tokens * self.active_days_per_month


def users_served(site_tokens_per_s: float, demand: Demand) -> float:
    """Users whose peak demand the site's sustained output throughput covers."""
    return site_tokens_per_s / demand.peak_tokens_per_s if demand.peak_tokens_per_s > 0 else 0.0
