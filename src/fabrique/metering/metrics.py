"""Prometheus metrics: the OpenTelemetry GenAI semantic conventions' names where they exist
(dots become underscores, the unit a suffix), ``fabrique_*`` for the rest.

Never message content: labels name the model, provider, deployment, tenant and outcome.
Each gateway has its own registry, so several gateways in one process (tests) do not mix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fabrique.metering.meter import Meter
    from fabrique.pipeline.context import RequestContext
    from fabrique.routing import RoutingTable

# Bucket boundaries advised by the GenAI semantic conventions.
_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
_DURATION = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TPOT = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_OPERATION = {"chat/completions": "chat", "completions": "text_completion",
              "embeddings": "embeddings"}
_BREAKER = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}
_GENAI = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.tokens = Histogram("gen_ai_client_token_usage", "Tokens used per request "
                                "(gen_ai.client.token.usage).", [*_GENAI, "gen_ai_token_type"],
                                buckets=_TOKENS, registry=r)
        self.operation = Histogram("gen_ai_client_operation_duration_seconds", "Upstream call "
                                   "duration (gen_ai.client.operation.duration).", _GENAI,
                                   buckets=_DURATION, registry=r)
        self.request = Histogram("gen_ai_server_request_duration_seconds", "Request duration "
                                 "at the gateway (gen_ai.server.request.duration).",
                                 [*_GENAI, "error_type"], buckets=_DURATION, registry=r)
        self.ttft = Histogram("gen_ai_server_time_to_first_token_seconds", "Time to first "
                              "token (gen_ai.server.time_to_first_token).", _GENAI,
                              buckets=_TTFT, registry=r)
        self.tpot = Histogram("gen_ai_server_time_per_output_token_seconds", "Time per output "
                              "token after the first (gen_ai.server.time_per_output_token).",
                              _GENAI, buckets=_TPOT, registry=r)
        self.cost = Counter("fabrique_cost_eur", "Euros charged.", ["tenant", "deployment"],
                            registry=r)
        self.energy = Counter("fabrique_energy_wh", "Watt-hours estimated or measured.",
                              ["deployment", "source"], registry=r)
        self.carbon = Counter("fabrique_co2e_g", "Operational gCO2e (energy × grid).",
                              ["deployment", "region"], registry=r)
        self.embodied = Counter("fabrique_embodied_co2e_g", "Embodied gCO2e, apart.",
                                ["deployment"], registry=r)
        self.decisions = Counter("fabrique_policy_decisions", "Admission and policy outcomes.",
                                 ["decision"], registry=r)
        self.estimated = Counter("fabrique_usage_estimated", "Requests whose tokens Fabrique "
                                 "estimated (no usage from upstream).", registry=r)
        self.redis_up = Gauge("fabrique_limiter_redis_up", "1 while limits and budgets are "
                              "shared in Redis; 0 when fallen back to this process (alarm); "
                              "NaN when no Redis is configured.", registry=r)
        self.fallbacks = Counter("fabrique_limiter_fallbacks", "Times Redis went away and limits "
                                 "fell back to this process.", registry=r)
        self.usage_dropped = Counter("fabrique_usage_dropped", "Usage records dropped: the "
                                     "write queue was full.", registry=r)
        self.usage_written = Counter("fabrique_usage_written", "Usage records written.",
                                     registry=r)
        self.usage_errors = Counter("fabrique_usage_write_errors", "Failed usage writes.",
                                    registry=r)
        self.redis_up.set(float("nan"))  # no Redis configured: nothing to alarm on
        # Label lookups cost more than the observations: children cached, by model and
        # provider (config) and tenant (database), so these stay small.
        self._children: dict[tuple[str, ...], tuple[Histogram, ...]] = {}
        self._requests: dict[tuple[tuple[str, ...], str], Histogram] = {}
        self._sums: dict[tuple[str, str], tuple[Counter, ...]] = {}

    def watch(self, table: RoutingTable, queue_depth: Callable[[], int]) -> None:
        """Read at scrape: breaker states and the usage queue."""
        self.registry.register(_Live(table))
        Gauge("fabrique_usage_queue_depth", "Usage records waiting to be written.",
              registry=self.registry).set_function(lambda: float(queue_depth()))

    def decision(self, name: str) -> None:
        self.decisions.labels(name).inc()

    def limiter_up(self, up: bool) -> None:
        self.redis_up.set(1 if up else 0)

    def limiter_fallback(self) -> None:
        self.fallbacks.inc()

    def observe(self, ctx: RequestContext, meter: Meter) -> None:
        dep = ctx.deployment
        model = ctx.model or "unknown"
        labels = (_OPERATION.get(ctx.endpoint, ctx.endpoint),
                  dep.provider.name if dep is not None else "none", model)
        error = "" if ctx.status < 400 and ctx.outcome in ("ok", "done") else ctx.outcome
        request = self._requests.get((labels, error))
        if request is None:
            request = self._requests[(labels, error)] = self.request.labels(*labels, error)
        request.observe(meter.latency_s)
        if ctx.status >= 400:
            self.decisions.labels(ctx.outcome).inc()
        if dep is None:
            return
        tokens_in, tokens_out, operation, ttft, tpot = self._child(labels)
        tokens_in.observe(meter.input_tokens)
        tokens_out.observe(meter.output_tokens)
        if ctx.attempts:
            operation.observe(ctx.attempts[-1].seconds if not ctx.stream
                              else meter.latency_s - (meter.queue_s or 0.0))
        if meter.ttft_s is not None:
            ttft.observe(meter.ttft_s)
        if meter.tpot_s is not None:
            tpot.observe(meter.tpot_s)
        if meter.estimated:
            self.estimated.inc()
        sums = self._sums.get((ctx.principal.tenant, dep.name))
        if sums is None:
            sums = self._sums[(ctx.principal.tenant, dep.name)] = (
                self.cost.labels(ctx.principal.tenant, dep.name),
                self.energy.labels(dep.name, meter.energy_source or "none"),
                self.carbon.labels(dep.name, meter.region or "unknown"),
                self.embodied.labels(dep.name))
        cost, energy, carbon, embodied = sums
        cost.inc(meter.cost_eur)
        if meter.energy_source:  # a deployment's source and region are fixed at start
            energy.inc(meter.energy_wh)
            carbon.inc(meter.co2e_g)
            embodied.inc(meter.embodied_g)

    def _child(self, labels: tuple[str, ...]) -> tuple[Histogram, ...]:
        """Label lookups cached: they cost more than the observations."""
        found = self._children.get(labels)
        if found is None:
            found = self._children[labels] = (
                self.tokens.labels(*labels, "input"), self.tokens.labels(*labels, "output"),
                self.operation.labels(*labels), self.ttft.labels(*labels),
                self.tpot.labels(*labels))
        return found


class _Live(Collector):
    def __init__(self, table: RoutingTable) -> None:
        self.table = table

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("fabrique_breaker_state", "Circuit breaker per deployment: "
                                   "0 closed, 1 half-open, 2 open.", labels=["deployment"])
        for group in self.table.groups.values():
            for dep in group.deployments:
                family.add_metric([dep.name], _BREAKER.get(dep.breaker.state, 2))
        yield family
