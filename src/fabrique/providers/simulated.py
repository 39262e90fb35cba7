"""The ``simulated`` provider: the simulated engine, called in process (no HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from fabrique.config import SimulatedProvider
from fabrique.errors import UpstreamError
from fabrique.providers.base import SSEEvent, UpstreamRequest, UpstreamResponse
from fabrique.simulator import SimDisconnect, SimEngine


class Simulated:
    """A provider whose answers come from an in-process ``SimEngine``."""

    def __init__(self, config: SimulatedProvider) -> None:
        self.name = config.name
        self.stream_usage = True
        self.engine = SimEngine(config.profile, config.faults)

    async def start(self) -> None:
        return None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        answer = await self.engine.respond(request.endpoint, request.payload)
        if answer.stream is None:
            return UpstreamResponse(answer.status, body=orjson.dumps(answer.body))
        return UpstreamResponse(200, events=_events(answer.stream))

    async def close(self) -> None:
        return None


async def _events(stream: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    try:
        async for payload in stream:
            yield SSEEvent(payload)
    except SimDisconnect as exc:
        raise UpstreamError("The upstream stream was interrupted.") from exc
