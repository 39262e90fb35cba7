"""``fabrique simulate``: the simulated engine behind its own OpenAI-compatible HTTP server."""

from __future__ import annotations

import hmac
import time

import orjson
from aiohttp import web

from fabrique.simulator.engine import SimDisconnect, SimEngine

ENGINE_KEY = web.AppKey("engine", SimEngine)


def build_app(engine: SimEngine, api_key: str | None = None) -> web.Application:
    """The engine over HTTP; with ``api_key``, requests must carry it (as vLLM's --api-key)."""
    app = web.Application(client_max_size=64 * 1024 * 1024,
                          middlewares=[_require_key(api_key)] if api_key else [])
    app[ENGINE_KEY] = engine
    for endpoint in ("chat/completions", "completions", "embeddings"):
        app.router.add_post(f"/v1/{endpoint}", _handler(endpoint))
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/healthz", _health)
    return app


def _require_key(api_key: str):  # type: ignore[no-untyped-def]
    expected = f"Bearer {api_key}".encode()

    @web.middleware
    async def check(request: web.Request, handler):  # type: ignore[no-untyped-def]
        sent = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if request.path.startswith("/v1/") and not hmac.compare_digest(sent, expected):
            return _json(401, {"error": {"message": "Invalid API key.", "type": "authentication_error",
                                         "param": None, "code": "invalid_api_key"}})
        return await handler(request)

    return check


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _handler(endpoint: str):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.StreamResponse:
        engine = request.app[ENGINE_KEY]
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _json(400, {"error": {"message": "The body is not valid JSON.",
                                         "type": "invalid_request_error", "param": None,
                                         "code": "invalid_json"}})
        answer = await engine.respond(endpoint, body)
        if answer.stream is None:
            return _json(answer.status, answer.body)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            async for payload in answer.stream:
                await response.write(b"data: " + payload + b"\n\n")
        except SimDisconnect:
            # Drop the connection the way a crashed engine would: no [DONE], no clean end.
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    return handle


async def _models(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    names = engine.models or []  # it answers any name, so it lists none in particular
    now = int(time.time())
    return _json(200, {"object": "list", "data": [
        {"id": n, "object": "model", "created": now, "owned_by": "fabrique-simulator"}
        for n in names]})


async def _health(request: web.Request) -> web.Response:
    return _json(200, {"status": "ok", "active_sequences": request.app[ENGINE_KEY].active})
