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
