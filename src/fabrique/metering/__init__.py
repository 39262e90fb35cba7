"""Metering and control: usage, prices, energy and carbon, budgets, rate limits, metrics
and traces, for one gateway. The pipeline calls it twice per request:

    admit   (pipeline.admit, after validate)   rate limits and the budget reservation
    finish  (pipeline.meter, a finisher)       ctx.meter; settle; metrics; span; usage row
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from fabrique.config import Config
from fabrique.errors import ConfigError
from fabrique.metering import report, tokens
from fabrique.metering.control import Controller
from fabrique.metering.energy import EnergyModel, energy_model
from fabrique.metering.grid import intensities
from fabrique.metering.meter import Meter, measure
from fabrique.metering.metrics import Metrics
from fabrique.metering.plan import (
    KEPT_AFTER_S,
    Who,
    budget_base,
    period_start,
    periods,
    unit_of,
    units,
)
from fabrique.metering.prices import FREE, Price, price_of
from fabrique.metering.usage_log import UsageLog, row

if TYPE_CHECKING:
    from fabrique.metering.tracing import Tracing
    from fabrique.pipeline.context import RequestContext
    from fabrique.routing import Deployment, RoutingTable
    from fabrique.store import Database

__all__ = ["Meter", "Metering"]
log = logging.getLogger("fabrique.metering")


class Metering:
    def __init__(self, config: Config, db: Database, table: RoutingTable) -> None:
        self.config = cfg = config.metering
        self.table = table
        self.db = db
        names = {d.name: d for g in table.groups.values() for d in g.deployments}
        unknown = sorted(set(cfg.deployments) - set(names))
        if unknown:
            raise ConfigError(f"metering.deployments: unknown deployment {unknown[0]!r} (known: "
                              f"{', '.join(sorted(names)) or 'none'})")
        self.prices: dict[str, Price] = {n: price_of(m.price) for n, m in cfg.deployments.items()}
        self.energy: dict[str, EnergyModel] = {
            n: energy_model(m.energy) for n, m in cfg.deployments.items() if m.energy is not None}
        grid = intensities(cfg.grid)
        self.regions: dict[str, tuple[str, float]] = {}
        for name, dep in names.items():
            spec = cfg.deployments.get(name)
            region = (spec.region if spec is not None and spec.region else
                      dep.residency.jurisdiction or "WORLD")
            if region not in grid:
                raise ConfigError(f"metering: deployment {name!r} is in region {region!r}, which "
                                  "the grid table does not have; add it under metering.grid "
                                  "(gCO2e/kWh)")
            self.regions[name] = (region, grid[region])
        self.metrics = Metrics()
        self.control = Controller(cfg, self.metrics)
        self.usage = UsageLog(db, self.metrics, queue=cfg.usage_queue, batch=cfg.usage_batch,
                              flush_s=cfg.usage_flush_s)
        self.metrics.watch(table, self.usage.queue.qsize)
        self.tracing: Tracing | None = None
        self._worst: dict[str, Price] = {}

    async def start(self) -> None:
        if self.config.telemetry.otlp_endpoint:
            from fabrique.metering.tracing import Tracing
            self.tracing = Tracing(self.config.telemetry)
        self.usage.start()
        await self.control.start()
        await self._restore_budgets()

    async def _restore_budgets(self) -> None:
        """Each budget's spending so far in its period, from the usage rows, so that a restart
        (or a replica that finds Redis away) does not start a cap again from zero. Redis,
        when it answers, keeps its own count; this one stands for the time it does not."""
        if not self.config.budgets:
            return
        now = datetime.now(UTC)
        for rule in self.config.budgets:
            unit = unit_of(rule)
            period, left_s = periods(now)[rule.period]
            start = period_start(now, rule.period)
            try:
                totals = await report.spent_by(self.db, rule.scope, start, unit, rule.name)
            except SQLAlchemyError as exc:
                log.warning("budgets start from zero: the usage rows could not be read (%s)",
                            type(exc).__name__)
                return
            for ident, total in totals.items():
                key = f"{budget_base(rule, ident)}:{period}"
                self.control.local.restore(key, units(unit, int(total), total),
                                           left_s + KEPT_AFTER_S)

    async def close(self) -> None:
        await self.control.close()
        await self.usage.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.close)  # flushes spans over HTTP

    # -- stage 1: admit ----------------------------------------------------------------

    async def admit(self, ctx: RequestContext) -> None:
        if not self.control.enabled:
            return
        est_in = tokens.input_tokens(ctx.endpoint, ctx.body)
        est_out = (0 if ctx.endpoint == "embeddings" else
                   tokens.max_output_tokens(ctx.body, self.config.default_max_tokens))
        worst = self._worst_price(ctx.model)
        who = Who(ctx.principal.tenant, ctx.principal.key_id, ctx.agent, ctx.model)
        reservation = await self.control.admit(who, est_in + est_out,
                                               worst.cost(est_in, est_out))
        ctx.reservation = reservation
        if reservation is not None and reservation.refusal is not None:
            raise reservation.refusal

    def _worst_price(self, model: str) -> Price:
        """The dearest deployment the model may be routed to, fallbacks included."""
        found = self._worst.get(model)
        if found is None:
            group = self.table.get(model)
            groups = [group] if group is not None else []
            groups += [g for name in (group.fallbacks if group else []) if (g := self.table.get(name))]
            prices = [self.prices.get(d.name, FREE) for g in groups for d in g.deployments]
            found = self._worst[model] = Price(max((p.input_eur for p in prices), default=0.0),
                                               max((p.output_eur for p in prices), default=0.0))
        return found

    # -- stage 8: meter ------------------------------------------------------------------

    async def finish(self, ctx: RequestContext) -> None:
        """A bug here must not cost the client its answer: it is logged, and the request
        still settles what it reserved (at its estimate, when it could not be measured)."""
        try:
            meter = measure(ctx)
            dep = ctx.deployment
            if dep is not None and ctx.attempts:
                self._price(meter, dep, ctx)
        except Exception:
            log.exception("request %s: metering failed", ctx.request_id)
            meter = Meter(estimated=True)
            if ctx.reservation is not None:
                meter.input_tokens = ctx.reservation.estimate_tokens
        ctx.meter = meter
        try:
            if ctx.reservation is not None:
                await self.control.settle(ctx.reservation, meter.total_tokens, meter.cost_eur)
            self.metrics.observe(ctx, meter)
            if self.tracing is not None:
                self.tracing.span(ctx, meter)
            self.usage.record(row(ctx, meter))
        except Exception:
            log.exception("request %s: recording its usage failed", ctx.request_id)

    def _price(self, meter: Meter, dep: Deployment, ctx: RequestContext) -> None:
        meter.cost_eur = self.prices.get(dep.name, FREE).cost(meter.input_tokens,
                                                              meter.output_tokens)
        model = self.energy.get(dep.name)
        if model is None:
            return
        busy = time.perf_counter() - ctx.upstream_started  # the answering call, so far
        meter.energy_wh = model.wh(meter.input_tokens, meter.output_tokens, busy)
        meter.embodied_g = model.embodied(meter.output_tokens)
        meter.energy_source = model.source
        meter.region, grid = self.regions[dep.name]
        meter.co2e_g = meter.energy_wh / 1000 * grid
        if not math.isfinite(meter.co2e_g):
            meter.co2e_g = 0.0

