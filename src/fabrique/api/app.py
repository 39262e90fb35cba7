"""Build the aiohttp application: routes, start-up and shutdown."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from fabrique.api import admin
from fabrique.api.errors import error_response
from fabrique.api.openai import GATEWAY, completion_handler, list_models, new_request_id
from fabrique.api.usage import own_usage
from fabrique.errors import FabriqueError, MethodNotAllowed, NotFound
from fabrique.gateway import Gateway


def build_app(gateway: Gateway) -> web.Application:
    # Body size is enforced by read_json with a clean 413; aiohttp's own limit is a backstop.
    app = web.Application(client_max_size=gateway.config.server.max_body_bytes + 1,
                          handler_args={"max_field_size": 16384, "max_line_size": 16384})
    app[GATEWAY] = gateway
    gateway.started_at = int(time.time())
    for endpoint in ("chat/completions", "completions", "embeddings"):
        app.router.add_post(f"/v1/{endpoint}", completion_handler(endpoint))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", list_models)
    app.router.add_get("/v1/fabrique/usage", own_usage)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if gateway.config.metering.telemetry.metrics:
        app.router.add_get("/metrics", metrics)
    admin.add_routes(app)
    app.router.add_route("*", r"/{tail:[\s\S]*}", not_found)  # "." would miss a decoded %0A

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await gateway.start()
        yield
        await gateway.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    db_ok = await gateway.db.ping()
    deployments = {d.name: d.breaker.state for g in gateway.table.groups.values()
                   for d in g.deployments}
    ready = db_ok and (not deployments or any(s != "open" for s in deployments.values()))
    body = {"status": "ready" if ready else "not_ready", "database": "ok" if db_ok else "down",
            "deployments": deployments}
    return web.Response(status=200 if ready else 503, body=orjson.dumps(body),
                        content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics (``fabrique.metering.metrics``); the admin token when configured."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    gateway = request.app[GATEWAY]
    if gateway.config.metering.telemetry.metrics_admin_only:
        try:
            gateway.admin_token.check(request.headers.get("Authorization"))
        except FabriqueError as error:
            return error_response(error)
    return web.Response(body=generate_latest(gateway.metering.metrics.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


async def not_found(request: web.Request) -> web.Response:
    """The catch-all route: 405 for a known path asked with another method, else 404."""
    headers = {"x-fabrique-request-id": new_request_id()}
    methods = _methods(request.app, request.path)
    if methods:
        return error_response(MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}; use {' or '.join(methods)}."),
            headers)
    return error_response(NotFound(f"Unknown path {request.path}. The OpenAI routes are under "
                                   "/v1 (e.g. POST /v1/chat/completions)."), headers)


def _methods(app: web.Application, path: str) -> list[str]:
    """The methods the other routes accept on ``path``."""
    found: set[str] = set()
    for resource in app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        if info.get("path") == path or (pattern is not None and "tail" not in pattern.groupindex
                                        and pattern.fullmatch(path)):
            found.update(route.method for route in resource if route.method != "HEAD")
    return sorted(found)
