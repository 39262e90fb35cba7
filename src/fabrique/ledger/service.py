"""``Ledger``: the audit ledger of one gateway process, over its database.

It owns the signing key, the group commit, and the background work (signing the head as
it grows, purging what retention allows); proofs, exports and erasure go through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from fabrique.config import Config, LedgerConfig
from fabrique.errors import NotFound
from fabrique.ledger import export, merkle, payload_crypto, tenant_export
from fabrique.ledger.group_commit import GroupCommit
from fabrique.ledger.signing import Signer, TreeHead, load_or_create_key, load_private_key, public_key_text
from fabrique.ledger.store import Entry, LedgerStore
from fabrique.store import Database
from fabrique.store.tables import ledger_head, ledger_payloads, ledger_records, ledger_subject_keys

log = logging.getLogger("fabrique.ledger")
_DAY_MS = 86_400_000
_KEY_CACHE_S = 60.0  # another process's erasure applies here within this (see erase)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ledger:
    """Append records, sign heads, prove, export, erase, purge."""

    def __init__(self, config: Config, db: Database) -> None:
        self.config: LedgerConfig = config.ledger
        self.data_dir: Path = config.resolved_data_dir()
        self.db = db
        self.store = LedgerStore(db, self.config.sync, max(10.0, 2 * self.config.commit_timeout_s))
        self.commits: GroupCommit[Entry] = GroupCommit(self.store.append, self.config.max_batch,
                                                       self.config.max_pending)
        self.signer: Signer | None = None
        self.master: bytes = b""
        self.fail_open = 0  # records lost under a fail-open policy: the alarm metric
        self._tasks: list[asyncio.Task[None]] = []
        self._subject_keys: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._tenant_secrets: dict[str, bytes] = {}

    # --- life ------------------------------------------------------------------------

    def load_keys(self) -> None:
        """Read (or make, on first start) the signing and master keys."""
        if self.signer is not None:
            return
        given = self.config.signing_key
        private = (load_private_key(given.get_secret_value(), "ledger.signing_key") if given
                   else load_or_create_key(self.data_dir / "ledger_signing_key.pem"))
        self.signer = Signer(private)
        master = self.config.master_key
        self.master = (payload_crypto.parse_master_key(master.get_secret_value(), "ledger.master_key")
                       if master else payload_crypto.load_or_create_master_key(
                           self.data_dir / "ledger_master_key"))

    async def start(self) -> None:
        self.load_keys()
        if self.db.dialect == "sqlite":
            # WAL: readers (exports, proofs) never block the appender; with synchronous=FULL
            # (sqlite3's default) every commit is still on disk before it returns.
            async with self.db.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        self.commits.start()
        self._tasks = [asyncio.create_task(self._every(self.config.sign_interval_s, self.sign)),
                       asyncio.create_task(self._every(3600.0, self.purge))]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.commits.close()
        await self.store.close()

    async def _every(self, seconds: float, action: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await action()
            except Exception as exc:  # the next round retries; requests report real failures
                log.warning("ledger background %s failed: %s", action.__name__, exc)

    # --- appending ---------------------------------------------------------------------

    async def append(self, entry: Entry) -> int:
        """Commit one record (grouped with concurrent ones); returns its index."""
        return await self.commits.submit(entry)

    def tenant_secret(self, tenant: str) -> bytes:
        secret = self._tenant_secrets.get(tenant)
        if secret is None:
            secret = self._tenant_secrets[tenant] = payload_crypto.tenant_secret(self.master, tenant)
        return secret

    async def subject_key(self, tenant: str, ref: str) -> bytes:
        """The AES key of a subject, created on its first payload. Cached: one database
        round trip per subject per minute, not per request."""
        cached = self._subject_keys.get((tenant, ref))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        key = await self._load_or_create_subject_key(tenant, ref)
        self._subject_keys[tenant, ref] = (time.monotonic() + _KEY_CACHE_S, key)
        return key

    async def _load_or_create_subject_key(self, tenant: str, ref: str) -> bytes:
        where = (ledger_subject_keys.c.tenant == tenant) & (ledger_subject_keys.c.subject_ref == ref)
        for _ in range(2):
            async with self.db.engine.begin() as conn:
                wrapped = (await conn.execute(sa.select(ledger_subject_keys.c.wrapped)
                                              .where(where))).scalar()
                if wrapped is not None:
                    return payload_crypto.unwrap(self.master, wrapped, tenant, ref)
                key = payload_crypto.new_key()
                try:
                    await conn.execute(ledger_subject_keys.insert().values(
                        tenant=tenant, subject_ref=ref, created_ms=now_ms(),
                        wrapped=payload_crypto.wrap(self.master, key, tenant, ref)))
                except IntegrityError:
                    continue  # another process made it first: read theirs
                return key
        raise RuntimeError("could not create a subject key")

    # --- signing and proofs ------------------------------------------------------------

    async def sign(self) -> TreeHead:
        """A signed head of the log as it is now (stored, so later exports carry it)."""
        assert self.signer is not None, "load_keys() first"
        latest = await self.store.latest_head(self.signer.key_id)
        head = await self.store.head()
        if latest is not None and latest.size == head.size:
            return latest
        signed = self.signer.sign(head.size, head.root, now_ms())
        with contextlib.suppress(IntegrityError):  # another process signed this size
            await self.store.save_head(signed)
        return signed

    async def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        """An inclusion proof of record ``index`` in the signed head (or a past ``size``)."""
        head = await self.sign()
        size = head.size if size is None else size
        if not 0 <= index < size <= head.size:
            raise NotFound(f"no record {index} in a log of {size} records (it has {head.size})")
        proof = await merkle.inclusion_proof(self.store.read_nodes, index, size)
        leaf = (await self.store.read_nodes([(0, index)]))[0, index]
        root = head.root if size == head.size else await merkle.root_at(self.store.read_nodes, size)
        found = await self.store.record(index)
        return {"index": index, "size": size, "leaf_hash": leaf.hex(),
                "record": orjson.loads(found[1]) if found and found[1] else None,
                "root_hash": root.hex(), "proof": [h.hex() for h in proof],
                "tree_head": head.as_dict()}

    async def consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        head = await self.sign()
        second = head.size if second is None else second
        if not 0 < first <= second <= head.size:
            raise NotFound(f"no consistency proof from {first} to {second} records (the log has "
                           f"{head.size})")
        read = self.store.read_nodes
        proof = await merkle.consistency_proof(read, first, second)
        old = await self.store.head_at(first, head.key_id)
        return {"first": first, "second": second,
                "first_tree_head": old.as_dict() if old is not None else None,
                "first_root": (await merkle.root_at(read, first)).hex(),
                "second_root": (await merkle.root_at(read, second)).hex(),
                "proof": [h.hex() for h in proof], "tree_head": head.as_dict()}

    def public_key(self) -> dict[str, str]:
        assert self.signer is not None, "load_keys() first"
        return {"public_key": public_key_text(self.signer.public), "key_id": self.signer.key_id,
                "algorithm": "Ed25519"}

    # --- export --------------------------------------------------------------------------

    async def export(self, since_ms: int | None = None) -> AsyncIterator[bytes]:
        """The lines of an export: header, records (with signed checkpoints), signed head."""
        head = await self.sign()
        stored = await self.store.head()
        start = stored.purged_before
        if since_ms is not None:
            start = max(start, await self.store.first_index_since(since_ms))
        start = min(start, head.size)
        prefix_keys = merkle.frontier_nodes(start)
        prefix = await self.store.read_nodes(prefix_keys)
        keys = self.public_key()
        yield export.header_line(start, [prefix[k] for k in prefix_keys], keys["public_key"],
                                 keys["key_id"])
        # At most about a thousand checkpoints per export: enough to locate a change made
        # together with its leaf hash to 0.1 % of the export, cheap to check (a signature
        # and a root each), whatever the signing interval.
        gap = max(1, (head.size - start) // 1000)
        checkpoints, last = [], start
        # Only this key's heads: a process holding another key (a misconfigured replica,
        # a key rotated since) signs heads this export's reader cannot check.
        for cp in await self.store.heads_between(start, head.size - 1, head.key_id):
            if cp.size - last >= gap:
                checkpoints.append(cp)
                last = cp.size
        async for index, record, leaf in self.store.records_with_leaves(start, head.size):
            if record is None:
                raise NotFound(f"record {index} was purged while exporting; export again")
            yield export.record_line(index, record, leaf)
            while checkpoints and checkpoints[0].size <= index + 1:
                cp = checkpoints.pop(0)
                if cp.size == index + 1:
                    yield export.head_line(cp)
        yield export.head_line(head)

    async def tenant_export(self, tenant: str, since_ms: int | None = None) -> AsyncIterator[bytes]:
        """A tenant's records, each with its inclusion proof in one signed head."""
        head = await self.sign()
        start = (await self.store.head()).purged_before
        if since_ms is not None:
            start = max(start, await self.store.first_index_since(since_ms))
        keys = self.public_key()
        yield tenant_export.header_line(tenant, head, keys["public_key"], keys["key_id"])
        async for index, record, leaf in self.store.records_with_leaves(start, head.size, tenant):
            if record is None:
                continue
            proof = await merkle.inclusion_proof(self.store.read_nodes, index, head.size)
            yield tenant_export.record_line(index, record, leaf, proof)

    # --- erasure, payloads, retention ------------------------------------------------------

    async def erase(self, subject: str, tenant: str | None = None) -> list[str]:
        """Delete the subject's keys (in ``tenant``, or in every tenant): their payloads
        can no longer be read; the tree still verifies. Returns the tenants concerned."""
        async with self.db.engine.begin() as conn:
            tenants = [tenant] if tenant is not None else list((await conn.execute(
                sa.select(ledger_subject_keys.c.tenant).distinct())).scalars())
            erased = []
            for name in tenants:
                ref = payload_crypto.subject_ref(self.tenant_secret(name), subject)
                result = await conn.execute(ledger_subject_keys.delete().where(
                    (ledger_subject_keys.c.tenant == name) & (ledger_subject_keys.c.subject_ref == ref)))
                if result.rowcount:
                    erased.append(name)
                self._subject_keys.pop((name, ref), None)
        return erased

    async def payload(self, index: int) -> dict[str, Any]:
        """The decrypted payload of record ``index``; raises PayloadUnreadable once erased."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(ledger_payloads, ledger_records.c.request_id).join(
                ledger_records, ledger_records.c.idx == ledger_payloads.c.idx).where(
                ledger_payloads.c.idx == index))).first()
            if row is None:
                raise NotFound(f"record {index} has no stored payload (none kept, or purged)")
            wrapped = (await conn.execute(sa.select(ledger_subject_keys.c.wrapped).where(
                (ledger_subject_keys.c.tenant == row.tenant)
                & (ledger_subject_keys.c.subject_ref == row.subject_ref)))).scalar()
        if wrapped is None:
            raise payload_crypto.PayloadUnreadable(f"the payload of record {index} was erased "
                                                   "(its subject's key is deleted)")
        key = payload_crypto.unwrap(self.master, wrapped, row.tenant, row.subject_ref)
        plain = payload_crypto.decrypt(key, row.blob, row.request_id.encode())
        result: dict[str, Any] = orjson.loads(plain)
        return result

    async def purge(self, now: int | None = None) -> dict[str, int]:
        """Apply retention: drop expired payloads, and the content of records older than
        ``retention.records_days`` (oldest first; their leaf hashes stay)."""
        now = now_ms() if now is None else now
        # A day of slack: record times follow indexes only to within commit delays, and a
        # record must never go before its minimum retention.
        days = self.config.retention.records_days + 1
        cutoff = await self.store.first_index_since(now - days * _DAY_MS)
        async with self.db.engine.begin() as conn:
            payloads = await conn.execute(ledger_payloads.delete().where(
                ledger_payloads.c.expires_ms < now))
            before = (await conn.execute(sa.select(ledger_head.c.purged_before))).scalar_one()
            records = 0
            if cutoff > before:
                done = await conn.execute(ledger_records.update().where(
                    ledger_records.c.idx >= before, ledger_records.c.idx < cutoff).values(record=None))
                records = done.rowcount
                await conn.execute(ledger_head.update().values(purged_before=cutoff))
        return {"payloads": payloads.rowcount, "records": records}
