"""Usage records written behind the request path: a bounded queue, drained in batches.

A request never waits on the database: ``record`` puts a row in the queue and returns;
one task writes what is queued every ``usage_flush_s``, in one transaction, up to
``usage_batch`` rows per statement. When the
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


COLUMNS = ("request_id", "at", "tenant", "key_id", "agent", "model", "deployment", "endpoint",
           "stream", "status", "outcome", "input_tokens", "output_tokens", "estimated",
           "latency_ms", "ttft_ms", "tpot_ms", "queue_ms", "cost_eur", "energy_wh", "co2e_g",
           "embodied_g", "energy_source")
Row = tuple[Any, ...]
# SQLite: the driver's own executemany on plain tuples. SQLAlchemy's per-row parameter
# processing runs on the event loop and cost more than everything else metering does.
_SQLITE_INSERT = (f"INSERT INTO usage ({', '.join(COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in COLUMNS)})")


def row(ctx: RequestContext, meter: Meter) -> Row:
    """One usage row, in ``COLUMNS`` order."""
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    asked = ctx.body.get("model")  # a refused request's model may be none served here
    model = ctx.model or (asked[:256] if isinstance(asked, str) else "")
    return (ctx.request_id, datetime.now(UTC), ctx.principal.tenant, ctx.principal.key_id,
            ctx.agent, model, ctx.deployment.name if ctx.deployment is not None else None,
            ctx.endpoint, ctx.stream, ctx.status, ctx.outcome[:64], meter.input_tokens,
            meter.output_tokens, meter.estimated, ms(meter.latency_s), ms(meter.ttft_s),
            ms(meter.tpot_s), ms(meter.queue_s), meter.cost_eur, meter.energy_wh, meter.co2e_g,
            meter.embodied_g, meter.energy_source)


def _sqlite(r: Row) -> Row:
    # As SQLAlchemy stores them on SQLite: naive UTC text, booleans as integers.
    return (r[0], r[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[2:8], int(r[8]), *r[9:13],
            int(r[13]), *r[14:])


class UsageLog:
    def __init__(self, db: Database, metrics: Metrics, *, queue: int, batch: int,
                 flush_s: float) -> None:
        self.db = db
        self.metrics = metrics
        self.batch = batch
        self.flush_s = flush_s
        self.queue: asyncio.Queue[Row] = asyncio.Queue(maxsize=queue)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def record(self, values: Row) -> None:
        try:
            self.queue.put_nowait(values)
        except asyncio.QueueFull:
            self.metrics.usage_dropped.inc()

    async def flush(self) -> None:
        """Write everything queued now (tests, reports, shutdown), in one transaction: each
        commit is a journal write and an fsync."""
        rows: list[Row] = []
        while not self.queue.empty() and len(rows) < 100 * self.batch:
            rows.append(self.queue.get_nowait())
        if rows:
            await self._write(rows)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await self.flush()

    async def _run(self) -> None:
        while True:  # an idle wake-up every flush_s costs nothing worth an event
            await asyncio.sleep(self.flush_s)
            await self.flush()
            # Only a backlog is written without a pause: flushing again as soon as a few rows
            # have come in during a write made one small transaction every few milliseconds
            # under load (about 100 µs of CPU per request on top of the rows themselves).
            while self.queue.qsize() >= 100 * self.batch:
                await self.flush()

    async def _write(self, rows: list[Row]) -> None:
        sqlite = self.db.dialect == "sqlite"
        for attempt in (1, 2):
            try:
                async with self.db.engine.begin() as conn:
                    for at in range(0, len(rows), self.batch):  # short pauses for requests
                        part = rows[at:at + self.batch]
                        if sqlite:
                            await conn.exec_driver_sql(_SQLITE_INSERT, [_sqlite(r) for r in part])
                        else:
                            await conn.execute(usage.insert(), [dict(zip(COLUMNS, r, strict=True))
                                                                for r in part])
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
