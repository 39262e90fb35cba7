"""Which rate-limit buckets and budget counters a request meets, and what it takes from each.

Rules are matched once per identity (tenant, key, agent, model; cached, bounded, since
agents are named by clients) and the budget periods once a minute, not per request.
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fabrique.config import BudgetConfig, LimitConfig, MeteringConfig
from fabrique.metering.buckets import Bucket, Budget

MICRO = 1_000_000  # budgets in euros are counted in micro-euros
KEPT_AFTER_S = 86400  # a budget counter outlives its period by a day, then goes
_RULES_CACHE = 10_000


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


class Planner:
    def __init__(self, config: MeteringConfig) -> None:
        self.config = config
        self._rules: dict[Who, tuple[list[tuple[str, str, int]],
                                     list[tuple[str, BudgetConfig]]]] = {}
        self._periods_until = 0.0
        self._period_cache: dict[str, tuple[str, int]] = {}

    def plan(self, who: Who, tokens: int, cost_eur: float,
             now: datetime | None = None) -> tuple[list[Bucket], list[Budget]]:
        """The buckets and budgets this request meets, and what it takes from each."""
        rules = self._rules.get(who)
        if rules is None:
            if len(self._rules) >= _RULES_CACHE:
                self._rules.clear()  # identities come from clients (agents): stay bounded
            rules = self._rules[who] = self._match_rules(who)
        limits, budget_rules = rules
        buckets = [Bucket(key, kind, capacity, capacity / 60,
                          1 if kind == "requests" else min(tokens, capacity))
                   for key, kind, capacity in limits]
        # A request larger than a TPM bucket could never pass: it takes the whole bucket.
        if not budget_rules:
            return buckets, []
        periods = self._periods(now)
        budgets = []
        for base, rule in budget_rules:
            period, left_s = periods[rule.period]
            unit = unit_of(rule)
            limit = round(rule.eur * MICRO) if rule.eur is not None else int(rule.tokens or 0)
            budgets.append(Budget(f"{base}:{period}", unit, limit, units(unit, tokens, cost_eur),
                                  left_s + KEPT_AFTER_S))
        return buckets, budgets

    def _match_rules(self, who: Who) -> tuple[list[tuple[str, str, int]],
                                               list[tuple[str, BudgetConfig]]]:
        limits: list[tuple[str, str, int]] = []
        for limit in self.config.limits:
            ident = _match(limit, who)
            if ident is None:
                continue
            base = f"rl:{limit.scope}:{ident}"
            if limit.rpm is not None:
                limits.append((f"{base}:rpm", "requests", limit.rpm))
            if limit.tpm is not None:
                limits.append((f"{base}:tpm", "tokens", limit.tpm))
        budgets = [(budget_base(b, ident), b) for b in self.config.budgets
                   if (ident := _match(b, who)) is not None]
        return limits, budgets

    def _periods(self, now: datetime | None) -> dict[str, tuple[str, int]]:
        """The current day and month (UTC) and the seconds left in each; computed once a
        minute, not per request."""
        if now is None:
            if time.time() < self._periods_until:
                return self._period_cache
            now = datetime.now(UTC)
            self._periods_until = (time.time() // 60 + 1) * 60
            self._period_cache = periods(now)
            return self._period_cache
        return periods(now)


def _match(rule: LimitConfig | BudgetConfig, who: Who) -> str | None:
    ident = who.of(rule.scope)
    if ident is None or (rule.name != "*" and rule.name != ident):
        return None
    return ident


def budget_base(rule: BudgetConfig, ident: str) -> str:
    """A budget counter's key but for its period: ``bg:tenant:acme:daily``."""
    return f"bg:{rule.scope}:{ident}:{rule.period}"


def unit_of(rule: BudgetConfig) -> str:
    return "eur" if rule.eur is not None else "tokens"


def period_start(now: datetime, period: str) -> datetime:
    """Where the current day or month (UTC) began."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "daily" else day.replace(day=1)


def periods(now: datetime) -> dict[str, tuple[str, int]]:
    """The current day and month (UTC), as budget keys name them, and the seconds left in each."""
    day_left = 86400 - (now.hour * 3600 + now.minute * 60)
    days = calendar.monthrange(now.year, now.month)[1]
    return {"daily": (now.strftime("%Y-%m-%d"), day_left),
            "monthly": (now.strftime("%Y-%m"), (days - now.day) * 86400 + day_left)}


def units(unit: str, tokens: int, cost_eur: float) -> int:
    return math.ceil(cost_eur * MICRO) if unit == "eur" else tokens
