"""`/healthz` and `/metrics` over HTTP, for load balancers and Prometheus.

- `GET /healthz`: 200 "ok" when the database answers a trivial query within
  `HEALTH_SECONDS`, else 503 and one line saying so (never the URL or an error's
  text, which may name hosts and users).
- `GET /metrics`: the guide's metrics in Prometheus' text format (bot/metrics.py),
  the database's gauges read for this scrape.

The Telegram webhook server mounts these routes beside its webhook path
(`bot/telegram/webhook.py`); `OpsServer` serves them on a port of their own for a
worker without a webhook (`PAUSECHECK_HEALTH_PORT`, on loopback unless
`PAUSECHECK_HEALTH_LISTEN` says otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import Guide, SetupError
from bot.metrics import CONTENT_TYPE, Metrics
from storage.gauges import database_answers

log = logging.getLogger(__name__)

HEALTH_SECONDS = 3.0
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


class OpsRoutes:
    """The two handlers, over the guide's database engine, metrics and clock."""

    def __init__(self, engine: AsyncEngine, metrics: Metrics, now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._metrics = metrics
        self._now = now

    def routes(self) -> list[web.RouteDef]:
        return [web.get(HEALTH_PATH, self.health), web.get(METRICS_PATH, self.metrics)]

    async def health(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(HEALTH_SECONDS):
                await database_answers(self._engine)
        except Exception as exc:
            log.warning("health: the database did not answer error=%s", type(exc).__name__)
            return web.Response(status=503, text="database unreachable\n")
        return web.Response(text="ok\n")

    async def metrics(self, _request: web.Request) -> web.Response:
        await self._metrics.refresh(self._engine, self._now())
        body = self._metrics.render()
        # aiohttp wants the charset apart from the content type.
        kind, _, charset = CONTENT_TYPE.partition("; charset=")
        return web.Response(body=body, content_type=kind, charset=charset or "utf-8")


def ops_routes(guide: Guide) -> OpsRoutes:
    return OpsRoutes(guide.store.engine, guide.metrics, guide.clock.now)


class OpsServer:
    """The routes alone on `listen:port` (port 0: any free one, then `self.port`)."""

    def __init__(self, routes: OpsRoutes, *, listen: str, port: int) -> None:
        self._routes = routes
        self._listen = listen
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(self._routes.routes())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._listen, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise SetupError(
                f"cannot serve /healthz and /metrics on {self._listen}:{self.port} "
                f"(PAUSECHECK_HEALTH_LISTEN / PAUSECHECK_HEALTH_PORT): {exc.strerror or exc}"
            ) from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
