"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from fabrique import pipeline
from fabrique.api.errors import error_response
from fabrique.errors import (
    BodyTooLarge,
    FabriqueError,
    InvalidField,
    InvalidJSON,
    ModelNotFound,
    RequestError,
)
from fabrique.gateway import Gateway
from fabrique.pipeline.context import RequestContext
from fabrique.pipeline.relay import ClientGone, relay_stream

log = logging.getLogger("fabrique.api")
access = logging.getLogger("fabrique.access")
GATEWAY = web.AppKey("gateway", Gateway)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_DEPTH = 255  # orjson.dumps fails at this depth
_CANCEL_GRACE_S = 5.0


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()


def completion_handler(endpoint: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        received = time.perf_counter()
        request_id = new_request_id()
        headers = {"x-fabrique-request-id": request_id}
        gateway = request.app[GATEWAY]
        ctx: RequestContext | None = None
        try:
            principal = await gateway.keys.authenticate(request.headers.get("Authorization"))
            body = await read_json(request, gateway.config.server.max_body_bytes)
            ctx = RequestContext(gateway, request_id, endpoint, body, principal, received,
                                 declared_class=request.headers.get("x-fabrique-data-class"),
                                 session=request.headers.get("x-fabrique-session-id"),
                                 agent=agent_of(request, gateway),
                                 subject=request.headers.get(gateway.config.ledger.subject_header))
            await pipeline.run(ctx)
        except asyncio.CancelledError:  # the client left (or shutdown) before the answer
            if ctx is not None:
                await _finish_cancelled(ctx, 499)
            raise
        except FabriqueError as error:
            return await _refuse(gateway, ctx, error, headers, received, endpoint)
        except Exception:
            log.exception("internal error in request %s", request_id)
            return await _refuse(gateway, ctx, FabriqueError(
                f"The gateway failed to process the request; quote {request_id} to its operators."),
                headers, received, endpoint)
        assert ctx.deployment is not None and ctx.upstream is not None
        headers["x-fabrique-deployment"] = ctx.deployment.name
        headers["x-fabrique-attempts"] = str(ctx.upstream_calls())
        headers["x-fabrique-data-class"] = ctx.data_class
        headers["x-fabrique-jurisdiction"] = ctx.deployment.residency.jurisdiction or "unknown"
        if ctx.pseudonymized:
            headers["x-fabrique-pseudonymized"] = str(sum(len(found) for found in ctx.scans))
        overhead_ms = (time.perf_counter() - received - ctx.upstream_s) * 1000
        headers["Server-Timing"] = (f"fabrique;dur={overhead_ms:.2f}, "
                                    f"upstream;dur={ctx.upstream_s * 1000:.2f}")
        if ctx.reservation is not None:
            headers.update(ctx.reservation.headers)
        if not ctx.stream:
            try:  # metered and recorded before the body is sent
                await pipeline.finish(ctx, 200, "ok")
            except FabriqueError as error:
                access_log(gateway, request_id, endpoint, ctx, received, error.status, error.code)
                return error_response(error, headers)
            access_log(gateway, request_id, endpoint, ctx, received, 200, None)
            answer = ctx.upstream.body or b""
            if ctx.meter is not None:
                headers.update(ctx.meter.headers())
                answer = with_usage_fields(answer, ctx.meter.usage_fields())
            return web.Response(body=answer, content_type="application/json", headers=headers)
        response = web.StreamResponse(headers={**headers, **_SSE_HEADERS})
        try:
            outcome = await relay_stream(ctx, *_stream_writers(request, response))
        except asyncio.CancelledError:
            await _finish_cancelled(ctx, 200)
            raise
        if outcome != "done":
            await pipeline.finish_quietly(ctx, 200, outcome)
        access_log(gateway, request_id, endpoint, ctx, received, 200, outcome)
        return response

    return handle


async def _finish_cancelled(ctx: RequestContext, status: int) -> None:
    """A cancelled request is finished too, billed for what it generated and its budget
    reservation released: the finishers get one uninterrupted chance, bounded in time."""
    task = asyncio.ensure_future(pipeline.finish_quietly(ctx, status, "cancelled"))
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), _CANCEL_GRACE_S)


async def _refuse(gateway: Gateway, ctx: RequestContext | None, error: FabriqueError,
                  headers: dict[str, str], received: float, endpoint: str) -> web.Response:
    """The error response of a request refused or failed before its answer began."""
    request_id = headers["x-fabrique-request-id"]
    if ctx is not None:
        if ctx.attempts:
            headers["x-fabrique-attempts"] = str(ctx.upstream_calls())
        if ctx.data_class:
            headers["x-fabrique-data-class"] = ctx.data_class
        if ctx.reservation is not None:
            headers.update(ctx.reservation.headers)
        await pipeline.finish_quietly(ctx, error.status, str(error.code))
    access_log(gateway, request_id, endpoint, ctx, received, error.status, error.code)
    return error_response(error, headers)


def agent_of(request: web.Request, gateway: Gateway) -> str | None:
    """The calling agent (``metering.agent_header``), for limits, budgets and reports."""
    agent = request.headers.get(gateway.config.metering.agent_header)
    if agent is None:
        return None
    agent = agent.strip()
    if not agent or len(agent) > 128 or not agent.isprintable():
        raise InvalidField(f"The {gateway.config.metering.agent_header} header must be 1 to "
                           "128 printable characters.", param=gateway.config.metering.agent_header)
    return agent


def with_usage_fields(body: bytes, fields: dict[str, object]) -> bytes:
    """The answer with Fabrique's figures in its ``usage`` object, without parsing it again:
    orjson writes no spaces, and a key's quotes are escaped inside strings, so the bytes
    ``"usage":{`` only occur as the key itself (the last one: usage ends OpenAI answers)."""
    extra = orjson.dumps(fields)[1:-1]
    at = body.rfind(b'"usage":{')
    if at >= 0:
        at += len(b'"usage":{')
        return body[:at] + extra + (b"," if body[at:at + 1] != b"}" else b"") + body[at:]
    end = body.rfind(b"}")
    if end < 0:
        return body
    return body[:end] + (b"," if body[end - 1:end] != b"{" else b"") + b'"usage":{' + extra + b"}}"


_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"}


def _stream_writers(request: web.Request, response: web.StreamResponse) -> tuple[
        Callable[[], Awaitable[None]], Callable[[bytes], Awaitable[None]],
        Callable[[], Awaitable[None]]]:
    """start, write and end of a client's SSE response; a vanished client raises ClientGone."""
    async def start() -> None:
        try:
            await response.prepare(request)
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGone from exc

    async def write(data: bytes) -> None:
        try:
            await response.write(data)
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGone from exc

    async def end() -> None:
        try:
            await response.write_eof()
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGone from exc

    return start, write, end


def access_log(gateway: Gateway, request_id: str, endpoint: str, ctx: RequestContext | None,
               received: float, status: int, outcome: str | None) -> None:
    """One line per request: who, what, where, how it ended; never a prompt or a secret."""
    if not gateway.config.server.access_log:
        return
    ms = (time.perf_counter() - received) * 1000
    if ctx is None:
        access.info("%s %s status=%d code=%s ms=%.1f", request_id, endpoint, status, outcome, ms)
        return
    dep = ctx.deployment.name if ctx.deployment else "-"
    access.info("%s %s tenant=%s key=%s model=%s deployment=%s stream=%s class=%s attempts=%d "
                "status=%d outcome=%s ms=%.1f", request_id, endpoint, ctx.principal.tenant,
                ctx.principal.key_id, ctx.model or "-", dep, "yes" if ctx.stream else "no",
                ctx.data_class or "-", ctx.upstream_calls(), status, outcome or "ok", ms)


async def read_json(request: web.Request, limit: int) -> dict[str, object]:
    """The body as a JSON object, read once, within ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise BodyTooLarge(f"The request body is larger than {limit} bytes.") from exc
    except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a body that is not
        detail = getattr(exc.__cause__, "message", None) or "malformed payload"
        raise RequestError(f"The request body could not be read ({detail}).",
                           code="invalid_body") from exc
    if len(raw) > limit:  # a chunked body has no Content-Length to check up front
        raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
    if not raw:
        raise InvalidJSON("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"The request body is not valid JSON ({exc.msg} at character "
                          f"{exc.pos}).") from exc
    if not isinstance(body, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    # orjson reads 1024 levels of nesting but writes only 254: refuse what cannot be relayed.
    if raw.count(b"[") + raw.count(b"{") >= _MAX_DEPTH:
        try:
            orjson.dumps(body)
        except TypeError as exc:
            raise InvalidJSON(f"The request body is nested more than {_MAX_DEPTH - 1} levels "
                              "deep.") from exc
    return body


async def list_models(request: web.Request) -> web.Response:
    """GET /v1/models, and GET /v1/models/{model} for one."""
    gateway = request.app[GATEWAY]
    headers = {"x-fabrique-request-id": new_request_id()}
    try:
        await gateway.keys.authenticate(request.headers.get("Authorization"))
        wanted = request.match_info.get("model")
        groups = list(gateway.table.groups.values())
        if wanted is not None:
            groups = [g for g in groups if g.name == wanted]
            if not groups:
                raise ModelNotFound(f"The model '{wanted}' does not exist.", param="model")
    except FabriqueError as error:
        return error_response(error, headers)
    data = [{"id": g.name, "object": "model", "created": gateway.started_at, "owned_by": "fabrique",
             "fabrique": {"kind": g.kind, "deployments": [d.name for d in g.deployments]}}
            for g in groups]
    body = data[0] if wanted is not None else {"object": "list", "data": data}
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)
