"""Two gateway processes sharing the machine's Redis: one limit's worth admitted between
them, a budget never overshot by more than one reservation and settled to the real usage,
and local limits while Redis is away (through a proxy this test controls)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
import yaml

from fabrique.config import MeteringConfig
from fabrique.keys import KeyStore
from fabrique.metering.control import Controller
from fabrique.metering.metrics import Metrics
from fabrique.metering.plan import Who
from fabrique.store import Database
from fabrique.store.tables import usage

from ..conftest import FAST
from .helpers import CHAT, REDIS, Proxy, drop_keys, prefix

SRC = Path(__file__).resolve().parents[2] / "src"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replicas:
    def __init__(self, tmp_path: Path, metering: dict, profile: dict | None = None) -> None:
        self.db_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
        self.config = tmp_path / "fabrique.yaml"
        self.config.write_text(yaml.safe_dump({
            "data_dir": str(tmp_path / "data"), "database": {"url": self.db_url},
            "server": {"admin_token": "test-admin-token", "access_log": False},
            "providers": [{"name": "sim", "type": "simulated", "profile": {**FAST, **(profile or {})},
                           "jurisdiction": "FR"}],
            "models": [{"name": "chat", "deployments": [{"provider": "sim", "model": "sim-chat"}]}],
            # A generous Redis timeout: on a busy machine a slow answer would count as Redis
            # down and each process would admit on its own (the fallback, tested apart).
            "metering": {"usage_flush_s": 0.05, "redis_retry_s": 0.1, "redis_timeout_s": 2.0,
                         **metering}}))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    async def start(self, n: int = 2) -> str:
        db = await Database(self.db_url).open()
        try:
            _, key = await KeyStore(db).create_key("acme")
        finally:
            await db.close()
        for _ in range(n):
            port = _port()
            self.procs.append(self._spawn(port))
            self.urls.append(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            for url in self.urls:
                for _ in range(300):
                    try:
                        async with session.get(url + "/healthz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError(f"gateway at {url} did not start")
        return key

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "fabrique", "serve", "--config", str(self.config),
             "--port", str(port)], env={**os.environ, "PYTHONPATH": str(SRC)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)

    async def usage_rows(self, expected: int) -> list[dict]:
        engine = Database(self.db_url).engine
        try:
            for _ in range(300):
                async with engine.connect() as conn:
                    found = [dict(r._mapping) for r in (await conn.execute(sa.select(usage))).all()]
                if len(found) >= expected:
                    return found
                await asyncio.sleep(0.05)
        finally:
            await engine.dispose()
        raise AssertionError(f"expected {expected} usage rows, found {len(found)}")


async def _hit(urls: list[str], key: str, n: int, body: dict = CHAT) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session:
        async def one(i: int) -> int:
            async with session.post(urls[i % len(urls)] + "/v1/chat/completions", json=body,
                                    headers=headers) as resp:
                await resp.read()
                return resp.status
        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture
async def key_prefix():
    name = prefix()
    yield name
    await drop_keys(name)


async def test_two_processes_admit_one_limit_and_survive_redis_going_away(tmp_path, key_prefix):
    proxy = Proxy()
    await proxy.start()
    replicas = Replicas(tmp_path, {"redis_url": proxy.url, "redis_prefix": key_prefix,
                                   "limits": [{"scope": "tenant", "rpm": 40}]})
    try:
        key = await replicas.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        statuses = await _hit(replicas.urls, key, 120)
        elapsed = loop.time() - started
        assert set(statuses) == {200, 429}
        assert 40 <= statuses.count(200) <= 40 + int(elapsed * 40 / 60) + 1
        for url in replicas.urls:
            assert await _metric(url, "fabrique_limiter_redis_up") == 1

        await proxy.stop()  # Redis goes away: each process limits on its own
        assert set(await _hit(replicas.urls, key, 4)) == {200}
        for url in replicas.urls:
            assert await _metric(url, "fabrique_limiter_redis_up") == 0
            assert await _metric(url, "fabrique_limiter_fallbacks_total") == 1

        await proxy.start()  # and comes back
        for url in replicas.urls:
            for _ in range(200):
                if await _metric(url, "fabrique_limiter_redis_up") == 1:
                    break
                await asyncio.sleep(0.05)
            assert await _metric(url, "fabrique_limiter_redis_up") == 1
        # Shared again: the bucket in Redis is still empty.
        assert set(await _hit(replicas.urls, key, 4)) == {429}
    finally:
        replicas.stop()
        if proxy.server is not None and proxy.server.is_serving():
            await proxy.stop()


async def test_a_budget_shared_by_two_processes_is_not_overshot(tmp_path, key_prefix):
    budget = {"scope": "tenant", "period": "monthly", "tokens": 600}
    replicas = Replicas(tmp_path, {"redis_url": REDIS, "redis_prefix": key_prefix,
                                   "budgets": [budget]})
    try:
        key = await replicas.start()
        statuses = await _hit(replicas.urls, key, 200)
        assert statuses.count(200) > 0 and statuses.count(429) > 0
        rows = await replicas.usage_rows(200)
    finally:
        replicas.stop()
    used = sum(r["input_tokens"] + r["output_tokens"] for r in rows)
    reservation = max(r["input_tokens"] for r in rows) + CHAT["max_tokens"]
    assert used <= 600 + reservation
    assert {r["outcome"] for r in rows} == {"ok", "budget_exceeded"}
    reader = Controller(MeteringConfig.model_validate(
        {"redis_url": REDIS, "redis_prefix": key_prefix, "budgets": [budget]}), Metrics())
    await reader.start()
    try:
        _, (counter,) = reader.planner.plan(Who("acme", "", None, "chat"), 0, 0.0, datetime.now(UTC))
        assert await reader.spent(counter) == (used, 0)  # settled to the real usage
    finally:
        await reader.close()


async def test_a_client_leaving_a_stream_is_billed_for_what_it_got(tmp_path):
    """As served by ``fabrique serve`` (aiohttp's run_app, which does not cancel handlers):
    the relay sees the closed connection, and the stream is metered as client_gone."""
    replicas = Replicas(tmp_path, {}, profile={"decode_ms_per_token": 20.0})
    try:
        key = await replicas.start(1)
        headers = {"Authorization": f"Bearer {key}"}
        body = {**CHAT, "stream": True, "max_tokens": 300}
        async with aiohttp.ClientSession() as session, session.post(
                replicas.urls[0] + "/v1/chat/completions", headers=headers, json=body) as resp:
            seen = 0
            async for line in resp.content:
                seen += line.startswith(b"data: {")
                if seen == 5:
                    break
            resp.close()
        (row,) = await replicas.usage_rows(1)
    finally:
        replicas.stop()
    assert row["outcome"] in ("client_gone", "client_too_slow")
    assert seen <= row["output_tokens"] < 300 and row["estimated"] is True
