"""Admission control: which buckets and budgets a request meets, taking them, settling them.

With ``metering.redis_url`` the buckets and budgets live in Redis and every replica shares
them. When Redis does not answer within ``redis_timeout_s``, this process falls back to
its own (``LocalStore``), raises ``fabrique_limiter_redis_up`` to 0, and checks Redis
every ``redis_retry_s`` to go back to it. Settlements owed to Redis while it was away are
kept (bounded) and paid when it returns, so reservations do not leak.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import contextlib
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fabrique.config import BudgetConfig, LimitConfig, MeteringConfig
from fabrique.errors import BudgetExceeded, RateLimited
from fabrique.metering.buckets import Bucket, Budget, LocalStore, Verdict

if TYPE_CHECKING:
    from fabrique.metering.metrics import Metrics
    from fabrique.metering.redis_store import RedisStore

log = logging.getLogger("fabrique.metering")
_PENDING_MAX = 10_000
_MICRO = 1_000_000


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


@dataclass(frozen=True, slots=True)
class Who:
    """The identities limits and budgets are keyed on."""

    tenant: str
    key: str
    agent: str | None
    model: str

    def of(self, scope: str) -> str | None:
        return {"tenant": self.tenant, "key": self.key, "agent": self.agent,
                "model": self.model}[scope]


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
        self._client: Any = None
        self.enabled = bool(config.limits or config.budgets)

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
        self.metrics.limiter_up(self.redis_up)
        self._watch = asyncio.create_task(self._watch_redis())

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._client is not None:
            await self._client.aclose()

    # -- admission ------------------------------------------------------------------

    def plan(self, who: Who, tokens: int, cost_eur: float, now: datetime) -> tuple[
            list[Bucket], list[Budget]]:
        """The buckets and budgets this request meets, and what it takes from each."""
        buckets: list[Bucket] = []
        for limit in self.config.limits:
            ident = _match(limit, who)
            if ident is None:
                continue
            base = f"rl:{limit.scope}:{ident}"
            if limit.rpm is not None:
                buckets.append(Bucket(f"{base}:rpm", "requests", limit.rpm, limit.rpm / 60, 1))
            if limit.tpm is not None:
                # A request larger than the bucket could never pass: it takes the whole bucket.
                buckets.append(Bucket(f"{base}:tpm", "tokens", limit.tpm, limit.tpm / 60,
                                      min(tokens, limit.tpm)))
        budgets = [_budget(b, ident, tokens, cost_eur, now) for b in self.config.budgets
                   if (ident := _match(b, who)) is not None]
        return buckets, budgets

    async def admit(self, who: Who, tokens: int, cost_eur: float) -> Reservation | None:
        """Take what the request needs; None when no limit or budget applies. A refused
        request gets a reservation with its ``refusal`` (RateLimited or BudgetExceeded)."""
        buckets, budgets = self.plan(who, tokens, cost_eur, datetime.now(UTC))
        if not buckets and not budgets:
            return None
        store, verdict = await self._take(buckets, budgets)
        reservation = Reservation(store, buckets, budgets, verdict.levels, tokens)
        reservation.headers = _ratelimit_headers(buckets, verdict.levels)
        if verdict.admitted:
            self.metrics.decision("admitted")
            return reservation
        reservation.settled = True  # nothing was taken
        if verdict.budget is not None:
            self.metrics.decision("budget_exceeded")
            reservation.refusal = _budget_error(verdict.budget, verdict.spent)
        else:
            self.metrics.decision("rate_limited")
            reservation.refusal = RateLimited(
                f"Rate limit reached for {_which(buckets, verdict)}; retry in "
                f"{verdict.retry_after or 0:.1f} s.", retry_after=verdict.retry_after)
        return reservation

    async def _take(self, buckets: list[Bucket], budgets: list[Budget]) -> tuple[Any, Verdict]:
        if self.redis is not None and self.redis_up:
            try:
                return self.redis, await self.redis.take(buckets, budgets)
            except Exception as exc:
                self._down(exc)
        return self.local, await self.local.take(buckets, budgets)

    async def settle(self, reservation: Reservation, used_tokens: int, cost_eur: float) -> None:
        """Give back what the request did not use; count what it did. Once per reservation."""
        if reservation.settled:
            return
        reservation.settled = True
        refunds = [(b, b.cost - min(used_tokens, b.capacity)) for b in reservation.buckets
                   if b.kind == "tokens"]
        budgets = [(g, _units(g.unit, used_tokens, cost_eur)) for g in reservation.budgets]
        if not refunds and not budgets:
            return
        store = reservation.store
        if store is self.local:
            await self.local.settle(refunds, budgets)
            return
        try:
            await store.settle(refunds, budgets)
        except Exception as exc:
            self._down(exc)
            self._pending.append((refunds, budgets))  # paid when Redis is back

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
                await self.redis.ping()
                while self._pending:
                    refunds, budgets = self._pending[0]
                    await self.redis.settle(refunds, budgets)
                    self._pending.popleft()
            except Exception:
                continue
            log.warning("Redis is back: rate limits and budgets are shared again")
            self.redis_up = True
            self.metrics.limiter_up(True)


def _match(rule: LimitConfig | BudgetConfig, who: Who) -> str | None:
    ident = who.of(rule.scope)
    if ident is None or (rule.name != "*" and rule.name != ident):
        return None
    return ident


def _budget(rule: BudgetConfig, ident: str, tokens: int, cost_eur: float,
            now: datetime) -> Budget:
    if rule.period == "daily":
        period, left_s = now.strftime("%Y-%m-%d"), 86400 - (now.hour * 3600 + now.minute * 60)
    else:
        days = calendar.monthrange(now.year, now.month)[1]
        period, left_s = now.strftime("%Y-%m"), (days - now.day + 1) * 86400
    unit = "eur" if rule.eur is not None else "tokens"
    limit = round(rule.eur * _MICRO) if rule.eur is not None else int(rule.tokens or 0)
    return Budget(f"bg:{rule.scope}:{ident}:{rule.period}:{period}", unit, limit,
                  _units(unit, tokens, cost_eur), left_s + 86400)


def _units(unit: str, tokens: int, cost_eur: float) -> int:
    return math.ceil(cost_eur * _MICRO) if unit == "eur" else tokens


def _which(buckets: list[Bucket], verdict: Verdict) -> str:
    for b, level in zip(buckets, verdict.levels, strict=False):
        if level < b.cost:
            scope, ident, kind = b.key.split(":")[1:4]
            return f"{scope} {ident} ({kind.upper()} {b.capacity:g})"
    return "this request"


def _budget_error(budget: Budget, used: int) -> BudgetExceeded:
    _, scope, ident, period, _ = budget.key.split(":", 4)
    if budget.unit == "eur":
        shown = f"€{used / _MICRO:.4f} of €{budget.limit / _MICRO:g}"
        need = f"€{budget.amount / _MICRO:.4f}"
    else:
        shown, need = f"{used} of {budget.limit} tokens", f"{budget.amount} tokens"
    return BudgetExceeded(
        f"The {period} budget of {scope} {ident} is used up ({shown} spent or reserved); this "
        f"request may use up to {need}. Lower max_tokens, or wait for the next period.")


def _ratelimit_headers(buckets: list[Bucket], levels: list[float]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, from the tightest bucket of each kind."""
    out: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        tightest = min(((b, level) for b, level in zip(buckets, levels, strict=False)
                        if b.kind == kind), key=lambda pair: pair[1] / pair[0].capacity,
                       default=None)
        if tightest is None:
            continue
        b, level = tightest
        out[f"x-ratelimit-limit-{kind}"] = f"{b.capacity:g}"
        out[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(level)))
        out[f"x-ratelimit-reset-{kind}"] = f"{max(0.0, (b.capacity - level) / b.rate):.3g}s"
    return out
