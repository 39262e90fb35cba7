"""The request path, in order. Each stage is ``async def stage(ctx: RequestContext) -> None``.

    1 validate   the body has what the endpoint needs; the model exists      → 400, 404
    2 route      pick a deployment, call it; retry, fall back, break circuits → 429, 502-504
    3 relay      (pipeline.relay) write the answer: JSON, or SSE chunk by chunk

Admission (rate limits, budgets), classification, residency decisions, pseudonymization,
metering and the audit record slot in between as their stages land.
"""

from __future__ import annotations

from fabrique.pipeline.context import Decision, RequestContext, Stage
from fabrique.pipeline.route import route
from fabrique.pipeline.validate import validate

STAGES: tuple[Stage, ...] = (validate, route)


async def run(ctx: RequestContext) -> None:
    """Run every stage before the answer is relayed."""
    for stage in STAGES:
        await stage(ctx)


__all__ = ["STAGES", "Decision", "RequestContext", "Stage", "run"]
