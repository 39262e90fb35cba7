"""The provider contract, and the SSE event splitter that providers share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from fabrique.config import OpenAICompatibleProvider, SimulatedProvider


@dataclass(slots=True)
class UpstreamRequest:
    """One call to one deployment: the endpoint path and the JSON payload to send."""

    endpoint: str  # "chat/completions", "completions" or "embeddings"
    payload: dict[str, Any]
    stream: bool
    _bytes: bytes | None = field(default=None, repr=False)

    def body(self) -> bytes:
        if self._bytes is None:
            self._bytes = orjson.dumps(self.payload)
        return self._bytes


@dataclass(slots=True)
class SSEEvent:
    """One Server-Sent Event: its ``event`` name (usually None) and its data bytes."""

    data: bytes
    event: str | None = None


@dataclass(slots=True)
class UpstreamResponse:
    """An upstream's answer once its status is known.

    Exactly one of ``body`` (a whole JSON answer, or an error answer of a stream call)
    and ``events`` (the SSE events of a 200 stream) is set.
    """

    status: int
    body: bytes | None = None
    events: AsyncIterator[SSEEvent] | None = None
    retry_after: float | None = None
    release: Callable[[], Awaitable[None]] | None = None

    def json(self) -> Any:
        try:
            return orjson.loads(self.body or b"")
        except orjson.JSONDecodeError:
            return None

    async def close(self) -> None:
        if self.events is not None and hasattr(self.events, "aclose"):
            await self.events.aclose()
        if self.release is not None:
            await self.release()


class Provider(Protocol):
    """What the router needs of an upstream."""

    name: str
    # Whether to ask for usage in streams (stream_options.include_usage). Some APIs reject
    # the field (and some send usage anyway): their provider config turns it off.
    stream_usage: bool

    async def start(self) -> None:
        """Open pooled resources; called once when the gateway starts."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send one request; return once the status is known.

        Raises ``UpstreamUnavailable`` or ``UpstreamTimeout`` when no answer came.
        """
        ...

    async def close(self) -> None:
        """Release pooled resources."""


class SSESplitter:
    """Cuts a byte stream into SSE events, whatever the chunking and line endings."""

    __slots__ = ("_buf", "_skip_lf")

    def __init__(self) -> None:
        self._buf = b""
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._skip_lf and chunk:
            # The last chunk ended in CR, already taken as a line end: a LF now is its CRLF pair.
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + chunk
        if b"\n\n" not in buf:
            self._buf = buf
            return []
        *blocks, rest = buf.split(b"\n\n")
        self._buf = rest
        events = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events


def _parse_block(block: bytes) -> SSEEvent | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the common case, fast
        return SSEEvent(block[6:])
    data: list[bytes] = []
    name = None
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        key, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if key == b"data":
            data.append(value)
        elif key == b"event":
            name = value.decode("utf-8", "replace")
    if not data:
        return None
    return SSEEvent(b"\n".join(data), name)


def build_provider(config: OpenAICompatibleProvider | SimulatedProvider) -> Provider:
    if isinstance(config, SimulatedProvider):
        from fabrique.providers.simulated import Simulated
        return Simulated(config)
    from fabrique.providers.openai_compatible import OpenAICompatible
    return OpenAICompatible(config)
