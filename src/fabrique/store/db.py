"""The database handle: one async engine, migrations on open."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from fabrique.errors import StoreError

log = logging.getLogger("fabrique.store")
MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. When the database is already there, Alembic is not even imported
# (it and Mako stay resident otherwise: about 11 MiB). A test keeps this equal to the head.
SCHEMA_REVISION = "0004"
# Any constant: several replicas starting together take turns to migrate PostgreSQL.
_MIGRATION_LOCK = 0x46414252


def _create_file(path: str) -> None:
    """The SQLite file and its folder, readable by this user only (keys' hashes and tenants
    live there)."""
    try:
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create the database {path}: {exc.strerror or exc}; set "
                         "FABRIQUE_HOME or data_dir to a writable folder, or database.url") from exc


class Database:
    """An async SQLAlchemy engine with the schema migrated to the latest revision."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = sa.engine.make_url(url).database
            if path and path != ":memory:":
                _create_file(path)
            self.engine: AsyncEngine = create_async_engine(url)
        else:
            self.engine = create_async_engine(url, pool_size=5, max_overflow=10,
                                              pool_pre_ping=True, pool_timeout=5,
                                              connect_args={"timeout": 5})

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def open(self) -> Database:
        try:
            async with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                                       {"k": _MIGRATION_LOCK})
                current = await _current_revision(conn)
                if current != SCHEMA_REVISION:
                    await conn.run_sync(_upgrade, current)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot open the database {self.safe_url}: {exc}") from exc
        return self

    async def downgrade(self, revision: str) -> None:
        """Undo the migrations after ``revision`` (their own ``downgrade``), if the schema is
        past it: tests and benchmarks that start a part of the schema afresh."""
        async with self.engine.begin() as conn:
            current = await _current_revision(conn)
            if current is not None and current > revision:
                await conn.run_sync(_downgrade, revision)

    async def ping(self, timeout_s: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(timeout_s), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    @property
    def safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    async def close(self) -> None:
        await self.engine.dispose()


async def _current_revision(conn: AsyncConnection) -> str | None:
    def read(sync_conn: Connection) -> str | None:
        if not sa.inspect(sync_conn).has_table("alembic_version"):
            return None
        return sync_conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return await conn.run_sync(read)


def alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(conn: Connection, current: str | None) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config()
    known = {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}
    if current is not None and current not in known:
        # A newer release migrated this database (a rolling upgrade): run on, do not touch it.
        log.warning("database schema %s is newer than this release's %s; not migrating",
                    current, SCHEMA_REVISION)
        return
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def _downgrade(conn: Connection, revision: str) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, revision)
