"""The usage writer and reports on both databases: SQLite by default, PostgreSQL at scale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fabrique.keys import Principal
from fabrique.metering.meter import Meter
from fabrique.metering.metrics import Metrics
from fabrique.metering.report import report, since, spent_by
from fabrique.metering.usage_log import UsageLog, row
from fabrique.pipeline.context import RequestContext
from fabrique.store import Database


def _ctx(tenant: str, agent: str | None, status: int = 200) -> RequestContext:
    ctx = RequestContext(None, "req_1", "chat/completions", {"model": "chat"},  # type: ignore[arg-type]
                         Principal(tenant, 1, "abcdefabcdef"), 0.0, agent=agent)
    ctx.model, ctx.status, ctx.outcome = "chat", status, "ok" if status == 200 else "x"
    return ctx


async def test_rows_are_written_in_batches_and_reported(db):
    log = UsageLog(db, Metrics(), queue=100, batch=3, flush_s=0.05)
    for i in range(7):
        log.record(row(_ctx("acme" if i < 5 else "beta", "bot" if i % 2 else None),
                       Meter(input_tokens=10, output_tokens=i, cost_eur=0.5, energy_wh=1.0,
                             latency_s=0.01, energy_source="model", estimated=i == 0)))
    log.record(row(_ctx("acme", None, 429), Meter(latency_s=0.001)))
    await log.flush()
    assert log.metrics.usage_written._value.get() == 8
    by_tenant = {r["tenant"]: r for r in await report(db, "tenant", since("1h"))}
    assert by_tenant["acme"]["requests"] == 6 and by_tenant["acme"]["refused"] == 1
    assert by_tenant["acme"]["output_tokens"] == sum(range(5))
    assert by_tenant["acme"]["estimated"] == 1
    assert by_tenant["beta"]["cost_eur"] == pytest.approx(1.0)
    assert by_tenant["acme"]["avg_latency_ms"] == pytest.approx((5 * 10 + 1) / 6)
    agents = {r["agent"]: r["requests"] for r in await report(db, "agent", since("1h"), "acme")}
    assert agents == {"bot": 2, None: 4}
    assert await report(db, "tenant", datetime.now(UTC) + timedelta(minutes=1)) == []
    # Where budgets start again after a restart: spending since a moment, by identity.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert await spent_by(db, "tenant", hour_ago, "eur") == pytest.approx({"acme": 2.5, "beta": 1.0})
    assert await spent_by(db, "tenant", hour_ago, "tokens", "beta") == {"beta": 10 + 5 + 10 + 6}
    assert await spent_by(db, "agent", hour_ago, "tokens") == {"bot": 10 + 1 + 10 + 3 + 10 + 5}
    assert await spent_by(db, "tenant", datetime.now(UTC) + timedelta(minutes=1), "eur") == {}


async def test_a_full_queue_drops_and_counts(db):
    log = UsageLog(db, Metrics(), queue=2, batch=10, flush_s=0.05)
    for _ in range(5):
        log.record(row(_ctx("acme", None), Meter()))
    assert log.metrics.usage_dropped._value.get() == 3
    await log.flush()
    assert log.metrics.usage_written._value.get() == 2


async def test_a_database_outage_costs_rows_not_memory_or_requests():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x")
    log = UsageLog(down, Metrics(), queue=50, batch=10, flush_s=0.01)
    try:
        for _ in range(500):
            log.record(row(_ctx("acme", None), Meter()))  # never waits, never raises
        assert log.queue.qsize() == 50  # bounded
        assert log.metrics.usage_dropped._value.get() == 450
        await log.flush()  # the write fails twice, is counted and dropped; nothing raised
        assert log.metrics.usage_errors._value.get() == 2
        assert log.metrics.usage_dropped._value.get() == 500
        assert log.queue.empty()
    finally:
        await down.close()
