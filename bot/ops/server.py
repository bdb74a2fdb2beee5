"""The bot's HTTP server: /healthz and /metrics always, plus the routes channels install.

It faces the network, so every connection is bounded:
- a request's head must arrive within HEADER_TIMEOUT of the connection (or of the previous
  response), and a connection idle that long is closed (slowloris, idle sockets);
- a body must arrive within BODY_TIMEOUT (`read_body`), and is capped by the application's
  client_max_size;
- at most `connection_limit()` connections are open: a new one closes the one idle longest,
  or is refused when every one is busy, so open sockets never exhaust the file limit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import resource
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, cast

from aiohttp import web

from bot.ops import metrics

log = logging.getLogger(__name__)
lifecycle = logging.getLogger("bot.lifecycle")  # start and stop lines, shown at every level
MAX_BODY = 64 * 1024
HEADER_TIMEOUT = 10.0  # seconds for a request head; also how long an idle connection stays
BODY_TIMEOUT = 10.0  # seconds for a whole request body
LINGER = 1.0  # seconds an unread body is drained after a refusal before the socket closes
MAX_CONNECTIONS = 1000
FILES_KEPT = 200  # file descriptors left for the store, the index, logs and outgoing calls
EVICTION_SCAN = 64  # connections looked at for an idle one to close


class StartupError(Exception):
    """The bot cannot start as configured; the message names the variable and what to do."""


class Routes(Protocol):
    """A channel that serves callbacks over HTTP (WeCom)."""

    def install(self, app: web.Application) -> None: ...


class SlowBody(Exception):
    """A request body did not arrive within BODY_TIMEOUT."""


async def read_body(request: web.Request, timeout: float | None = None) -> bytes:
    """Read the request body, capped by client_max_size, within timeout (BODY_TIMEOUT) s.

    Raises web.HTTPRequestEntityTooLarge past the cap and SlowBody when the sender trickles.
    """
    timeout = BODY_TIMEOUT if timeout is None else timeout
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError as exc:
        raise SlowBody(f"body not received within {timeout:.0f} s") from exc


def health_page(health: Callable[[], dict[str, str]] | None) -> Callable[
        [web.Request], Any]:
    async def healthz(request: web.Request) -> web.Response:
        # 200 as long as the bot answers; details (a degraded store) for whoever looks.
        return web.json_response({"status": "ok", **(health() if health else {})})
    return healthz


async def metrics_page(request: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def application(*channels: Routes, max_body: int = MAX_BODY,
                health: Callable[[], dict[str, str]] | None = None) -> web.Application:
    """Build the aiohttp application with the operations routes and each channel's routes."""
    app = web.Application(client_max_size=max_body)
    app.router.add_get("/healthz", health_page(health))
    app.router.add_get("/metrics", metrics_page)
    for channel in channels:
        channel.install(app)
    return app


def connection_limit(maximum: int = MAX_CONNECTIONS) -> int:
    """Open connections allowed: MAX_CONNECTIONS, fewer under a low open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return maximum
    return max(16, min(maximum, soft - FILES_KEPT))


class ConnectionCap:
    """Count open connections; past the limit close the least recently active idle one."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: OrderedDict[_Counted, None] = OrderedDict()  # least recently active first
        self.evicted = 0
        self.refused = 0

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Counted(self, inner())

    def admit(self, connection: _Counted) -> bool:
        if len(self.open) >= self.limit:
            victim = next((c for c in itertools.islice(self.open, EVICTION_SCAN)
                           if not c.busy()), None)
            if victim is None:
                self.refused += 1
                metrics.REFUSED.labels("http", "503").inc()
                return False
            self.evicted += 1
            self.open.pop(victim, None)
            victim.close()
        self.open[connection] = None
        return True

    def touch(self, connection: _Counted) -> None:
        if connection in self.open:
            self.open.move_to_end(connection)

    def release(self, connection: _Counted) -> None:
        self.open.pop(connection, None)


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted by a ConnectionCap."""

    def __init__(self, cap: ConnectionCap, inner: asyncio.Protocol) -> None:
        self.cap = cap
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.admitted = False

    def busy(self) -> bool:
        # aiohttp's flag for a request being handled (a private name, read defensively).
        return bool(getattr(self.inner, "_request_in_progress", False))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # RST: an idle socket holds no answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # TCP: a full transport
        if not self.cap.admit(self):
            self.transport.abort()
            return
        self.admitted = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.cap.touch(self)
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.cap.release(self)
        self.transport = None
        if self.admitted:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCP site whose connections a ConnectionCap counts."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 cap: ConnectionCap) -> None:
        super().__init__(runner, host, port)
        self.cap = cap

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        if server is None:  # set by runner.setup(), which GuardedSite's caller awaited
            raise RuntimeError("the runner is not set up")
        self._server = await asyncio.get_running_loop().create_server(
            self.cap.factory(server), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address)
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]


def runner(app: web.Application) -> web.AppRunner:
    """An AppRunner with the edge's timeouts (see the module's docstring)."""
    # aiohttp's keep-alive timer runs from the connection (or the last response) until a
    # whole request head has arrived, so it is the header timeout and the idle timeout.
    return web.AppRunner(app, access_log=None, keepalive_timeout=HEADER_TIMEOUT,
                         lingering_time=LINGER)


async def serve(app: web.Application, host: str, port: int, stop: asyncio.Event,
                variable: str = "HTTP_PORT", max_connections: int | None = None) -> None:
    """Serve app on host:port until stop is set."""
    web_runner = runner(app)
    await web_runner.setup()
    cap = ConnectionCap(max_connections or connection_limit())
    try:
        await GuardedSite(web_runner, host, port, cap).start()
    except OSError as exc:
        await web_runner.cleanup()
        raise StartupError(f"{variable}: cannot listen on {host}:{port} ({exc.strerror}); "
                           "choose a free port or stop what uses it") from exc
    paths = sorted({r.resource.canonical for r in app.router.routes() if r.resource})
    lifecycle.info("http server listening on http://%s:%d (%s; at most %d connections)",
                   host, port, ", ".join(paths), cap.limit)
    try:
        await stop.wait()
    finally:
        await web_runner.cleanup()
        if cap.evicted or cap.refused:
            log.info("connections closed at the limit: %d idle, %d refused", cap.evicted,
                     cap.refused)
