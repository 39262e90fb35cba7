"""Stage 5: choose a deployment and call it; retry, fall back and trip breakers.

A failure *before the first byte* of an answer (no connection, a timeout, 429, 5xx, a
stream whose first event is an error) is retried on the same deployment with jittered
backoff, then the next deployment is tried, then the model's fallbacks. Once the first
byte has gone to the client there is no retry: ``relay`` ends such a stream with an
error event.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import orjson

from fabrique.errors import (
    FabriqueError,
    NoHealthyDeployment,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fabrique.pipeline.context import Attempt, RequestContext
from fabrique.pipeline.restore import json_content, restore_answer
from fabrique.providers import UpstreamRequest, UpstreamResponse
from fabrique.providers.errors import upstream_error, upstream_message
from fabrique.routing import Deployment, ModelGroup

log = logging.getLogger("fabrique.route")

# What to do after a failed attempt.
RETRY, NEXT, REJECT = "retry", "next", "reject"


async def route(ctx: RequestContext) -> None:
    settings = ctx.gateway.config.routing
    calls = 0
    last: FabriqueError | None = None
    for group, dep in _candidates(ctx):
        for retry in range(settings.retries + 1):
            if calls >= settings.max_attempts:
                break
            if retry:
                delay = _backoff(retry, settings.backoff_base_s, settings.backoff_max_s,
                                 last.retry_after if last else None)
                if delay is None:
                    break  # the upstream asked for a longer wait: go elsewhere now
                await asyncio.sleep(delay)
            # Asked before every call: a failure may just have opened the circuit.
            if not dep.breaker.allow():
                if not retry:
                    ctx.attempts.append(Attempt(dep.name, "skipped:circuit_open", 0.0))
                break
            probe = dep.breaker.probing  # True only if this request just claimed the probe
            calls += 1
            failure = await _attempt(ctx, dep, _payload(ctx, dep), probe)
            if failure is None:
                if group is not ctx.group:
                    ctx.decide("route", f"fallback to {group.name}",
                               f"every deployment of {ctx.model} failed")
                mode = "pseudonymized" if ctx.pseudonymized else "in clear"
                ctx.decide("route", f"deployment {dep.name}",
                           f"jurisdiction {dep.residency.jurisdiction or 'unknown'}, {mode}; "
                           f"strategy {group.strategy}, attempt {calls}")
                return
            action, last = failure
            if action == REJECT:
                raise last
            if action == NEXT:
                break
    raise _final(last)


def _candidates(ctx: RequestContext) -> Iterator[tuple[ModelGroup, Deployment]]:
    """Every deployment to try, in order: the model's, by its strategy, then its fallbacks';
    only those the residency policy allows (decide)."""
    assert ctx.group is not None
    table = ctx.gateway.table
    allowed = ctx.modes
    for group in [ctx.group, *(g for name in ctx.group.fallbacks if (g := table.get(name)))]:
        for dep in group.ordered():
            if allowed is None or dep in allowed:
                yield group, dep


def _payload(ctx: RequestContext, dep: Deployment) -> dict[str, Any]:
    """The body this deployment may receive (pseudonymized or not), asking for stream usage
    (metering needs it) when the client did not."""
    body = ctx.body
    if ctx.modes is not None and ctx.modes[dep] == "pseudonymized":
        assert ctx.protected_body is not None
        body = ctx.protected_body
    if _injects_usage(ctx, dep):
        return {**body, "stream_options": {**(body.get("stream_options") or {}),
                                           "include_usage": True}}
    return body


def _injects_usage(ctx: RequestContext, dep: Deployment) -> bool:
    """Whether Fabrique asks this deployment for the stream's usage chunk, not the client."""
    if not ctx.stream or not dep.provider.stream_usage:
        return False
    options = ctx.body.get("stream_options") or {}
    return options.get("include_usage") is not True


async def _attempt(ctx: RequestContext, dep: Deployment, payload: dict[str, Any],
                   probe: bool) -> tuple[str, FabriqueError] | None:
    request = UpstreamRequest(ctx.endpoint, {**payload, "model": dep.upstream_model}, ctx.stream)
    timeout = dep.timeouts.first_token_s if ctx.stream else dep.timeouts.total_s
    ctx.pseudonymized = ctx.modes is not None and ctx.modes[dep] == "pseudonymized"
    started = time.perf_counter()
    dep.inflight += 1
    response: UpstreamResponse | None = None
    try:
        async with asyncio.timeout(timeout):
            response = await dep.provider.send(request)
            failure = await _check(ctx, dep, response)
    except TimeoutError:
        failure = RETRY, UpstreamTimeout(
            f"The deployment '{dep.name}' did not answer within {timeout:g} s.")
    except UpstreamError as exc:
        failure = RETRY, exc
    except Exception as exc:  # a provider bug must not leak internals or the in-flight count
        log.exception("deployment %s raised unexpectedly", dep.name)
        failure = RETRY, UpstreamError(f"The deployment '{dep.name}' failed unexpectedly.")
        failure[1].__cause__ = exc
    except BaseException:  # cancelled (client gone, shutdown): undo our bookkeeping
        dep.inflight -= 1
        if probe:
            dep.breaker.release_probe()
        if response is not None:
            await response.close()
        raise
    elapsed = time.perf_counter() - started
    ctx.upstream_s += elapsed
    if failure is None:
        assert response is not None
        ctx.attempts.append(Attempt(dep.name, "ok", elapsed))
        ctx.deployment, ctx.upstream, ctx.upstream_started = dep, response, started
        # Fabrique asked for the usage chunk, not the client: relay will hide it.
        ctx.usage_injected = _injects_usage(ctx, dep)
        dep.breaker.success()
        dep.observe_latency(elapsed, ctx.gateway.config.routing.latency_ewma_alpha)
        if not ctx.stream:
            dep.inflight -= 1
        return None
    dep.inflight -= 1
    if response is not None:
        await response.close()
    action, error = failure
    ctx.attempts.append(Attempt(dep.name, f"{action}:{error.code}", elapsed))
    if action == REJECT:
        dep.breaker.success()  # the deployment worked; the request was at fault
    elif probe or dep not in ctx.charged:
        # One failure per request and deployment: a request that fails deterministically
        # (an engine answering 500 to odd parameters) must not open the circuit alone.
        # A probe is always settled, or the deployment would stay locked out.
        ctx.charged.add(dep)
        dep.breaker.failure()
    return failure


async def _check(ctx: RequestContext, dep: Deployment,
                 response: UpstreamResponse) -> tuple[str, FabriqueError] | None:
    """None when the answer can be relayed, else what to do about it."""
    status = response.status
    if status == 200:
        if response.events is not None:
            return await _first_event(ctx, dep, response)
        if ctx.stream:
            return RETRY, UpstreamError(f"The deployment '{dep.name}' did not stream.")
        data = response.json()
        if not isinstance(data, dict) or "error" in data:
            return RETRY, UpstreamError(f"The deployment '{dep.name}' sent a malformed answer.")
        ctx.usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        data["model"] = ctx.model
        if ctx.pseudonymized:
            assert ctx.vault is not None
            restore_answer(data, ctx.vault, json_content(ctx.body))
        response.body = orjson.dumps(data)
        return None
    if status == 429:
        return RETRY, RateLimited(f"The deployment '{dep.name}' is rate limited.",
                                  retry_after=response.retry_after)
    if status >= 500 or status in (408, 409):
        error_class = {503: UpstreamUnavailable, 504: UpstreamTimeout}.get(status, UpstreamError)
        return RETRY, error_class(f"The deployment '{dep.name}' failed (HTTP {status}).")
    if status in (401, 403, 404):
        # Our credentials or model mapping are wrong: the client can do nothing about it.
        return NEXT, UpstreamError(f"The deployment '{dep.name}' is misconfigured (HTTP "
                                   f"{status} from upstream).")
    # The client's own mistake, as the engine explains it (e.g. context_length_exceeded).
    message, code, param = upstream_error(response.body)
    if message and ctx.pseudonymized:  # an engine may quote the prompt it was sent
        assert ctx.vault is not None
        message = ctx.vault.restore(message)
    return REJECT, UpstreamRejected(message or f"The upstream rejected the request (HTTP {status}).",
                                    status=413 if status == 413 else 400,
                                    code=code or UpstreamRejected.code, param=param)


async def _first_event(ctx: RequestContext, dep: Deployment,
                       response: UpstreamResponse) -> tuple[str, FabriqueError] | None:
    assert response.events is not None
    try:
        event = await anext(response.events)
    except StopAsyncIteration:
        return RETRY, UpstreamError(f"The deployment '{dep.name}' closed the stream at once.")
    if event.event == "error" or event.data.startswith(b'{"error"'):
        return RETRY, UpstreamError(f"The deployment '{dep.name}' failed: "
                                    f"{upstream_message(event.data) or 'stream error'}")
    ctx.first_event = event
    return None


def _backoff(retry: int, base: float, cap: float, retry_after: float | None) -> float | None:
    """Full-jitter exponential backoff; honour a short Retry-After, skip a long one."""
    delay = random.uniform(0, min(cap, base * 2 ** (retry - 1)))
    if retry_after is not None:
        if retry_after > cap:
            return None
        delay = max(delay, retry_after)
    return delay


def _final(last: FabriqueError | None) -> FabriqueError:
    if last is None:
        return NoHealthyDeployment(
            "No deployment can take this request now: every circuit is open. Retry shortly.",
            retry_after=1.0)
    if isinstance(last, RateLimited) and last.retry_after is None:
        last.retry_after = 1.0  # the upstream said nothing; a client still needs a hint
    return last
