"""The routing table: each public model name and the deployments that serve it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from fabrique.config import Config, Labels, ModelConfig, Timeouts
from fabrique.policy.residency import Residency
from fabrique.providers import Provider, build_provider
from fabrique.routing.breaker import CircuitBreaker

_RNG = random.Random()


@dataclass(slots=True, eq=False)
class Deployment:
    """One model on one provider, with its live state."""

    name: str
    upstream_model: str
    provider: Provider
    weight: float
    timeouts: Timeouts
    breaker: CircuitBreaker
    residency: Residency
    inflight: int = 0
    latency_ewma_s: float | None = None

    def observe_latency(self, seconds: float, alpha: float) -> None:
        prev = self.latency_ewma_s
        self.latency_ewma_s = seconds if prev is None else prev + alpha * (seconds - prev)


@dataclass(slots=True)
class ModelGroup:
    """A public model name: its deployments, strategy and fallbacks."""

    name: str
    kind: str
    strategy: str
    deployments: list[Deployment]
    fallbacks: list[str] = field(default_factory=list)

    def ordered(self, rng: random.Random | None = None) -> list[Deployment]:
        """Deployments in the order to try them, by the group's strategy."""
        rng = rng or _RNG
        deps = self.deployments
        if len(deps) == 1:
            return list(deps)
        if self.strategy == "least_inflight":
            return sorted(deps, key=lambda d: (d.inflight, rng.random()))
        if self.strategy == "lowest_latency":
            # Unmeasured deployments first, so that each gets measured.
            return sorted(deps, key=lambda d: (d.latency_ewma_s or 0.0, rng.random()))
        # Weighted random order without replacement (Efraimidis–Spirakis keys).
        return sorted(deps, key=lambda d: rng.random() ** (1.0 / d.weight), reverse=True)


class RoutingTable:
    """Built once from the config; owns the providers."""

    def __init__(self, config: Config) -> None:
        self.providers: dict[str, Provider] = {p.name: build_provider(p) for p in config.providers}
        provider_timeouts = {p.name: p.timeouts for p in config.providers}
        self.labels: dict[str, Labels] = {p.name: p for p in config.providers}
        breaker = config.routing.breaker
        self.groups: dict[str, ModelGroup] = {}
        for model in config.models:
            self.groups[model.name] = ModelGroup(
                model.name, model.kind, model.strategy,
                [self._deployment(model, i, provider_timeouts, breaker.failure_threshold,
                                  breaker.cooldown_s) for i in range(len(model.deployments))],
                list(model.fallbacks))

    def _deployment(self, model: ModelConfig, i: int, provider_timeouts: dict[str, Timeouts],
                    threshold: int, cooldown_s: float) -> Deployment:
        dep = model.deployments[i]
        upstream = dep.model or model.name
        return Deployment(
            name=dep.name or f"{dep.provider}/{upstream}", upstream_model=upstream,
            provider=self.providers[dep.provider], weight=dep.weight,
            timeouts=dep.timeouts or provider_timeouts[dep.provider],
            breaker=CircuitBreaker(threshold, cooldown_s),
            residency=Residency.of(self.labels[dep.provider], dep))

    def get(self, name: str) -> ModelGroup | None:
        return self.groups.get(name)

    async def start(self) -> None:
        for provider in self.providers.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self.providers.values():
            await provider.close()
