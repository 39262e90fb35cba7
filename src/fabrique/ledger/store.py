"""The ledger's tables: appending a batch under the sequencer's lock, and reading back.

The sequencer is the single row of ``ledger_head``. An append locks it (``SELECT … FOR
UPDATE`` on PostgreSQL; on SQLite a first write takes the database's write lock), reads
the size, writes the records, the subtrees they complete and the new head, and commits:
indexes are handed out under the lock, in the same transaction as the rows, so two
processes can neither skip an index (gap) nor give one twice (fork).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.merkle import Frontier, Node, frontier_nodes
from fabrique.ledger.signing import TreeHead
from fabrique.store import Database
from fabrique.store.tables import (
    ledger_head,
    ledger_nodes,
    ledger_payloads,
    ledger_records,
    ledger_tree_heads,
)

_HEAD = 1
_IN_CHUNK = 400  # keys per (level, idx) IN (…) query


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

    def __init__(self, db: Database) -> None:
        self.db = db
        # The right edge after this process's last append; reused when no other process
        # appended since (the head's size tells), else read again under the lock.
        self._frontier: Frontier | None = None

    async def append(self, entries: Sequence[Entry]) -> list[int]:
        """Append in one transaction; returns the indexes given, in order."""
        try:
            async with self.db.engine.begin() as conn:
                size = await self._lock_head(conn)
                frontier = await self._frontier_at(conn, size)
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
                await conn.execute(ledger_records.insert(), records)
                await conn.execute(ledger_nodes.insert(), nodes)
                if payloads:
                    await conn.execute(ledger_payloads.insert(), payloads)
                await conn.execute(ledger_head.update().where(ledger_head.c.id == _HEAD)
                                   .values(size=frontier.size, root=frontier.root()))
        except BaseException:
            self._frontier = None
            raise
        self._frontier = frontier
        return list(range(size, size + len(entries)))

    async def _lock_head(self, conn: AsyncConnection) -> int:
        if self.db.dialect == "postgresql":
            query = sa.select(ledger_head.c.size).where(ledger_head.c.id == _HEAD).with_for_update()
        else:
            # SQLite has no row locks: this write takes the database's write lock first, so
            # the read below cannot be overtaken by another process's append.
            await conn.execute(ledger_head.update().where(ledger_head.c.id == _HEAD)
                               .values(size=ledger_head.c.size))
            query = sa.select(ledger_head.c.size).where(ledger_head.c.id == _HEAD)
        return int((await conn.execute(query)).scalar_one())

    async def _frontier_at(self, conn: AsyncConnection, size: int) -> Frontier:
        cached = self._frontier
        if cached is not None and cached.size == size:
            return cached.copy()
        keys = frontier_nodes(size)
        found = await _read_nodes(conn, keys)
        return Frontier(size, [found[k] for k in keys])

    async def read_nodes(self, keys: Sequence[Node]) -> Mapping[Node, bytes]:
        async with self.db.engine.connect() as conn:
            return await _read_nodes(conn, keys)

    async def head(self) -> Head:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(ledger_head).where(ledger_head.c.id == _HEAD))).one()
        return Head(row.size, row.root, row.purged_before)

    async def save_head(self, head: TreeHead) -> None:
        async with self.db.engine.begin() as conn:
            exists = (await conn.execute(sa.select(ledger_tree_heads.c.size).where(
                ledger_tree_heads.c.size == head.size))).first()
            if exists is None:
                await conn.execute(ledger_tree_heads.insert().values(
                    size=head.size, root=head.root, timestamp_ms=head.timestamp_ms,
                    key_id=head.key_id, signature=head.signature))

    async def latest_head(self) -> TreeHead | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(ledger_tree_heads).order_by(
                ledger_tree_heads.c.size.desc()).limit(1))).first()
        return None if row is None else _tree_head(row)

    async def heads_between(self, after: int, upto: int) -> list[TreeHead]:
        """Signed heads with after < size ≤ upto, by size: an export's checkpoints."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(ledger_tree_heads).where(
                ledger_tree_heads.c.size > after, ledger_tree_heads.c.size <= upto).order_by(
                ledger_tree_heads.c.size))).all()
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

    async def leaf_hashes(self, start: int, end: int) -> dict[int, bytes]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(ledger_nodes.c.idx, ledger_nodes.c.hash).where(
                ledger_nodes.c.level == 0, ledger_nodes.c.idx >= start,
                ledger_nodes.c.idx < end))).all()
        return {r.idx: r.hash for r in rows}

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
        """The first index whose record time is at or after ``time_ms`` (the size if none)."""
        async with self.db.engine.connect() as conn:
            found = (await conn.execute(sa.select(sa.func.min(ledger_records.c.idx)).where(
                ledger_records.c.time_ms >= time_ms))).scalar()
            if found is None:
                found = (await conn.execute(sa.select(ledger_head.c.size))).scalar_one()
        return int(found)


async def _read_nodes(conn: AsyncConnection, keys: Sequence[Node]) -> dict[Node, bytes]:
    out: dict[Node, bytes] = {}
    keys = list(keys)
    for i in range(0, len(keys), _IN_CHUNK):
        part = keys[i:i + _IN_CHUNK]
        rows = await conn.execute(sa.select(ledger_nodes.c.level, ledger_nodes.c.idx,
                                            ledger_nodes.c.hash).where(
            sa.tuple_(ledger_nodes.c.level, ledger_nodes.c.idx).in_(part)))
        out.update({(r.level, r.idx): r.hash for r in rows})
    return out


def _tree_head(row: sa.Row[tuple[int, bytes, int, str, bytes]]) -> TreeHead:
    return TreeHead(row.size, row.root, row.timestamp_ms, row.key_id, row.signature)
