"""Buckets and budgets in Redis, shared by every replica: one Lua script per take and per
settle, so that the check and the take are one atomic step on the server.

Time comes from Redis (``TIME``), not from the replicas, whose clocks may differ.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fabrique.metering.buckets import Bucket, Budget, Verdict

# KEYS: bucket keys, then budget keys. ARGV: #buckets, then (capacity, rate, cost) per
# bucket, then (limit, amount, ttl) per budget.
# Returns {0, level...} admitted; {1, wait, level...} a bucket is short;
# {2, index, spent+reserved} budget `index` (1-based) does not fit.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nb = tonumber(ARGV[1])
local levels, wait = {}, 0
for i = 1, nb do
  local cap, rate, cost = tonumber(ARGV[i*3-1]), tonumber(ARGV[i*3]), tonumber(ARGV[i*3+1])
  local h = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = cap
  if h[1] then level = math.min(cap, tonumber(h[1]) + (now - tonumber(h[2])) * rate) end
  levels[i] = level
  if level < cost then wait = math.max(wait, (cost - level) / rate) end
end
if wait > 0 then
  local out = {1, tostring(wait)}
  for i = 1, nb do out[#out+1] = tostring(levels[i]) end
  return out
end
local base = nb * 3 + 2
for j = 1, #KEYS - nb do
  local limit, amount = tonumber(ARGV[base + (j-1)*3]), tonumber(ARGV[base + (j-1)*3 + 1])
  local h = redis.call('HMGET', KEYS[nb + j], 's', 'r')
  local used = (tonumber(h[1]) or 0) + (tonumber(h[2]) or 0)
  if used + amount > limit then return {2, j, used} end
end
local out = {0}
for i = 1, nb do
  local cap, rate, cost = tonumber(ARGV[i*3-1]), tonumber(ARGV[i*3]), tonumber(ARGV[i*3+1])
  redis.call('HSET', KEYS[i], 'l', tostring(levels[i] - cost), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate * 1000) + 1000)
  out[#out+1] = tostring(levels[i] - cost)
end
for j = 1, #KEYS - nb do
  redis.call('HINCRBY', KEYS[nb + j], 'r', tonumber(ARGV[base + (j-1)*3 + 1]))
  redis.call('EXPIRE', KEYS[nb + j], tonumber(ARGV[base + (j-1)*3 + 2]))
end
return out
"""

# KEYS: bucket keys, then budget keys. ARGV: #buckets, (capacity, rate, refund) per
# bucket, (reserved, used) per budget.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nb = tonumber(ARGV[1])
for i = 1, nb do
  local cap, rate, refund = tonumber(ARGV[i*3-1]), tonumber(ARGV[i*3]), tonumber(ARGV[i*3+1])
  local h = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = cap
  if h[1] then level = math.min(cap, tonumber(h[1]) + (now - tonumber(h[2])) * rate) end
  redis.call('HSET', KEYS[i], 'l', tostring(math.min(cap, level + refund)), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate * 1000) + 1000)
end
local base = nb * 3 + 2
for j = 1, #KEYS - nb do
  local reserved, used = tonumber(ARGV[base + (j-1)*2]), tonumber(ARGV[base + (j-1)*2 + 1])
  local r = redis.call('HINCRBY', KEYS[nb + j], 'r', -reserved)
  if r < 0 then redis.call('HSET', KEYS[nb + j], 'r', 0) end
  redis.call('HINCRBY', KEYS[nb + j], 's', used)
end
return 1
"""


class RedisStore:
    """Buckets and budgets under ``prefix:`` in Redis. Every call is bounded by
    ``timeout_s``; a slow or absent Redis raises (``metering.control`` falls back)."""

    name = "redis"

    def __init__(self, client: Any, prefix: str, timeout_s: float) -> None:
        self.client = client
        self.prefix = prefix + ":"
        self.timeout_s = timeout_s
        self._take = client.register_script(_TAKE)
        self._settle = client.register_script(_SETTLE)

    async def take(self, buckets: list[Bucket], budgets: list[Budget]) -> Verdict:
        keys = [self.prefix + b.key for b in buckets] + [self.prefix + b.key for b in budgets]
        args: list[Any] = [len(buckets)]
        for b in buckets:
            args += (b.capacity, b.rate, b.cost)
        for g in budgets:
            args += (g.limit, g.amount, g.ttl_s)
        async with asyncio.timeout(self.timeout_s):
            out = await self._take(keys=keys, args=args)
        if int(out[0]) == 0:
            return Verdict(True, [float(x) for x in out[1:]])
        if int(out[0]) == 1:
            return Verdict(False, [float(x) for x in out[2:]], retry_after=float(out[1]))
        return Verdict(False, budget=budgets[int(out[1]) - 1], spent=int(out[2]))

    async def settle(self, refunds: list[tuple[Bucket, float]],
                     budgets: list[tuple[Budget, int]]) -> None:
        keys = ([self.prefix + b.key for b, _ in refunds]
                + [self.prefix + g.key for g, _ in budgets])
        args: list[Any] = [len(refunds)]
        for b, refund in refunds:
            args += (b.capacity, b.rate, refund)
        for g, used in budgets:
            args += (g.amount, used)
        async with asyncio.timeout(self.timeout_s):
            await self._settle(keys=keys, args=args)

    async def spent(self, budget: Budget) -> tuple[int, int]:
        async with asyncio.timeout(self.timeout_s):
            spent, reserved = await self.client.hmget(self.prefix + budget.key, "s", "r")
        return int(spent or 0), int(reserved or 0)

    async def ping(self) -> bool:
        async with asyncio.timeout(self.timeout_s):
            return bool(await self.client.ping())
