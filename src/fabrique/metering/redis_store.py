"""Buckets and budgets in Redis, shared by every replica: one Lua script, so that the check
and the take are one atomic step on the server.

Time comes from Redis (``TIME``), not from the replicas, whose clocks may differ.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fabrique.metering.buckets import Bucket, Budget, Verdict

# One script settles what is owed (earlier requests' refunds and budget uses) and takes
# what a new request needs, so that a request costs one round trip. KEYS: settled buckets,
# settled budgets, taken buckets, taken budgets. ARGV: their four counts, then
# (capacity, rate, refund) per settled bucket, (reserved, used, ttl) per settled budget,
# (capacity, rate, cost) per taken bucket, (limit, amount, ttl) per taken budget.
# Returns {0, level...} admitted; {1, wait, level...} a bucket is short;
# {2, index, spent+reserved} taken budget `index` (1-based) does not fit.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local sb, sg = tonumber(ARGV[1]), tonumber(ARGV[2])
local tb, tg = tonumber(ARGV[3]), tonumber(ARGV[4])
local a, k = 5, 1
local function level_of(key, cap, rate)
  local h = redis.call('HMGET', key, 'l', 't')
  if h[1] then return math.min(cap, tonumber(h[1]) + (now - tonumber(h[2])) * rate) end
  return cap
end
local function put(key, cap, rate, level)
  redis.call('HSET', key, 'l', tostring(level), 't', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(cap / rate * 1000) + 1000)
end
for i = 1, sb do
  local cap, rate, refund = tonumber(ARGV[a]), tonumber(ARGV[a+1]), tonumber(ARGV[a+2])
  put(KEYS[k], cap, rate, math.min(cap, level_of(KEYS[k], cap, rate) + refund))
  a, k = a + 3, k + 1
end
for j = 1, sg do
  local reserved, used = tonumber(ARGV[a]), tonumber(ARGV[a+1])
  if reserved ~= 0 then  -- (-0 would reach Redis as "-0", not an integer)
    local r = redis.call('HINCRBY', KEYS[k], 'r', 0 - reserved)
    if r < 0 then redis.call('HSET', KEYS[k], 'r', 0) end
  end
  if used ~= 0 then redis.call('HINCRBY', KEYS[k], 's', used) end
  if redis.call('TTL', KEYS[k]) < 0 then redis.call('EXPIRE', KEYS[k], tonumber(ARGV[a+2])) end
  a, k = a + 3, k + 1
end
local ta, tk = a, k
local levels, wait = {}, 0
for i = 1, tb do
  local cap, rate, cost = tonumber(ARGV[a]), tonumber(ARGV[a+1]), tonumber(ARGV[a+2])
  levels[i] = level_of(KEYS[k], cap, rate)
  if levels[i] < cost then wait = math.max(wait, (cost - levels[i]) / rate) end
  a, k = a + 3, k + 1
end
if wait > 0 then
  local out = {1, tostring(wait)}
  for i = 1, tb do out[#out+1] = tostring(levels[i]) end
  return out
end
for j = 1, tg do
  local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a+1])
  local h = redis.call('HMGET', KEYS[k], 's', 'r')
  local used = (tonumber(h[1]) or 0) + (tonumber(h[2]) or 0)
  if used + amount > limit then return {2, j, used} end
  a, k = a + 3, k + 1
end
a, k = ta, tk
local out = {0}
for i = 1, tb do
  local cap, rate, cost = tonumber(ARGV[a]), tonumber(ARGV[a+1]), tonumber(ARGV[a+2])
  put(KEYS[k], cap, rate, levels[i] - cost)
  out[#out+1] = tostring(levels[i] - cost)
  a, k = a + 3, k + 1
end
for j = 1, tg do
  redis.call('HINCRBY', KEYS[k], 'r', tonumber(ARGV[a+1]))
  redis.call('EXPIRE', KEYS[k], tonumber(ARGV[a+2]))
  a, k = a + 3, k + 1
end
return out
"""

Owed = tuple[list[tuple[Bucket, float]], list[tuple[Budget, int]]]


def _verdict(out: list[Any], budgets: list[Budget]) -> Verdict:
    if int(out[0]) == 0:
        return Verdict(True, [float(x) for x in out[1:]])
    if int(out[0]) == 1:
        return Verdict(False, [float(x) for x in out[2:]], retry_after=float(out[1]))
    return Verdict(False, budget=budgets[int(out[1]) - 1], spent=int(out[2]))


class RedisStore:
    """Buckets and budgets under ``prefix:`` in Redis. Every call is bounded by
    ``timeout_s``; a slow or absent Redis raises (``metering.control`` falls back)."""

    name = "redis"

    def __init__(self, client: Any, prefix: str, timeout_s: float) -> None:
        self.client = client
        self.prefix = prefix + ":"
        self.timeout_s = timeout_s
        self._script = client.register_script(_SCRIPT)
        # While a call is on its way, the admissions made in the same turn of the event loop
        # go out as one pipeline: one write and one read for all of them, where each system
        # call is the cost. When Redis is idle, a call goes at once.
        self._queued: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Future[None]] = set()  # strong references while they run
        self._inflight = 0  # calls on their way to Redis

    async def take(self, buckets: list[Bucket], budgets: list[Budget],
                   owed: Owed | None = None) -> Verdict:
        """Settle ``owed`` (when given) and take what a request needs, in one call."""
        keys, args = self._owed(owed or ([], []))
        p = self.prefix
        keys += [p + b.key for b in buckets] + [p + b.key for b in budgets]
        args[2:4] = [len(buckets), len(budgets)]
        for b in buckets:
            args += (b.capacity, b.rate, b.cost)
        for g in budgets:
            args += (g.limit, g.amount, g.ttl_s)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._inflight and not self._queued:
            # Redis is idle: waiting for company would only add latency.
            await self._run([(keys, args, future)])
            return _verdict(future.result(), budgets)
        self._queued.append((keys, args, future))
        if len(self._queued) == 1:  # the first of this turn sends for all, no task needed
            try:
                await asyncio.sleep(0)  # the other admissions of this turn join the queue
            except asyncio.CancelledError:
                self._send()  # hand the queue to a task, or the others would wait forever
                raise
            queued, self._queued = self._queued, []
            if len(queued) == 1:
                await self._run(queued)
            else:  # shielded: the others' answers must not fail if this request is cancelled
                await asyncio.shield(self._run(queued))
        return _verdict(await future, budgets)

    def _send(self) -> None:
        queued, self._queued = self._queued, []
        task = asyncio.ensure_future(self._run(queued))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, queued: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        self._inflight += 1
        try:
            await self._call(queued)
        finally:
            self._inflight -= 1

    async def _call(self, queued: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                if len(queued) == 1:
                    keys, args, _ = queued[0]
                    results = [await self._script(keys=keys, args=args)]
                else:
                    results = await self._pipeline(queued)
        except BaseException as exc:
            for *_, future in queued:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception)
                                         else ConnectionError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), result in zip(queued, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(self, queued: list[tuple[list[str], list[Any], asyncio.Future[Any]]]
                        ) -> list[Any]:
        from redis.exceptions import NoScriptError

        results: list[Any] = [None] * len(queued)
        todo = list(range(len(queued)))
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for i in todo:
                keys, args, _ = queued[i]
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            for i, result in zip(todo, await pipe.execute(raise_on_error=False), strict=True):
                results[i] = result
            # A restarted or flushed Redis forgot the script: load it, redo only those.
            todo = [i for i in todo if isinstance(results[i], NoScriptError)]
            if not todo or attempt == 2:
                break
            await self.client.script_load(_SCRIPT)
        return results

    async def settle(self, refunds: list[tuple[Bucket, float]],
                     budgets: list[tuple[Budget, int]]) -> None:
        keys, args = self._owed((refunds, budgets))
        async with asyncio.timeout(self.timeout_s):
            await self._script(keys=keys, args=args)

    def _owed(self, owed: Owed) -> tuple[list[str], list[Any]]:
        refunds, budgets = owed
        p = self.prefix
        keys = [p + b.key for b, _ in refunds] + [p + g.key for g, _ in budgets]
        args: list[Any] = [len(refunds), len(budgets), 0, 0]
        for b, refund in refunds:
            args += (b.capacity, b.rate, refund)
        for g, used in budgets:
            args += (g.amount, used, g.ttl_s)
        return keys, args

    async def spent(self, budget: Budget) -> tuple[int, int]:
        async with asyncio.timeout(self.timeout_s):
            spent, reserved = await self.client.hmget(self.prefix + budget.key, "s", "r")
        return int(spent or 0), int(reserved or 0)

    async def ping(self) -> bool:
        async with asyncio.timeout(self.timeout_s):
            return bool(await self.client.ping())
