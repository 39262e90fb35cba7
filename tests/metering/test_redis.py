"""Limits and budgets shared through the machine's Redis: atomic across replicas, with a
fallback to this process while Redis is away, and a return when it comes back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from fabrique.config import MeteringConfig
from fabrique.metering.control import Controller
from fabrique.metering.metrics import Metrics
from fabrique.metering.plan import Who

from .helpers import REDIS, Proxy, drop_keys, prefix


@pytest.fixture
async def key_prefix():
    name = prefix()
    yield name
    await drop_keys(name)


def controller(url: str, key_prefix: str, **settings) -> Controller:
    return Controller(MeteringConfig.model_validate(
        {"redis_url": url, "redis_prefix": key_prefix, "redis_retry_s": 0.05,
         "redis_timeout_s": 2.0, **settings}),
        Metrics())


WHO = Who("acme", "k1", None, "chat")


async def test_two_replicas_admit_exactly_one_limit(key_prefix):
    limits = {"limits": [{"scope": "tenant", "rpm": 30}]}
    a, b = controller(REDIS, key_prefix, **limits), controller(REDIS, key_prefix, **limits)
    await a.start()
    await b.start()
    try:
        assert a.redis_up and b.redis_up
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*((a if i % 2 else b).admit(WHO, 10, 0.0)
                                         for i in range(120)))
        elapsed = loop.time() - started
        admitted = sum(r is not None and r.refusal is None for r in results)
        # 30 at once, plus what the bucket refilled meanwhile (30 a minute).
        assert 30 <= admitted <= 30 + int(elapsed * 30 / 60) + 1
        assert {r.store.name for r in results if r is not None} == {"redis"}
    finally:
        await a.close()
        await b.close()


async def test_budgets_reserve_and_settle_across_replicas(key_prefix):
    budgets = {"budgets": [{"scope": "tenant", "tokens": 1000, "period": "daily"}]}
    a, b = controller(REDIS, key_prefix, **budgets), controller(REDIS, key_prefix, **budgets)
    await a.start()
    await b.start()
    try:
        results = await asyncio.gather(*((a if i % 2 else b).admit(WHO, 30, 0.0)
                                         for i in range(200)))
        taken = [r for r in results if r is not None and r.refusal is None]
        assert len(taken) == 1000 // 30  # exactly what fits, not one more
        await asyncio.gather(*(a.settle(r, 20, 0.0) for r in taken))
        await a.flush()  # settlements are written behind the requests
        _, (budget,) = a.planner.plan(WHO, 0, 0.0, datetime.now(UTC))
        assert await b.spent(budget) == (20 * len(taken), 0)
    finally:
        await a.close()
        await b.close()


async def test_redis_going_away_falls_back_then_recovers(key_prefix):
    proxy = Proxy()
    await proxy.start()
    c = controller(proxy.url, key_prefix, limits=[{"scope": "tenant", "rpm": 1000, "tpm": 10**6}],
                   redis_timeout_s=0.5)
    await c.start()
    try:
        first = await c.admit(WHO, 1, 0.0)
        assert first is not None and first.store.name == "redis"
        assert c.metrics.redis_up._value.get() == 1
        await proxy.stop()
        many = await asyncio.gather(*(c.admit(WHO, 1, 0.0) for _ in range(10)))  # pipelined
        assert {(r.store.name, r.refusal) for r in many if r is not None} == {("local", None)}
        during = await c.admit(WHO, 1, 0.0)
        assert during is not None and during.refusal is None and during.store.name == "local"
        assert not c.redis_up
        assert c.metrics.redis_up._value.get() == 0
        assert c.metrics.fallbacks._value.get() == 1
        await c.settle(first, 1, 0.0)  # owed to Redis: kept until it returns
        assert len(c._pending) == 1
        await proxy.start()  # same port
        for _ in range(200):
            if c.redis_up:
                break
            await asyncio.sleep(0.02)
        assert c.redis_up and c.metrics.redis_up._value.get() == 1
        assert not c._pending
        after = await c.admit(WHO, 1, 0.0)
        assert after is not None and after.store.name == "redis"
    finally:
        await c.close()
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.stop()


async def test_an_unreachable_redis_at_start_means_local_limits(key_prefix):
    proxy = Proxy()
    await proxy.start()
    await proxy.stop()  # a port nobody listens on any more
    c = controller(proxy.url, key_prefix, limits=[{"scope": "tenant", "rpm": 2}])
    await c.start()
    try:
        results = [await c.admit(WHO, 1, 0.0) for _ in range(3)]
        assert [r.refusal is None for r in results if r is not None] == [True, True, False]
        assert c.metrics.redis_up._value.get() == 0
    finally:
        await c.close()


async def test_budget_spent_while_redis_was_away_counts_when_it_returns(key_prefix):
    proxy = Proxy()
    await proxy.start()
    c = controller(proxy.url, key_prefix, budgets=[{"scope": "tenant", "tokens": 10_000}])
    await c.start()
    _, (budget,) = c.planner.plan(WHO, 0, 0.0, datetime.now(UTC))
    try:
        before = await c.admit(WHO, 50, 0.0)
        await c.settle(before, 10, 0.0)
        await proxy.stop()
        during = await c.admit(WHO, 50, 0.0)
        assert during.store.name == "local"
        await c.settle(during, 20, 0.0)
        in_flight = await c.admit(WHO, 50, 0.0)  # admitted here, ends after the return
        await proxy.start()
        for _ in range(200):
            if c.redis_up:
                break
            await asyncio.sleep(0.02)
        assert c.redis_up
        await c.settle(in_flight, 5, 0.0)
        await c.flush()
        assert await c.spent(budget) == (10 + 20 + 5, 0)  # Redis: all of it, nothing held
        assert await c.local.spent(budget) == (0, 0)  # nothing left over here
    finally:
        await c.close()
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.stop()


async def test_nothing_reserved_or_used_settles_cleanly(key_prefix):
    # A free deployment reserves 0 micro-euros; a refused request uses nothing. Lua's -0
    # once reached Redis as "-0", an error that took Redis for down.
    c = controller(REDIS, key_prefix, budgets=[{"scope": "tenant", "eur": 1.0}])
    await c.start()
    try:
        free = await c.admit(WHO, 100, 0.0)
        assert free.budgets[0].amount == 0
        await c.settle(free, 0, 0.0)
        await c.flush()
        assert c.redis_up and c.metrics.fallbacks._value.get() == 0
        _, (budget,) = c.planner.plan(WHO, 0, 0.0, datetime.now(UTC))
        assert await c.spent(budget) == (0, 0)
    finally:
        await c.close()
