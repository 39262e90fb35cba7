"""PostgreSQL appends on one asyncpg connection of their own: one statement per commit.

Through SQLAlchemy an append is BEGIN, the claim of the head, two INSERTs and COMMIT: five
round trips. Here the common case (no other process appended since this one's last
commit) is a single statement, run as its own transaction: a data-modifying CTE claims the
head with a conditional UPDATE and inserts the rows only if that claim succeeded (arrays
``unnest``-ed, so a batch of any size is still one statement). When another gateway
appended in between, the claim matches nothing and the append is redone the careful way:
``SELECT … FOR UPDATE`` on the head, read the frontier, insert, move the head. Either way
the indexes are handed out in the transaction that writes them: no gap, no fork.

The connection is the ledger's alone, so ``ledger.sync: normal`` can set
``synchronous_commit=off`` on it without touching anybody else's commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa

from fabrique.ledger.merkle import Frontier, Node, frontier_nodes

_INSERTS = """
r AS (INSERT INTO ledger_records (idx, time_ms, tenant, request_id, record)
      SELECT * FROM unnest($3::bigint[], $4::bigint[], $5::varchar[], $6::varchar[], $7::bytea[])
      {guard}),
n AS (INSERT INTO ledger_nodes (level, idx, hash)
      SELECT * FROM unnest($8::smallint[], $9::bigint[], $10::bytea[]) {guard}),
p AS (INSERT INTO ledger_payloads (idx, tenant, subject_ref, blob, expires_ms)
      SELECT * FROM unnest($11::bigint[], $12::varchar[], $13::varchar[], $14::bytea[],
                           $15::bigint[]) {guard})
"""
# $1: the count, $2: the size this process believes the log has.
_FAST = ("WITH claim AS (UPDATE ledger_head SET size = size + $1 WHERE id = 1 AND size = $2 "
         "RETURNING size), " + _INSERTS.format(guard="WHERE EXISTS (SELECT 1 FROM claim)")
         + "SELECT count(*) FROM claim")
# Under the head's row lock: $2 is the size read, $1 the count.
_LOCKED = ("WITH " + _INSERTS.format(guard="")
           + "UPDATE ledger_head SET size = $2::bigint + $1::bigint WHERE id = 1")


class PgWriter:
    """Appends for one process; reconnects after a failure."""

    def __init__(self, url: str, relaxed: bool, timeout_s: float) -> None:
        dsn = sa.engine.make_url(url).set(drivername="postgresql")
        self._dsn = dsn.render_as_string(hide_password=False)
        self._settings = {"synchronous_commit": "off"} if relaxed else {}
        self._timeout = timeout_s
        self._conn: Any = None

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, timeout=self._timeout,
                                               command_timeout=self._timeout,
                                               server_settings=self._settings)
        return self._conn

    async def append(self, entries: Sequence[Any], cached: Frontier | None,
                     rows: Any) -> tuple[int, Frontier]:
        """``rows(size, frontier, entries)`` builds the rows (``store._rows``)."""
        try:
            conn = await self._connection()
            if cached is not None:
                frontier = cached.copy()
                args = _arrays(*rows(cached.size, frontier, entries))
                if await conn.fetchval(_FAST, len(entries), cached.size, *args) == 1:
                    return cached.size, frontier
            async with conn.transaction():
                size = await conn.fetchval("SELECT size FROM ledger_head WHERE id = 1 FOR UPDATE")
                frontier = await _frontier(conn, size)
                args = _arrays(*rows(size, frontier, entries))
                await conn.execute(_LOCKED, len(entries), size, *args)
            return size, frontier
        except BaseException:
            await self.close()  # a broken connection is not reused
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()


async def _frontier(conn: Any, size: int) -> Frontier:
    keys = frontier_nodes(size)
    found = {}
    for level, idx in keys:
        found[level, idx] = bytes(await conn.fetchval(
            "SELECT hash FROM ledger_nodes WHERE level = $1 AND idx = $2", level, idx))
    return Frontier(size, [found[k] for k in keys])


def _arrays(records: list[dict[str, Any]], nodes: list[dict[str, Any]],
            payloads: list[dict[str, Any]]) -> list[list[Any]]:
    """Column arrays, in the order of the statements' $3 … $15."""
    return [[r[c] for r in records] for c in ("idx", "time_ms", "tenant", "request_id", "record")] \
        + [[n[c] for n in nodes] for c in ("level", "idx", "hash")] \
        + [[p[c] for p in payloads] for c in ("idx", "tenant", "subject_ref", "blob", "expires_ms")]


class PgReader:
    """Proof reads on a small asyncpg pool of the ledger's own: one prepared statement
    (the keys as two arrays, joined to the primary key), planned once per connection,
    whatever the number of keys; a proof costs one round trip."""

    _QUERY = ("SELECT n.level, n.idx, n.hash FROM unnest($1::smallint[], $2::bigint[]) "
              "AS k(level, idx) JOIN ledger_nodes n ON n.level = k.level AND n.idx = k.idx")

    def __init__(self, url: str, timeout_s: float) -> None:
        dsn = sa.engine.make_url(url).set(drivername="postgresql")
        self._dsn = dsn.render_as_string(hide_password=False)
        self._timeout = timeout_s
        self._pool: Any = None

    async def read_nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=4,
                                                   timeout=self._timeout,
                                                   command_timeout=self._timeout)
        rows = await self._pool.fetch(self._QUERY, [k[0] for k in keys], [k[1] for k in keys])
        return {(row[0], row[1]): bytes(row[2]) for row in rows}

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
