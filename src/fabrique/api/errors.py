"""The one place errors become HTTP responses, in OpenAI's shape."""

from __future__ import annotations

import math

import orjson
from aiohttp import web

from fabrique.errors import FabriqueError


def error_response(error: FabriqueError, headers: dict[str, str] | None = None) -> web.Response:
    out = dict(headers or {})
    if error.retry_after is not None:
        out["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    if not getattr(error, "retryable", True):
        out["x-should-retry"] = "false"  # the openai SDKs read it before their own rules
    return web.Response(status=error.status, body=orjson.dumps(error.to_dict()),
                        content_type="application/json", headers=out)
