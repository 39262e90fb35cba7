"""Helpers of the metering tests: usage rows as written, keys, a fast simulated provider."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from fabrique.gateway import Gateway
from fabrique.store.tables import usage

from ..conftest import FAST

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Bonjour, comment ça va ?"}],
        "max_tokens": 12}


def sim(**profile: Any) -> dict[str, Any]:
    return {"name": "sim", "type": "simulated", "profile": {**FAST, **profile},
            "jurisdiction": "FR", "hosting": "self-hosted"}


async def rows(gw: Gateway, expected: int | None = None) -> list[dict[str, Any]]:
    """The usage rows written so far, oldest first; waits (bounded) for ``expected`` rows:
    a request may be finished after the client saw its end."""
    for _ in range(200):
        await gw.metering.usage.flush()
        async with gw.db.engine.connect() as conn:
            found = [dict(r._mapping) for r in
                     (await conn.execute(sa.select(usage).order_by(usage.c.id))).all()]
        if expected is None or len(found) >= expected:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {expected} usage rows, found {len(found)}")


async def auth(gw: Gateway, tenant: str = "acme") -> dict[str, str]:
    _, key = await gw.keys.create_key(tenant)
    return {"Authorization": f"Bearer {key}"}


REDIS = "redis://127.0.0.1:6379/0"


def prefix() -> str:
    """A Redis key prefix of one test's own; ``drop_keys`` deletes its keys after."""
    import secrets
    return "fabrique-test-" + secrets.token_hex(6)


async def drop_keys(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class Proxy:
    """A TCP proxy on loopback in front of Redis, to take Redis away and give it back
    without touching the machine's Redis server (other people use it)."""

    def __init__(self, target_port: int = 6379) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.pipes):
            writer.transport.abort()
        self.pipes.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.pipes |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
