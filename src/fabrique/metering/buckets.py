"""Rate-limit buckets and budget counters: what one request takes, and the in-process store.

A rate limit is a token bucket of ``capacity`` (a minute's worth) refilled at
``capacity / 60`` per second: RPM buckets take 1 per request, TPM buckets the request's
estimated tokens (corrected to its real usage when it ends). A budget counts ``spent``
and ``reserved`` units (micro-euros or tokens) per period: a request reserves its worst
case and is refused when ``spent + reserved + worst case`` would pass the cap; when it
ends, its reservation is released and its real usage added to ``spent``. So concurrent
requests never overshoot a cap by more than what one request used beyond its estimate.

``LocalStore`` does this in this process, atomically because nothing awaits between the
check and the take; ``metering.redis_store`` does the same in Redis for every replica.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str  # e.g. "rl:tenant:acme:rpm"
    kind: str  # "requests" or "tokens"
    capacity: int
    rate: float  # refill per second
    cost: float  # taken by this request


@dataclass(frozen=True, slots=True)
class Budget:
    key: str  # e.g. "bg:tenant:acme:2026-12"
    unit: str  # "eur" (counted in micro-euros) or "tokens"
    limit: int
    amount: int  # reserved by this request
    ttl_s: int  # the counter outlives its period by a day, then goes


@dataclass(slots=True)
class Verdict:
    """The outcome of a take: admitted, or why not and for how long."""

    admitted: bool
    levels: list[float] = field(default_factory=list)  # each bucket's level after the take
    retry_after: float | None = None  # a bucket was short
    budget: Budget | None = None  # this budget did not fit
    spent: int = 0  # of that budget, spent + reserved


class LocalStore:
    """Buckets and budgets in this process."""

    name = "local"

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key: (level, monotonic time)
        self._budgets: dict[str, list[int]] = {}  # key: [spent, reserved]
        # Spent before this process started (the usage table's rows of the period): counted
        # against the cap, never handed to Redis (which keeps its own count).
        self._before: dict[str, int] = {}
        self._expiry: dict[str, float] = {}  # budget key: monotonic time it may be dropped
        self.max_keys = max_keys  # agents are named by clients: the maps must stay bounded

    async def take(self, buckets: list[Bucket], budgets: list[Budget]) -> Verdict:
        return self.take_now(buckets, budgets, time.monotonic())

    def take_now(self, buckets: list[Bucket], budgets: list[Budget], now: float) -> Verdict:
        if len(self._buckets) + len(self._budgets) > self.max_keys:
            self._prune(now)
        levels = [self._level(b, now) for b in buckets]
        wait = max(((b.cost - level) / b.rate for b, level in zip(buckets, levels, strict=True)
                    if level < b.cost), default=0.0)
        if wait > 0:
            return Verdict(False, levels, retry_after=wait)
        for budget in budgets:
            spent, reserved = self._budgets.get(budget.key, (0, 0))
            spent += self._before.get(budget.key, 0)
            if spent + reserved + budget.amount > budget.limit:
                return Verdict(False, levels, budget=budget, spent=spent + reserved)
        for b, level in zip(buckets, levels, strict=True):
            self._buckets[b.key] = (level - b.cost, now)
        for budget in budgets:
            self._budgets.setdefault(budget.key, [0, 0])[1] += budget.amount
            self._expiry[budget.key] = now + budget.ttl_s
        return Verdict(True, [level - b.cost for b, level in zip(buckets, levels, strict=True)])

    async def settle(self, refunds: list[tuple[Bucket, float]],
                     budgets: list[tuple[Budget, int]]) -> None:
        """Give ``refund`` back to each bucket (negative: take more); release each budget's
        reservation and add what was really used."""
        now = time.monotonic()
        for bucket, refund in refunds:
            level = self._level(bucket, now)
            self._buckets[bucket.key] = (min(bucket.capacity, level + refund), now)
        for budget, used in budgets:
            counter = self._budgets.setdefault(budget.key, [0, 0])
            counter[0] += used
            counter[1] = max(0, counter[1] - budget.amount)

    def drain_spent(self) -> list[tuple[Budget, int]]:
        """What each budget spent here, as settlements for another store (Redis, when it
        comes back); forgotten here. Reservations in flight stay, to be released here."""
        now = time.monotonic()
        out = []
        for key, counter in self._budgets.items():
            if counter[0]:
                ttl = max(1, int(self._expiry.get(key, now + 86400) - now))
                out.append((Budget(key, "", 0, 0, ttl), counter[0]))
                counter[0] = 0
        return out

    async def spent(self, budget: Budget) -> tuple[int, int]:
        spent, reserved = self._budgets.get(budget.key, (0, 0))
        return spent + self._before.get(budget.key, 0), reserved

    def restore(self, key: str, spent: int, ttl_s: int) -> None:
        """What a budget had spent in its period before this process started."""
        self._before[key] = spent
        self._expiry[key] = time.monotonic() + ttl_s

    def _prune(self, now: float) -> None:
        """Forget full buckets (a new one starts full anyway) and budgets past their period."""
        self._buckets = {k: (level, then) for k, (level, then) in self._buckets.items()
                         if now - then < 60.0}
        for key in [k for k, until in self._expiry.items() if until <= now]:
            self._budgets.pop(key, None)
            self._before.pop(key, None)
            del self._expiry[key]

    def _level(self, bucket: Bucket, now: float) -> float:
        state = self._buckets.get(bucket.key)
        if state is None:
            return bucket.capacity
        level, then = state
        return min(bucket.capacity, level + (now - then) * bucket.rate)
