"""Migrations: the head revision is what Database expects; a second open skips Alembic."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from fabrique.store import Database
from fabrique.store.db import SCHEMA_REVISION, alembic_config


def test_schema_revision_is_the_alembic_head():
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_REVISION


async def test_reopening_an_up_to_date_database_does_not_migrate(tmp_path, monkeypatch):
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    db = await Database(url).open()
    await db.close()
    calls = []
    monkeypatch.setattr("fabrique.store.db._upgrade", lambda conn, current: calls.append(conn))
    db = await Database(url).open()
    await db.close()
    assert calls == []


async def test_a_newer_schema_is_left_alone(tmp_path, caplog):
    import sqlalchemy as sa

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    db = await Database(url).open()
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    await db.close()
    db = await Database(url).open()  # an older replica during a rolling upgrade
    await db.close()
    assert "newer than this release" in caplog.text
