"""Ledger fixtures: a migrated database on SQLite or the real PostgreSQL, and a Ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from fabrique.ledger.service import Ledger
from fabrique.store import Database

from ..conftest import LEDGER_TABLES, PG_URL, make_config


async def drop_ledger(url: str) -> None:
    """Remove the ledger's tables and those of later migrations (usage, 0004), as
    downgrading to 0002 would, so the next open migrates them afresh; keys and tenants are
    left alone."""
    engine = Database(url).engine
    try:
        async with engine.begin() as conn:
            for table in (*LEDGER_TABLES, "usage"):
                await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            if await conn.run_sync(lambda c: sa.inspect(c).has_table("alembic_version")):
                await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002' "
                                           "WHERE version_num IN ('0003', '0004')"))
    finally:
        await engine.dispose()


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
