"""Run the gateway (or the simulator) in this process, on uvloop when available."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from pathlib import Path

from aiohttp import web

from fabrique.config import Config, SimFaults, SimProfile
from fabrique.errors import FabriqueError

_LISTENING = web.AppKey("listening", bool)


def _loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(config: Config, *, host: str | None, port: int | None,
          config_path: Path | None) -> None:
    from fabrique.api import build_app
    from fabrique.gateway import Gateway

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    gateway = Gateway(config)
    app = build_app(gateway)
    host = host or config.server.host
    port = port if port is not None else config.server.port
    shown = f"[{host}]" if ":" in host else host
    origin = "built-in offline default (simulated models)" if config_path is None else config_path
    banner = (
        f"Fabrique gateway on http://{shown}:{port}/v1  (config: {origin})\n"
        f"  database:    {gateway.db.safe_url}\n"
        f"  models:      {', '.join(gateway.table.groups)}\n"
        f"  admin token: {gateway.admin_token.source}\n"
        f"  get a key:   fabrique keys create --tenant NAME"
        + (f" --config {config_path}" if config_path else "")
        + "\n  try it:      curl http://127.0.0.1:{port}/v1/models "
        "-H \"Authorization: Bearer $OPENAI_API_KEY\"".replace("{port}", str(port)))
    grace = config.server.shutdown_timeout_s

    async def announce_shutdown(_app: web.Application) -> None:
        if not _app.get(_LISTENING):
            return
        print(f"Fabrique: stopping; open requests have {grace:g} s to finish (server."
              "shutdown_timeout_s), then open streams end with an error event.",
              file=sys.stderr, flush=True)
        # aiohttp's own grace starts just after this: end the streams a little before it ends.
        asyncio.get_running_loop().call_later(max(0.0, min(grace * 0.9, grace - 0.5)),
                                              gateway.end_streams)

    app.on_shutdown.append(announce_shutdown)
    _run(app, host, port, grace, banner)


def _run(app: web.Application, host: str, port: int, grace: float, banner: str) -> None:
    def listening(_msg: str) -> None:  # aiohttp calls this once the sockets are bound
        app[_LISTENING] = True
        print(banner, file=sys.stderr, flush=True)

    try:
        web.run_app(app, host=host, port=port, loop=_loop(), access_log=None,
                    shutdown_timeout=grace, print=listening)
    except OSError as exc:
        hint = ("choose another port with --port N (or make run PORT=N)"
                if exc.errno == errno.EADDRINUSE else "check --host and --port")
        raise FabriqueError(f"cannot listen on {host}:{port}: "
                            f"{exc.strerror or exc}; {hint}") from exc


def serve_simulator(profile: SimProfile, faults: SimFaults, models: list[str] | None,
                    host: str, port: int, api_key: str | None = None) -> None:
    from fabrique.simulator.engine import SimEngine
    from fabrique.simulator.server import build_app

    app = build_app(SimEngine(profile, faults, models), api_key)
    _run(app, host, port, 5.0, f"Fabrique simulated engine on http://{host}:{port}/v1 "
                               f"(models: {', '.join(models or ['any name'])})")
