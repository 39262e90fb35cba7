"""Ledger fixtures: a migrated database on SQLite or the real PostgreSQL, and a Ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fabrique.ledger.service import Ledger
from fabrique.store import Database

from ..conftest import PG_URL, make_config


async def drop_ledger(url: str) -> None:
    """Downgrade to 0002, before the ledger (and the usage table after it), so that the next
    open migrates them afresh; keys and tenants are left alone."""
    db = Database(url)
    try:
        await db.downgrade("0002")
    finally:
        await db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        return
    await drop_ledger(PG_URL)
    yield PG_URL
    await drop_ledger(PG_URL)


@pytest.fixture
async def ledger(db_url: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    db = await Database(db_url).open()
    led = Ledger(make_config(tmp_path), db)
    await led.start()
    yield led
    await led.close()
    await db.close()
