"""Admission control: taking what a request needs from its buckets and budgets, and
settling it when the request ends.

With ``metering.redis_url`` the buckets and budgets live in Redis and every replica shares
them. When Redis does not answer within ``redis_timeout_s``, this process falls back to
its own (``LocalStore``), sets ``fabrique_limiter_redis_up`` to 0, and checks Redis every
``redis_retry_s`` to go back to it. What it owes Redis meanwhile (settlements, and what it
spent on its own budgets) is kept, bounded, and paid when Redis returns, so reservations do
not leak and shared budgets count the outage. Settlements are written behind the request,
many merged into one script call, most riding along with the next admission: a request
costs one Redis round trip, not two.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fabrique.config import MeteringConfig
from fabrique.errors import BudgetExceeded, RateLimited
from fabrique.metering.buckets import Bucket, Budget, LocalStore, Verdict
from fabrique.metering.plan import MICRO, Planner, Who, units

if TYPE_CHECKING:
    from fabrique.metering.metrics import Metrics
    from fabrique.metering.redis_store import RedisStore

log = logging.getLogger("fabrique.metering")
_PENDING_MAX = 10_000
_SETTLE_DELAY_S = 0.05


@dataclass(slots=True)
class Reservation:
    """What a request took at admission; settled once when it ends."""

    store: Any  # LocalStore or RedisStore: where it was taken
    buckets: list[Bucket]
    budgets: list[Budget]
    levels: list[float]
    estimate_tokens: int
    settled: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-*
    refusal: RateLimited | None = None  # set when nothing was taken: the request is refused


class Controller:
    """Rate limits and budgets for this gateway; ``admit`` and ``settle`` are its hot path."""

    def __init__(self, config: MeteringConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.local = LocalStore()
        self.redis: RedisStore | None = None
        self.redis_up = False
        self._pending: collections.deque[tuple[list[tuple[Bucket, float]],
                                               list[tuple[Budget, int]]]] = collections.deque(
            maxlen=_PENDING_MAX)
        self._watch: asyncio.Task[None] | None = None
        self._settler: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._backlog_full = False
        self._flushing = asyncio.Lock()
        self._client: Any = None
        self.enabled = bool(config.limits or config.budgets)
        self.planner = Planner(config)

    async def start(self) -> None:
        if self.config.redis_url is None or not self.enabled:
            return
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from fabrique.metering.redis_store import RedisStore

        timeout = self.config.redis_timeout_s
        # No retries inside redis-py: a down Redis must cost one timeout, then the fallback.
        self._client = aioredis.Redis.from_url(
            self.config.redis_url.get_secret_value(), socket_timeout=timeout,
            socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
        self.redis = RedisStore(self._client, self.config.redis_prefix, timeout)
        try:
            self.redis_up = await self.redis.ping()
        except Exception as exc:
            self._down(exc)
            log.warning("Redis unreachable at start (%s): rate limits and budgets are kept in "
                        "this process until it answers", type(exc).__name__)
            self.metrics.limiter_fallback()
        self.metrics.limiter_up(self.redis_up)
        self._watch = asyncio.create_task(self._watch_redis())
        self._settler = asyncio.create_task(self._settle_loop())

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.config.redis_timeout_s * 4):
                await self.flush()
        for task in (self._watch, self._settler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._client is not None:
            await self._client.aclose()

    # -- admission ------------------------------------------------------------------

    async def admit(self, who: Who, tokens: int, cost_eur: float) -> Reservation | None:
        """Take what the request needs; None when no limit or budget applies. A refused
        request gets a reservation with its ``refusal`` (RateLimited or BudgetExceeded)."""
        buckets, budgets = self.planner.plan(who, tokens, cost_eur)
        if not buckets and not budgets:
            return None
        store, verdict = await self._take(buckets, budgets)
        reservation = Reservation(store, buckets, budgets, verdict.levels, tokens)
        reservation.headers = _ratelimit_headers(buckets, verdict.levels)
        if verdict.admitted:
            self.metrics.decision("admitted")
            return reservation
        reservation.settled = True  # nothing was taken
        # Refusals are counted by their code when the request is metered.
        if verdict.budget is not None:
            reservation.refusal = _budget_error(verdict.budget, verdict.spent)
        else:
            reservation.refusal = RateLimited(
                f"Rate limit reached for {_which(buckets, verdict)}; retry in "
                f"{verdict.retry_after or 0:.1f} s.", retry_after=verdict.retry_after)
        return reservation

    async def _take(self, buckets: list[Bucket], budgets: list[Budget]) -> tuple[Any, Verdict]:
        if self.redis is not None and self.redis_up:
            # Settlements owed ride along with the admission: one round trip for both.
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), 64))]
            try:
                return self.redis, await self.redis.take(buckets, budgets,
                                                         _merge(batch) if batch else None)
            except Exception as exc:
                self._pending.extendleft(reversed(batch))
                self._down(exc)
        return self.local, await self.local.take(buckets, budgets)

    async def settle(self, reservation: Reservation, used_tokens: int, cost_eur: float) -> None:
        """Give back what the request did not use; count what it did. Once per reservation."""
        if reservation.settled:
            return
        reservation.settled = True
        refunds = [(b, b.cost - min(used_tokens, b.capacity)) for b in reservation.buckets
                   if b.kind == "tokens"]
        budgets = [(g, units(g.unit, used_tokens, cost_eur)) for g in reservation.budgets]
        if not refunds and not budgets:
            return
        if reservation.store is self.local:
            if self.redis is None or not self.redis_up:
                await self.local.settle(refunds, budgets)
                return
            # Admitted here while Redis was away, ended after it came back: the reservation
            # is released here, the spending counted where the budget is shared.
            await self.local.settle(refunds, [(g, 0) for g, _ in budgets])
            refunds, budgets = [], [(replace(g, amount=0), used) for g, used in budgets]
        self._owe(refunds, budgets)

    def _owe(self, refunds: list[tuple[Bucket, float]], budgets: list[tuple[Budget, int]]) -> None:
        """Owed to Redis: written behind the request, merged with the others owed meanwhile
        (one script call for many requests). Until then a reservation stays held, which errs
        on the safe side of a budget."""
        if len(self._pending) == self._pending.maxlen and not self._backlog_full:
            self._backlog_full = True
            log.error("Redis settlements backlog full (%d): the oldest are dropped; their "
                      "reservations expire with their period", len(self._pending))
        self._pending.append((refunds, budgets))
        self._wake.set()

    async def flush(self) -> None:
        """Write the settlements owed to Redis now (tests, shutdown); kept if it is down."""
        async with self._flushing:
            while self._pending and self.redis is not None and self.redis_up:
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), 1000))]
                refunds, budgets = _merge(batch)
                try:
                    await self.redis.settle(refunds, budgets)
                except Exception as exc:
                    self._pending.extendleft(reversed(batch))
                    self._down(exc)
                    return

    async def _settle_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Give the next admissions a moment to carry them; write what is left.
            await asyncio.sleep(_SETTLE_DELAY_S)
            await self.flush()

    async def spent(self, budget: Budget) -> tuple[int, int]:
        """(spent, reserved) of a budget counter, where it lives now."""
        if self.redis is not None and self.redis_up:
            return await self.redis.spent(budget)
        return await self.local.spent(budget)

    # -- Redis health ----------------------------------------------------------------

    def _down(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning("Redis unreachable (%s): rate limits and budgets fall back to this "
                        "process until it returns", type(exc).__name__)
            self.metrics.limiter_fallback()
        self.redis_up = False
        self.metrics.limiter_up(False)

    async def _watch_redis(self) -> None:
        assert self.redis is not None
        while True:
            await asyncio.sleep(self.config.redis_retry_s)
            if self.redis_up:
                continue
            try:
                # Connections from before the outage may be dead: start afresh.
                await self._client.connection_pool.disconnect()
                await self.redis.ping()
            except Exception:
                continue
            log.warning("Redis is back: rate limits and budgets are shared again")
            # What this process spent on its own meanwhile counts in the shared budgets.
            spent = self.local.drain_spent()
            if spent:
                self._owe([], spent)
            self._backlog_full = False
            self.redis_up = True
            self.metrics.limiter_up(True)
            await self.flush()  # what was owed while it was away


def _merge(batch: list[tuple[list[tuple[Bucket, float]], list[tuple[Budget, int]]]]) -> tuple[
        list[tuple[Bucket, float]], list[tuple[Budget, int]]]:
    """Many settlements as one: refunds summed per bucket, reservations and usage per budget."""
    refunds: dict[str, tuple[Bucket, float]] = {}
    budgets: dict[str, tuple[Budget, int]] = {}
    for bucket_refunds, budget_uses in batch:
        for bucket, refund in bucket_refunds:
            seen = refunds.get(bucket.key)
            refunds[bucket.key] = (bucket, refund + (seen[1] if seen else 0.0))
        for budget, used in budget_uses:
            known = budgets.get(budget.key)
            if known is not None:
                budget = replace(budget, amount=budget.amount + known[0].amount)
                used += known[1]
            budgets[budget.key] = (budget, used)
    return list(refunds.values()), list(budgets.values())


def _which(buckets: list[Bucket], verdict: Verdict) -> str:
    for b, level in zip(buckets, verdict.levels, strict=False):
        if level < b.cost:
            scope, ident, kind = b.key.split(":")[1:4]
            return f"{scope} {ident} ({kind.upper()} {b.capacity:g})"
    return "this request"


def _budget_error(budget: Budget, used: int) -> BudgetExceeded:
    _, scope, ident, period, _ = budget.key.split(":", 4)
    if budget.unit == "eur":
        shown = f"€{used / MICRO:.6g} of €{budget.limit / MICRO:g}"
        need = f"€{budget.amount / MICRO:.6g}"
    else:
        shown, need = f"{used} of {budget.limit} tokens", f"{budget.amount} tokens"
    return BudgetExceeded(
        f"The {period} budget of {scope} {ident} has {shown} spent (or reserved by requests in "
        f"flight); this request may use up to {need} (its prompt and max_tokens, or "
        "metering.default_max_tokens when it gives none), which does not fit. Lower "
        "max_tokens, or wait for the next period.")


def _ratelimit_headers(buckets: list[Bucket], levels: list[float]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, from the tightest bucket of each kind."""
    tightest: dict[str, tuple[float, Bucket, float]] = {}
    for b, level in zip(buckets, levels, strict=False):
        share = level / b.capacity
        found = tightest.get(b.kind)
        if found is None or share < found[0]:
            tightest[b.kind] = (share, b, level)
    out: dict[str, str] = {}
    for kind, (_, b, level) in tightest.items():
        out[f"x-ratelimit-limit-{kind}"] = str(b.capacity)
        out[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(level)))
        out[f"x-ratelimit-reset-{kind}"] = f"{max(0.0, (b.capacity - level) / b.rate):.3g}s"
    return out
