"""The ``openai_compatible`` provider: one pooled aiohttp session per upstream."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

import aiohttp

from fabrique.config import OpenAICompatibleProvider
from fabrique.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from fabrique.providers.base import SSEEvent, SSESplitter, UpstreamRequest, UpstreamResponse


class OpenAICompatible:
    """Any upstream that speaks the OpenAI HTTP API."""

    def __init__(self, config: OpenAICompatibleProvider) -> None:
        self.name = config.name
        self.stream_usage = config.stream_usage
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key is not None:
            self.headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            t = self.config.timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.config.max_connections,
                                               ttl_dns_cache=300),
                # The router enforces first-token and total deadlines per deployment;
                # this is the connect bound and a safety net.
                # sock_connect only: `connect` would also count the wait for a free pooled
                # connection, our own queue, against the upstream.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=t.connect_s),
                headers=self.headers, skip_auto_headers=("User-Agent",),
                auto_decompress=True)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._session is None:
            await self.start()
        assert self._session is not None
        url = f"{self.base_url}/{request.endpoint}"
        try:
            try:
                resp = await self._session.post(url, data=request.body())
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise  # no connection could be made at all: nothing stale to replace
                # Most often a pooled keep-alive connection that the upstream had just closed
                # (uvicorn does so after a failed stream): nothing was answered, send once more.
                resp = await self._session.post(url, data=request.body())
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"{self.name}: no connection within the connect timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(f"{self.name}: cannot reach the upstream "
                                      f"({type(exc).__name__})") from exc
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        streaming = request.stream and resp.status == 200 and resp.content_type in (
            "text/event-stream", "application/x-ndjson", "text/plain")
        if not streaming:
            try:
                body = await resp.read()
            except aiohttp.ClientError as exc:
                raise UpstreamUnavailable(f"{self.name}: the answer was cut off") from exc
            finally:
                resp.release()
            return UpstreamResponse(resp.status, body=body, retry_after=retry_after)
        return UpstreamResponse(200, events=_events(resp, self.name), retry_after=retry_after,
                                release=_releaser(resp))

    async def list_models(self) -> set[str] | None:
        """The model ids the upstream lists at GET /models, or None if it lists none."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        async with self._session.get(f"{self.base_url}/models",
                                     timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return None
            data = await resp.json(content_type=None)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return None
        return {m["id"] for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Events:
    """The SSE events of one upstream stream. ``buffered`` counts events already read and
    not yet taken, so that the relay can send what arrived together in one write."""

    __slots__ = ("_chunks", "_name", "_pending", "_resp", "_splitter")

    def __init__(self, resp: aiohttp.ClientResponse, name: str) -> None:
        self._resp = resp
        self._name = name
        self._splitter = SSESplitter()
        self._pending: deque[SSEEvent] = deque()
        self._chunks = resp.content.iter_any().__aiter__()

    @property
    def buffered(self) -> int:
        return len(self._pending)

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> SSEEvent:
        pending = self._pending
        while not pending:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._resp.release()  # read to the end: the connection goes back to the pool
                raise
            except (aiohttp.ClientError, ConnectionError) as exc:
                self._resp.release()
                raise UpstreamError(f"{self._name}: the stream was interrupted") from exc
            pending.extend(self._splitter.feed(chunk))
        return pending.popleft()

    async def aclose(self) -> None:
        self._resp.release()


def _events(resp: aiohttp.ClientResponse, name: str) -> AsyncIterator[SSEEvent]:
    return _Events(resp, name)


def _releaser(resp: aiohttp.ClientResponse):  # type: ignore[no-untyped-def]
    async def release() -> None:
        resp.close()
    return release


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
