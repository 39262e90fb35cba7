"""SQLite appends (and proof reads) on a connection of their own, in a thread of their own.

Through SQLAlchemy and aiosqlite every statement of an append is several hops between the
event loop and aiosqlite's thread (cursor, execute, fetch, close), about a millisecond for
one commit of a handful of statements, on every request. Here the whole transaction is one
function run in this writer's thread: one hop per group commit. ``BEGIN IMMEDIATE`` takes
the database's write lock before the head is read, so gateways sharing the file (several
processes on one machine) still take turns: no gap, no fork.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class SqliteWriter:
    """A private sqlite3 connection (WAL, the ledger's ``synchronous``) in a private thread."""

    def __init__(self, path: str, synchronous: str) -> None:
        self._path, self._synchronous = path, synchronous
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the writer's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")  # another process's commit: wait for it
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._conn = conn
        return fn(self._conn)

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None
        if self._conn is not None:
            await self.run(shut)
        self._executor.shutdown(wait=True)
