"""The gateway's long-lived parts, built from a config: database, keys, routing table."""

from __future__ import annotations

import asyncio
import logging

from fabrique.admin_token import AdminToken
from fabrique.config import Config
from fabrique.keys import KeyStore
from fabrique.ledger.service import Ledger
from fabrique.metering import Metering
from fabrique.policy.sovereignty import Sovereignty
from fabrique.routing import RoutingTable
from fabrique.store import Database

log = logging.getLogger("fabrique")


class Gateway:
    """Everything a request needs that outlives it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db = Database(config.database_url())
        self.keys = KeyStore(self.db, config.server.key_cache_ttl_s)
        self.table = RoutingTable(config)
        self.sovereignty = Sovereignty(config.sovereignty)
        self.admin_token = AdminToken.load(config)
        self.ledger = Ledger(config, self.db)
        self.metering = Metering(config, self.db, self.table)
        self.started_at = 0  # epoch seconds, set when the app is built
        self._model_check: asyncio.Task[list[str]] | None = None
        # Open streams, by their relay's deadline: a shutdown ends them all at once.
        self.streams: set[asyncio.Timeout] = set()
        self.stopping = False

    async def start(self) -> None:
        await self.db.open()
        missing = await self.keys.assigned_policies() - set(self.sovereignty.policies)
        for name in sorted(missing):
            log.warning("policy %r is given to tenants or keys in the database but not declared "
                        "in the config: their requests follow the config's policy for the tenant "
                        "(or %r) until it is declared again", name, self.config.sovereignty.default_policy)
        if self.config.ledger.enabled:
            await self.ledger.start()
        await self.table.start()
        await self.metering.start()
        # In the background: a slow or absent upstream must not delay the start.
        self._model_check = asyncio.create_task(self.check_upstream_models())

    async def check_upstream_models(self) -> list[str]:
        """Warn about deployments whose model their upstream does not list.

        Some engines (llama.cpp's server) answer any model name with the one they have, so
        a wrong mapping would otherwise go unnoticed. Returns the warnings.
        """
        warnings: list[str] = []
        seen: dict[int, set[str] | None] = {}
        for group in self.table.groups.values():
            for dep in group.deployments:
                key = id(dep.provider)
                if key not in seen:
                    seen[key] = await _listed_models(dep.provider)
                listed = seen[key]
                if listed is not None and dep.upstream_model not in listed:
                    warnings.append(
                        f"deployment {dep.name} (model {group.name}): the upstream does not list "
                        f"model {dep.upstream_model!r}; it lists {', '.join(sorted(listed)) or 'none'}")
        for warning in warnings:
            log.warning("%s", warning)
        return warnings

    def end_streams(self) -> None:
        """End every open stream now with a ``gateway_shutdown`` error event (and no
        ``[DONE]``), while the client can still be written to. aiohttp, once its shutdown
        grace has passed, cancels handlers and closes their connections in the same step,
        before a handler could say anything: so the gateway ends its streams itself, a little
        before that."""
        self.stopping = True
        now = asyncio.get_running_loop().time()
        for deadline in self.streams:
            deadline.reschedule(now)

    async def close(self) -> None:
        if self._model_check is not None:
            self._model_check.cancel()
        await self.metering.close()
        await self.table.close()
        await self.ledger.close()  # commits what is queued, before the database goes
        await self.db.close()
        self.sovereignty.close()


async def _listed_models(provider: object) -> set[str] | None:
    list_models = getattr(provider, "list_models", None)
    if list_models is None:
        return None
    try:
        models: set[str] | None = await list_models()
    except Exception:  # a probe only: the request path reports real failures
        return None
    return models or None  # an empty list says nothing about what is served
