"""Usage records written behind the request path: a bounded queue, drained in batches.

A request never waits on the database: ``record`` puts a row in the queue and returns;
one task writes up to ``usage_batch`` rows per statement every ``usage_flush_s``. When the
queue is full (the database is down or slow for long) new rows are dropped and counted,
so memory stays flat through an outage; a failed batch is retried once, then dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from fabrique.store.tables import usage

if TYPE_CHECKING:
    from fabrique.metering.meter import Meter
    from fabrique.metering.metrics import Metrics
    from fabrique.pipeline.context import RequestContext
    from fabrique.store import Database

log = logging.getLogger("fabrique.metering")


def row(ctx: RequestContext, meter: Meter) -> dict[str, Any]:
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    asked = ctx.body.get("model")  # a refused request's model may be none served here
    model = ctx.model or (asked[:256] if isinstance(asked, str) else "")
    return {
        "request_id": ctx.request_id, "at": datetime.now(UTC), "tenant": ctx.principal.tenant,
        "key_id": ctx.principal.key_id, "agent": ctx.agent, "model": model,
        "deployment": ctx.deployment.name if ctx.deployment is not None else None,
        "endpoint": ctx.endpoint, "stream": ctx.stream, "status": ctx.status,
        "outcome": ctx.outcome[:64], "input_tokens": meter.input_tokens,
        "output_tokens": meter.output_tokens, "estimated": meter.estimated,
        "latency_ms": ms(meter.latency_s), "ttft_ms": ms(meter.ttft_s),
        "tpot_ms": ms(meter.tpot_s), "queue_ms": ms(meter.queue_s), "cost_eur": meter.cost_eur,
        "energy_wh": meter.energy_wh, "co2e_g": meter.co2e_g, "embodied_g": meter.embodied_g,
        "energy_source": meter.energy_source,
    }


class UsageLog:
    def __init__(self, db: Database, metrics: Metrics, *, queue: int, batch: int,
                 flush_s: float) -> None:
        self.db = db
        self.metrics = metrics
        self.batch = batch
        self.flush_s = flush_s
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def record(self, values: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(values)
        except asyncio.QueueFull:
            self.metrics.usage_dropped.inc()

    async def flush(self) -> None:
        """Write everything queued now (tests, reports, shutdown)."""
        while not self.queue.empty():
            await self._write(self._take())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await self.flush()

    def _take(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < self.batch and not self.queue.empty():
            rows.append(self.queue.get_nowait())
        return rows

    async def _run(self) -> None:
        while True:  # an idle wake-up every flush_s costs nothing worth an event
            await asyncio.sleep(self.flush_s)
            await self.flush()

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        for attempt in (1, 2):
            try:
                async with self.db.engine.begin() as conn:
                    await conn.execute(usage.insert(), rows)
            except (SQLAlchemyError, OSError) as exc:
                self.metrics.usage_errors.inc()
                if attempt == 2:
                    log.error("dropped %d usage records: the database failed (%s)", len(rows),
                              type(exc).__name__)
                    self.metrics.usage_dropped.inc(len(rows))
                    return
                await asyncio.sleep(self.flush_s)
                continue
            self.metrics.usage_written.inc(len(rows))
            return
