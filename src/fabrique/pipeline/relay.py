"""Stage 6: relay the upstream's answer, SSE event by event for streams, restoring the
original values of a pseudonymized request (stage 7, ``pipeline.restore``) on the way.

A stream that fails after its first byte (the upstream drops, stalls past ``idle_s`` or
``total_s``, sends an error event, or ends without ``[DONE]``) ends with an error event
in OpenAI's shape and no ``[DONE]``, so a client never mistakes it for a whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from fabrique.errors import FabriqueError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from fabrique.pipeline.context import RequestContext
from fabrique.pipeline.finishers import finish
from fabrique.pipeline.restore import StreamRestore, json_content
from fabrique.providers.base import SSEEvent
from fabrique.providers.errors import upstream_message

log = logging.getLogger("fabrique.relay")

Write = Callable[[bytes], Awaitable[None]]
DONE = b"data: [DONE]\n\n"
_DRAIN_S = 1.0
_CLIENT_GRACE_S = 5.0  # for the error event and the end of a stream


class ClientGone(Exception):
    """The client closed the connection while we were writing to it."""


async def relay_stream(ctx: RequestContext, start: Callable[[], Awaitable[None]],
                       write: Write, end: Callable[[], Awaitable[None]]) -> str:
    """Send the headers (``start``), every upstream event, ``[DONE]`` or an error event, and
    close the client's response (``end``). Returns how it ended: "done", "client_gone",
    "client_too_slow" or the error code sent to the client. A whole stream is finished
    (``pipeline.finish``) before its ``[DONE]``; any other ending is the caller's to finish."""
    upstream, dep = ctx.upstream, ctx.deployment
    assert upstream is not None and upstream.events is not None and dep is not None
    loop = asyncio.get_running_loop()
    # total_s counts from the call that answered, not from earlier failed attempts.
    deadline = ctx.upstream_started + dep.timeouts.total_s - time.perf_counter() + loop.time()
    idle = dep.timeouts.idle_s
    events = upstream.events
    event: SSEEvent | None = ctx.first_event
    ok = done = False
    outcome = "done"
    # Re-arm the idle timer at most every `slack` seconds rather than per chunk (each re-arm
    # cancels a timer and makes one): a stall is still caught within idle_s + slack.
    slack = min(1.0, idle / 10)
    armed = -slack
    reading = False  # what the timer interrupted: the upstream (True) or the client (False)
    batch: list[bytes] = []  # rewritten events not yet written
    restore = (StreamRestore(ctx.vault, json_content(ctx.body))
               if ctx.pseudonymized and ctx.vault is not None else None)
    streams = ctx.gateway.streams
    timer: asyncio.Timeout | None = None
    try:
        await start()
        async with asyncio.timeout(None) as timer:
            streams.add(timer)
            while event is not None:
                if event.data == b"[DONE]":
                    tail = restore.tail() if restore is not None else None
                    if tail is not None:  # held back by a choice that never finished
                        batch += (b"data: ", orjson.dumps({**tail, "model": ctx.model}), b"\n\n")
                    ok = done = True
                    try:  # metered and recorded before the client is told the answer is whole
                        await finish(ctx, 200, "done")
                    except FabriqueError as exc:
                        outcome = await _write_error(write, batch, exc)
                        break
                    if ctx.usage_chunk is not None:
                        _add_figures(ctx, ctx.usage_chunk)
                        batch += (b"data: ", orjson.dumps(ctx.usage_chunk), b"\n\n")
                    batch.append(DONE)
                    await write(b"".join(batch))
                    batch.clear()
                    break
                out = _rewrite(ctx, event, restore)
                if out is not None:
                    batch += (b"data: ", out, b"\n\n")
                # Events that came in one read go out in one write (one send, not one each).
                if batch and not getattr(events, "buffered", 0):
                    await write(b"".join(batch))
                    batch.clear()
                now = loop.time()
                if now - armed >= slack and not ctx.gateway.stopping:
                    timer.reschedule(min(deadline, now + idle + slack))
                    armed = now
                reading = True
                event = await anext(events, None)
                reading = False
        if not done:
            raise UpstreamError(f"The deployment '{dep.name}' ended the stream before [DONE].")
    except TimeoutError:
        if ctx.gateway.stopping:
            ok = True  # the gateway is stopping; the deployment did nothing wrong
            outcome = await _write_error(write, batch, _shutdown_error())
        elif not reading:
            # The client stopped reading: its problem, not the deployment's.
            ok, outcome = True, "client_too_slow"
        elif loop.time() >= deadline - 0.01:
            ok = True  # a long answer hit total_s: the deployment is not unhealthy
            outcome = await _write_error(write, batch, UpstreamTimeout(
                f"The answer took longer than {dep.timeouts.total_s:g} s (the deployment's "
                "total_s); it was cut."))
        else:
            outcome = await _write_error(write, batch, UpstreamTimeout(
                f"The deployment '{dep.name}' stalled in the middle of the stream."))
    except UpstreamError as exc:
        outcome = await _write_error(write, batch, exc)
    except ClientGone:
        ok = True  # the client left; the deployment did nothing wrong
        outcome = "client_gone"
    except asyncio.CancelledError:
        ok = True  # shutting down; the deployment did nothing wrong
        outcome = await _write_error(write, batch, _shutdown_error())
        raise
    except Exception:
        log.exception("relay of request %s failed", ctx.request_id)
        outcome = await _write_error(write, batch, FabriqueError(
            f"The gateway failed while relaying the stream; quote {ctx.request_id}."))
    finally:
        if timer is not None:
            streams.discard(timer)
        dep.inflight -= 1
        if not ok:
            dep.breaker.failure()
        if not done:
            await upstream.close()  # free the upstream connection before waiting on the client
        await _bounded(end)
        if done:
            await _drain(events)
            await upstream.close()
    return outcome


def _shutdown_error() -> UpstreamUnavailable:
    return UpstreamUnavailable("The gateway is shutting down and cut this stream; retry the request.",
                               code="gateway_shutdown")


async def _bounded(action: Callable[[], Awaitable[None]]) -> None:
    """A last write to the client, which must not hang on one that stopped reading."""
    with contextlib.suppress(ClientGone, TimeoutError):
        async with asyncio.timeout(_CLIENT_GRACE_S):
            await action()


async def _drain(events: AsyncIterator[SSEEvent]) -> None:
    """Read the upstream body to its end (it follows [DONE] at once), so that the
    connection goes back to the pool instead of being closed."""
    with contextlib.suppress(TimeoutError, UpstreamError):
        async with asyncio.timeout(_DRAIN_S):
            async for _ in events:
                pass


async def _write_error(write: Write, pending: list[bytes], error: FabriqueError) -> str:
    """The events read before the failure, then the error event."""
    payload = b"".join(pending) + b"data: " + orjson.dumps(error.to_dict()) + b"\n\n"
    await _bounded(lambda: write(payload))
    return str(error.code)


def _add_figures(ctx: RequestContext, chunk: dict[str, Any]) -> None:
    usage = chunk.get("usage")
    if ctx.meter is not None and isinstance(usage, dict):
        usage.update(ctx.meter.usage_fields())


def _rewrite(ctx: RequestContext, event: SSEEvent, restore: StreamRestore | None) -> bytes | None:
    """The chunk to send the client (model name set to the public one, original values
    restored), or None to drop it."""
    if event.event == "error":
        raise UpstreamError(upstream_message(event.data) or "The upstream stream failed.")
    try:
        chunk = orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("The upstream sent a malformed stream chunk.") from exc
    if not isinstance(chunk, dict):
        raise UpstreamError("The upstream sent a malformed stream chunk.")
    if "error" in chunk:
        raise UpstreamError(upstream_message(event.data) or "The upstream stream failed.")
    usage = chunk.get("usage")
    choices = chunk.get("choices")
    if choices and isinstance(choices[0], dict) and choices[0].get("finish_reason") is None:
        ctx.chunks += 1  # the output estimate of a stream that ends without usage
    if usage:
        ctx.usage = usage
    if ctx.usage_injected and "usage" in chunk:
        if not choices:
            return None  # the usage-only chunk this client did not ask for
        del chunk["usage"]
    chunk["model"] = ctx.model
    if usage and not choices:
        ctx.usage_chunk = chunk  # sent after metering, with Fabrique's figures added
        return None
    if restore is not None:
        restore.chunk(chunk)
    return orjson.dumps(chunk)
