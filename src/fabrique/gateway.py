"""The gateway's long-lived parts, built from a config: database, keys, routing table."""

from __future__ import annotations

import logging

from fabrique.admin_token import AdminToken
from fabrique.config import Config
from fabrique.keys import KeyStore
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
        self.admin_token = AdminToken.load(config)
        self.started_at = 0  # epoch seconds, set when the app is built

    async def start(self) -> None:
        await self.db.open()
        await self.table.start()

    async def close(self) -> None:
        await self.table.close()
        await self.db.close()
