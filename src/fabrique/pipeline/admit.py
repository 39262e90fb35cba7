"""Stage 1b: admission. Rate limits and the budget reservation, before any work is done
for the request (429 rate_limit_exceeded or budget_exceeded); see ``fabrique.metering``."""

from __future__ import annotations

from fabrique.pipeline.context import RequestContext


async def admit(ctx: RequestContext) -> None:
    await ctx.gateway.metering.admit(ctx)
