"""GET /v1/fabrique/usage: a tenant's own usage, with one of its API keys.

Whatever the key, the report covers its tenant only; other tenants' usage is for the admin
API (``GET /admin/usage``).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from fabrique.api.errors import error_response
from fabrique.api.openai import GATEWAY, new_request_id
from fabrique.errors import FabriqueError, InvalidField


async def own_usage(request: web.Request) -> web.Response:
    """``?by=key|agent|deployment|model&since=7d``, the tenant's rows only."""
    from fabrique.metering.report import report, since

    gateway = request.app[GATEWAY]
    headers = {"x-fabrique-request-id": new_request_id()}
    try:
        principal = await gateway.keys.authenticate(request.headers.get("Authorization"))
        by = request.query.get("by", "model")
        if by == "tenant":
            raise InvalidField("by: one of key, agent, deployment, model (a key sees its own "
                               "tenant only)", param="by")
        start = since(request.query.get("since", "7d"))
        await gateway.metering.usage.flush()
        rows = await report(gateway.db, by, start, principal.tenant)
    except FabriqueError as error:
        return error_response(error, headers)
    body = {"object": "list", "tenant": principal.tenant, "by": by, "data": rows}
    return web.Response(body=orjson.dumps(body), content_type="application/json",
                        headers=headers)
