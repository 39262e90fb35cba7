"""Group commit: concurrent appends share one transaction, and each awaits its commit.

While one transaction is in flight the next appends queue; when it commits they all go
in the next one. Nothing waits on a timer, so a lone request pays one commit, and a busy
gateway pays one commit per batch instead of one per request. The queue is bounded: a
store that cannot keep up refuses appends (``Overloaded``) instead of holding memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("fabrique.ledger")
T = TypeVar("T")


class Overloaded(Exception):
    """Too many appends are waiting for the store."""


class GroupCommit(Generic[T]):
    """Batches ``submit``ted items into calls of ``commit(items) -> indexes``."""

    def __init__(self, commit: Callable[[Sequence[T]], Awaitable[list[int]]],
                 max_batch: int = 1000, max_pending: int = 20_000) -> None:
        self._commit = commit
        self._max_batch, self._max_pending = max_batch, max_pending
        self._pending: list[tuple[T, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # commits made: appends per batch = appends / batches

    @property
    def pending(self) -> int:
        """Appends waiting for a commit (a gauge for the metrics)."""
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-group-commit")

    async def submit(self, item: T) -> int:
        """Queue ``item``; returns its index once committed; raises the commit's error."""
        if self._closing or self._task is None:
            raise Overloaded("the ledger is not running")
        if len(self._pending) >= self._max_pending:
            raise Overloaded(f"{len(self._pending)} appends are waiting for the store")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:self._max_batch]
                del self._pending[:self._max_batch]
                await self._flush(batch)
            if self._closing:
                return

    async def _flush(self, batch: list[tuple[T, asyncio.Future[int]]]) -> None:
        try:
            # Shielded: a cancelled waiter must not cancel a commit the others wait on.
            indexes = await asyncio.shield(self._commit([item for item, _ in batch]))
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        for (_, future), index in zip(batch, indexes, strict=True):
            if not future.done():
                future.set_result(index)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
