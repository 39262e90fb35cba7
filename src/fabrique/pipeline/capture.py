"""Stage 5b: keep a stream's answer for the audit payload, when the tenant keeps payloads.

The relay writes events as they come and keeps none, so a stream's answer would be lost
to the ledger. When the tenant's ``ledger.payloads`` is not ``none``, this wraps the
upstream's events in ``Captured``: every event passes through unchanged and its data is
kept (as the deployment sent it: placeholders, if the request went pseudonymized, are
not restored), up to the size of a request body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fabrique.pipeline.context import RequestContext
from fabrique.providers.base import SSEEvent


class Captured:
    """The upstream's events, unchanged, with their data kept in ``chunks``."""

    def __init__(self, events: AsyncIterator[SSEEvent], first: SSEEvent | None, limit: int) -> None:
        self._events = events
        self.chunks: list[bytes] = []
        self.truncated = False
        self._room = limit
        if first is not None:
            self._keep(first)

    def __aiter__(self) -> Captured:
        return self

    async def __anext__(self) -> SSEEvent:
        event = await anext(self._events)
        self._keep(event)
        return event

    def _keep(self, event: SSEEvent) -> None:
        if event.data == b"[DONE]" or self.truncated:
            return
        if len(event.data) > self._room:
            self.truncated = True
            return
        self._room -= len(event.data)
        self.chunks.append(event.data)

    @property
    def buffered(self) -> int:  # the relay batches writes by it
        return int(getattr(self._events, "buffered", 0))

    async def aclose(self) -> None:
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


async def capture(ctx: RequestContext) -> None:
    upstream = ctx.upstream
    if not ctx.stream or upstream is None or upstream.events is None:
        return
    config = ctx.gateway.config.ledger
    if not config.enabled or config.tenant(ctx.principal.tenant)[0] == "none":
        return
    upstream.events = Captured(upstream.events, ctx.first_event,
                               ctx.gateway.config.server.max_body_bytes)
