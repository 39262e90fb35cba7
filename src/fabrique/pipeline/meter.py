"""Stage 8, a finisher: what the request used and cost (``ctx.meter``), its budget settled,
metrics, trace and usage row; see ``fabrique.metering``."""

from __future__ import annotations

from fabrique.pipeline.context import RequestContext


async def meter(ctx: RequestContext) -> None:
    await ctx.gateway.metering.finish(ctx)
