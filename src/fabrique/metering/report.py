"""Usage reports: the usage rows summed by tenant, key, agent, deployment or model.

Only the admin sees every tenant (``fabrique usage``, ``GET /admin/usage``); a report can
be narrowed to one tenant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from fabrique.errors import InvalidField
from fabrique.since import moment
from fabrique.store import Database
from fabrique.store.tables import usage

BY = {"tenant": usage.c.tenant, "key": usage.c.key_id, "agent": usage.c.agent,
      "deployment": usage.c.deployment, "model": usage.c.model}
COLUMNS = ["requests", "refused", "input_tokens", "output_tokens", "estimated", "cost_eur",
           "energy_wh", "co2e_g", "embodied_g", "avg_latency_ms", "avg_ttft_ms"]


def since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``24h``, ``30m``, ``2w`` ago, or an ISO date or time (UTC unless it says)."""
    try:
        return moment(text, now)
    except ValueError as exc:
        raise InvalidField(f"since: {exc}", param="since") from None


async def report(db: Database, by: str, start: datetime,
                 tenant: str | None = None) -> list[dict[str, Any]]:
    """One row per value of ``by`` since ``start``, the most expensive first."""
    column = BY.get(by)
    if column is None:
        raise InvalidField(f"by: one of {', '.join(BY)}", param="by")
    c = usage.c
    query = (sa.select(
        column.label(by), sa.func.count().label("requests"),
        sa.func.sum(sa.case((c.status >= 400, 1), else_=0)).label("refused"),
        sa.func.sum(c.input_tokens).label("input_tokens"),
        sa.func.sum(c.output_tokens).label("output_tokens"),
        sa.func.sum(sa.case((c.estimated, 1), else_=0)).label("estimated"),
        sa.func.sum(c.cost_eur).label("cost_eur"), sa.func.sum(c.energy_wh).label("energy_wh"),
        sa.func.sum(c.co2e_g).label("co2e_g"), sa.func.sum(c.embodied_g).label("embodied_g"),
        sa.func.avg(c.latency_ms).label("avg_latency_ms"),
        sa.func.avg(c.ttft_ms).label("avg_ttft_ms"))
        .where(c.at >= start).group_by(column).order_by(sa.func.sum(c.cost_eur).desc(), column))
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_clean(dict(r._mapping)) for r in rows]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("requests", "refused", "input_tokens", "output_tokens", "estimated"):
        row[name] = int(row[name] or 0)
    for name in ("cost_eur", "energy_wh", "co2e_g", "embodied_g"):
        row[name] = round(float(row[name] or 0.0), 9)
    for name in ("avg_latency_ms", "avg_ttft_ms"):
        row[name] = None if row[name] is None else round(float(row[name]), 3)
    return row


async def spent_by(db: Database, scope: str, start: datetime, unit: str,
                   name: str = "*") -> dict[str, float]:
    """Each identity's spending since ``start`` (euros, or tokens in and out), by ``scope``
    (tenant, key or agent): where a budget's count starts again after a restart."""
    column = BY[scope]
    amount = (sa.func.sum(usage.c.cost_eur) if unit == "eur"
              else sa.func.sum(usage.c.input_tokens + usage.c.output_tokens))
    query = (sa.select(column, amount).where(usage.c.at >= start.replace(tzinfo=None)
                                             if db.dialect == "sqlite" else usage.c.at >= start)
             .where(column.is_not(None)).group_by(column))
    if name != "*":
        query = query.where(column == name)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {str(ident): float(total or 0) for ident, total in rows}
