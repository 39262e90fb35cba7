"""The ledger's tables: appending a batch under the sequencer's lock, and reading back.

The sequencer is the single row of ``ledger_head``. An append locks it (``SELECT … FOR
UPDATE`` on PostgreSQL; on SQLite a first write takes the database's write lock), reads
the size, writes the records, the subtrees they complete and the new head, and commits:
indexes are handed out under the lock, in the same transaction as the rows, so two
processes can neither skip an index (gap) nor give one twice (fork).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.merkle import Frontier, Node, frontier_nodes, root_at
from fabrique.ledger.pg_writer import PgReader, PgWriter
from fabrique.ledger.signing import TreeHead
from fabrique.ledger.sqlite_writer import SqliteWriter
from fabrique.store import Database
from fabrique.store.tables import (
    ledger_head,
    ledger_nodes,
    ledger_payloads,
    ledger_records,
    ledger_tree_heads,
)

_HEAD = 1
_IN_CHUNK = 200  # keys per query (SQLite allows 32766 parameters; PostgreSQL 65535)


@dataclass(slots=True)
class Entry:
    """One record to append: its canonical bytes and what is indexed beside it."""

    record: bytes
    time_ms: int
    tenant: str
    request_id: str
    payload: tuple[str, bytes, int] | None = None  # (subject_ref, blob, expires_ms)


@dataclass(frozen=True, slots=True)
class Head:
    size: int
    root: bytes
    purged_before: int


class LedgerStore:
    """Reads and writes the ledger tables of one database."""

    def __init__(self, db: Database, sync: str = "full", timeout_s: float = 5.0) -> None:
        self.db = db
        # PostgreSQL: synchronous_commit=off for ledger commits only (see ledger.sync).
        self._relaxed = sync == "normal" and db.dialect == "postgresql"
        # The right edge after this process's last append; reused when no other process
        # appended since (the head's size tells), else read again under the lock.
        self._frontier: Frontier | None = None
        path = sa.engine.make_url(db.url).database if db.dialect == "sqlite" else None
        self._sqlite = (SqliteWriter(path, "NORMAL" if sync == "normal" else "FULL")
                        if path and path != ":memory:" else None)
        self._reader = SqliteWriter(path, "NORMAL") if self._sqlite is not None and path else None
        asyncpg_url = db.dialect == "postgresql" and db.engine.dialect.driver == "asyncpg"
        self._pg = PgWriter(db.url, sync == "normal", timeout_s) if asyncpg_url else None
        self._pg_reader = PgReader(db.url, timeout_s) if asyncpg_url else None

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        """Append in one transaction; returns the indexes given, in order."""
        try:
            if self._sqlite is not None:
                size, frontier = await self._sqlite.run(
                    lambda conn: _append_sqlite(conn, entries, self._frontier))
            elif self._pg is not None:
                size, frontier = await self._pg.append(entries, self._frontier, _rows)
            else:
                size, frontier = await self._append_sqlalchemy(entries)
        except BaseException:
            self._frontier = None
            raise
        self._frontier = frontier
        return list(range(size, size + len(entries)))

    async def _append_sqlalchemy(self, entries: Sequence[Entry]) -> tuple[int, Frontier]:
        async with self.db.engine.begin() as conn:
            if self._relaxed:
                await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            size, frontier = await self._claim(conn, len(entries))
            records, nodes, payloads = _rows(size, frontier, entries)
            await conn.execute(ledger_records.insert(), records)
            await conn.execute(ledger_nodes.insert(), nodes)
            if payloads:
                await conn.execute(ledger_payloads.insert(), payloads)
        return size, frontier

    async def close(self) -> None:
        for own in (self._sqlite, self._reader):
            if own is not None:
                await own.close()
        for pg in (self._pg, self._pg_reader):
            if pg is not None:
                await pg.close()

    async def _claim(self, conn: AsyncConnection, count: int) -> tuple[int, Frontier]:
        """Lock the head and move its size on by ``count``; returns the old size and the
        frontier there. The common case (no other process appended since this one's last
        commit) is one statement: an UPDATE conditional on the size this process knows."""
        cached = self._frontier
        head = ledger_head.c
        if cached is not None:
            moved = await conn.execute(ledger_head.update().where(
                head.id == _HEAD, head.size == cached.size).values(size=cached.size + count))
            if moved.rowcount == 1:
                return cached.size, cached.copy()
        # Another process appended (or this one just started): lock, then read. (SQLite's
        # in-memory databases come here: a first write takes the database's write lock.)
        if self.db.dialect == "postgresql":
            query = sa.select(head.size).where(head.id == _HEAD).with_for_update()
        else:
            await conn.execute(ledger_head.update().where(head.id == _HEAD).values(size=head.size))
            query = sa.select(head.size).where(head.id == _HEAD)
        size = int((await conn.execute(query)).scalar_one())
        await conn.execute(ledger_head.update().where(head.id == _HEAD).values(size=size + count))
        return size, await self._frontier_at(conn, size)

    async def _frontier_at(self, conn: AsyncConnection, size: int) -> Frontier:
        cached = self._frontier
        if cached is not None and cached.size == size:
            return cached.copy()
        keys = frontier_nodes(size)
        found = await _read_nodes(conn, keys)
        return Frontier(size, [found[k] for k in keys])

    async def read_nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        """Stored subtree hashes: what every proof reads, on connections of the ledger's own
        (SQLite: one thread hop, where aiosqlite's several were most of a proof's time;
        PostgreSQL: one prepared statement); never the appender's, so proofs do not queue
        behind commits."""
        if self._reader is not None:
            wanted = list(keys)
            return await self._reader.run(lambda conn: _read_nodes_sqlite(conn, wanted))
        if self._pg_reader is not None:
            return await self._pg_reader.read_nodes(keys)
        async with self.db.engine.connect() as conn:
            return await _read_nodes(conn, keys)

    async def head(self) -> Head:
        """The committed size and its root (computed from the stored subtrees: the head row
        holds no root, which saves every append a write)."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(ledger_head).where(ledger_head.c.id == _HEAD))).one()

            async def read(keys: Sequence[Node]) -> Mapping[Node, bytes]:
                return await _read_nodes(conn, keys)
            root = await root_at(read, row.size)
        return Head(row.size, root, row.purged_before)

    async def save_head(self, head: TreeHead) -> None:
        async with self.db.engine.begin() as conn:
            exists = (await conn.execute(sa.select(ledger_tree_heads.c.size).where(
                ledger_tree_heads.c.size == head.size,
                ledger_tree_heads.c.key_id == head.key_id))).first()
            if exists is None:
                await conn.execute(ledger_tree_heads.insert().values(
                    size=head.size, root=head.root, timestamp_ms=head.timestamp_ms,
                    key_id=head.key_id, signature=head.signature))

    async def latest_head(self, key_id: str) -> TreeHead | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(ledger_tree_heads).where(
                ledger_tree_heads.c.key_id == key_id).order_by(
                ledger_tree_heads.c.size.desc()).limit(1))).first()
        return None if row is None else _tree_head(row)

    async def head_at(self, size: int, key_id: str) -> TreeHead | None:
        """The head of exactly this size signed by ``key_id``, if there is one."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(ledger_tree_heads).where(
                ledger_tree_heads.c.size == size, ledger_tree_heads.c.key_id == key_id))).first()
        return None if row is None else _tree_head(row)

    async def heads_between(self, after: int, upto: int, key_id: str) -> list[TreeHead]:
        """Heads signed by ``key_id`` with after < size ≤ upto, by size: an export's checkpoints."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(ledger_tree_heads).where(
                ledger_tree_heads.c.size > after, ledger_tree_heads.c.size <= upto,
                ledger_tree_heads.c.key_id == key_id).order_by(ledger_tree_heads.c.size))).all()
        return [_tree_head(r) for r in rows]

    async def records(self, start: int, end: int, tenant: str | None = None,
                      chunk: int = 5000) -> AsyncIterator[tuple[int, bytes | None]]:
        """(index, record bytes) for start ≤ index < end, in order, read in chunks."""
        while start < end:
            query = sa.select(ledger_records.c.idx, ledger_records.c.record).where(
                ledger_records.c.idx >= start, ledger_records.c.idx < end)
            if tenant is not None:
                query = query.where(ledger_records.c.tenant == tenant)
            async with self.db.engine.connect() as conn:
                rows = (await conn.execute(query.order_by(ledger_records.c.idx).limit(chunk))).all()
            for row in rows:
                yield row.idx, row.record
            if len(rows) < chunk:
                return
            start = rows[-1].idx + 1

    async def records_with_leaves(self, start: int, end: int, tenant: str | None = None,
                                  chunk: int = 5000) -> AsyncIterator[tuple[int, bytes | None, bytes]]:
        """(index, record bytes, stored leaf hash) for start ≤ index < end, in order. The
        leaf hash is the one stored at append time, not recomputed: a record edited in the
        database afterwards no longer matches it, and the verifier names that record."""
        r, n = ledger_records.c, ledger_nodes.c
        while start < end:
            query = sa.select(r.idx, r.record, n.hash).join(
                ledger_nodes, (n.level == 0) & (n.idx == r.idx)).where(r.idx >= start, r.idx < end)
            if tenant is not None:
                query = query.where(r.tenant == tenant)
            async with self.db.engine.connect() as conn:
                rows = (await conn.execute(query.order_by(r.idx).limit(chunk))).all()
            for row in rows:
                yield row.idx, row.record, row.hash
            if len(rows) < chunk:
                return
            start = rows[-1].idx + 1

    async def record(self, index: int) -> tuple[str, bytes | None] | None:
        """(tenant, record bytes) of one index, or None."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(ledger_records.c.tenant, ledger_records.c.record)
                                      .where(ledger_records.c.idx == index))).first()
        return None if row is None else (row.tenant, row.record)

    async def find(self, request_id: str) -> int | None:
        async with self.db.engine.connect() as conn:
            return (await conn.execute(sa.select(ledger_records.c.idx).where(
                ledger_records.c.request_id == request_id))).scalar()

    async def first_index_since(self, time_ms: int) -> int:
        """The first index whose record time is at or after ``time_ms`` (the size if none),
        by binary search over the index: about 24 primary-key lookups at 10M records, where
        an index on time would cost every append. Record times follow the index to within
        the commit delay between gateways, so the boundary is right to a few milliseconds."""
        async with self.db.engine.connect() as conn:
            lo = 0
            hi = int((await conn.execute(sa.select(ledger_head.c.size))).scalar_one())
            query = sa.select(ledger_records.c.time_ms).where(ledger_records.c.idx == sa.bindparam("i"))
            while lo < hi:
                mid = (lo + hi) // 2
                if (await conn.execute(query, {"i": mid})).scalar_one() < time_ms:
                    lo = mid + 1
                else:
                    hi = mid
        return lo


def _rows(size: int, frontier: Frontier, entries: Sequence[Entry]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``entries`` appended at ``size``: records, the subtrees they complete
    (``frontier`` moves on), encrypted payloads."""
    records, nodes, payloads = [], [], []
    for offset, entry in enumerate(entries):
        index = size + offset
        leaf = record_leaf_hash(index, entry.record)
        nodes += [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in frontier.append(leaf)]
        records.append({"idx": index, "time_ms": entry.time_ms, "tenant": entry.tenant,
                        "request_id": entry.request_id, "record": entry.record})
        if entry.payload is not None:
            ref, blob, expires = entry.payload
            payloads.append({"idx": index, "tenant": entry.tenant, "subject_ref": ref,
                             "blob": blob, "expires_ms": expires})
    return records, nodes, payloads


_ROWS_PER_INSERT = 400  # within SQLite's 32,766 parameters for every table here


def _insert(conn: sqlite3.Connection, table: str, columns: tuple[str, ...],
            rows: list[dict[str, Any]]) -> None:
    """The rows as multi-row INSERTs. sqlite3 releases the GIL around every step, so an
    executemany of n rows handed the GIL to the event loop and back n times per table: a
    thread switch each, which cost the gateway more CPU than the writes themselves."""
    one = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start:start + _ROWS_PER_INSERT]
        conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                     + ", ".join(one for _ in part), [row[c] for row in part for c in columns])


def _append_sqlite(conn: sqlite3.Connection, entries: Sequence[Entry],
                   cached: Frontier | None) -> tuple[int, Frontier]:
    """The append transaction on the writer's own connection (in its thread)."""
    conn.execute("BEGIN IMMEDIATE")  # the write lock first: the size read below stays true
    try:
        size = conn.execute("SELECT size FROM ledger_head WHERE id = ?", (_HEAD,)).fetchone()[0]
        if cached is not None and cached.size == size:
            frontier = cached.copy()
        else:
            keys = frontier_nodes(size)
            found = {}
            for key in keys:
                row = conn.execute("SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?",
                                   key).fetchone()
                found[key] = bytes(row[0])
            frontier = Frontier(size, [found[k] for k in keys])
        records, nodes, payloads = _rows(size, frontier, entries)
        _insert(conn, "ledger_records", ("idx", "time_ms", "tenant", "request_id", "record"), records)
        _insert(conn, "ledger_nodes", ("level", "idx", "hash"), nodes)
        _insert(conn, "ledger_payloads", ("idx", "tenant", "subject_ref", "blob", "expires_ms"),
                payloads)
        conn.execute("UPDATE ledger_head SET size = ? WHERE id = ?", (frontier.size, _HEAD))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return size, frontier


async def _read_nodes(conn: AsyncConnection, keys: Sequence[Node]) -> dict[Node, bytes]:
    out: dict[Node, bytes] = {}
    keys = list(keys)
    for i in range(0, len(keys), _IN_CHUNK):
        part = keys[i:i + _IN_CHUNK]
        params = tuple(v for key in part for v in key)
        rows: Any = await conn.exec_driver_sql(_nodes_query(conn.dialect.paramstyle, len(part)),
                                               params)
        out.update({(row[0], row[1]): bytes(row[2]) for row in rows})
    return out


def _read_nodes_sqlite(conn: sqlite3.Connection, keys: Sequence[Node]) -> dict[Node, bytes]:
    out: dict[Node, bytes] = {}
    for i in range(0, len(keys), _IN_CHUNK):
        part = keys[i:i + _IN_CHUNK]
        rows = conn.execute(_nodes_query("qmark", len(part)), [v for key in part for v in key])
        out.update({(row[0], row[1]): bytes(row[2]) for row in rows})
    return out


@functools.cache
def _nodes_query(paramstyle: str, count: int) -> str:
    """``SELECT … WHERE (level = ? AND idx = ?) OR …`` for ``count`` keys, as driver SQL.

    Proofs run this on every call, so it skips SQLAlchemy's compiler (a different statement
    for each number of keys) and is built once per size; both SQLite and PostgreSQL answer
    the OR of key equalities from the primary key (a row-value IN made SQLite scan)."""
    if paramstyle == "qmark":
        terms = ["(level = ? AND idx = ?)"] * count
    elif paramstyle in ("numeric_dollar", "numeric"):
        mark = "$" if paramstyle == "numeric_dollar" else ":"
        terms = [f"(level = {mark}{2 * k + 1} AND idx = {mark}{2 * k + 2})" for k in range(count)]
    else:  # format / pyformat
        terms = ["(level = %s AND idx = %s)"] * count
    return "SELECT level, idx, hash FROM ledger_nodes WHERE " + " OR ".join(terms)


def _tree_head(row: sa.Row[tuple[int, bytes, int, str, bytes]]) -> TreeHead:
    return TreeHead(row.size, row.root, row.timestamp_ms, row.key_id, row.signature)
