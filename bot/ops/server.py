"""The bot's HTTP server: /healthz and /metrics always, plus the routes channels install."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiohttp import web

from bot.ops import metrics

log = logging.getLogger(__name__)
lifecycle = logging.getLogger("bot.lifecycle")  # start and stop lines, shown at every level
MAX_BODY = 64 * 1024


class StartupError(Exception):
    """The bot cannot start as configured; the message names the variable and what to do."""


class Routes(Protocol):
    """A channel that serves callbacks over HTTP (WeCom)."""

    def install(self, app: web.Application) -> None: ...


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def metrics_page(request: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def application(*channels: Routes, max_body: int = MAX_BODY) -> web.Application:
    """Build the aiohttp application with the operations routes and each channel's routes."""
    app = web.Application(client_max_size=max_body)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    for channel in channels:
        channel.install(app)
    return app


async def serve(app: web.Application, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve app on host:port until stop is set."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"HTTP_PORT: cannot listen on {host}:{port} ({exc.strerror}); "
                           "choose a free port or stop what uses it") from exc
    paths = sorted({r.resource.canonical for r in app.router.routes() if r.resource})
    lifecycle.info("http server listening on http://%s:%d (%s)", host, port, ", ".join(paths))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
