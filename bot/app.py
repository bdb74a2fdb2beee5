"""The composition root: build the knowledge service, store, limiter, engine and channels from
one loaded Environment, and serve them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

from bot import channels, console
from bot.channels.frontdesk import FrontDesk
from bot.dialogue.engine import Engine
from bot.kb.service import KnowledgeService
from bot.ops import server as http
from bot.ops.server import lifecycle
from bot.settings import Environment, Settings
from bot.store.base import Store
from bot.store.ratelimit import RateLimiter
from bot.store.resilient import PROBE_EVERY, STORE_ERRORS, ResilientStore, reload_announcer
from bot.store.sqlite import SQLiteStore
from index.encoders import make_encoder

log = logging.getLogger(__name__)


@dataclass
class App:
    """The assembled bot: configuration, live knowledge, store and engine."""

    env: Environment
    settings: Settings
    service: KnowledgeService
    store: ResilientStore
    engine: Engine


def make_service(settings: Settings) -> KnowledgeService:
    """Build the knowledge service with the configured encoder (nothing loaded yet)."""
    encoder = make_encoder(settings.encoder, settings.encoder_model)
    return KnowledgeService(settings.knowledge_dir, settings.data_dir, encoder, settings.weights)


def open_store(settings: Settings, path: Path | str | None = None) -> ResilientStore:
    """Open Redis (replicas) or SQLite (one process; path overrides the file)."""
    retention = settings.retention_days * 86400
    try:
        if settings.redis_url and path is None:
            from bot.store.redis import RedisStore

            redis_store = RedisStore(settings.redis_url, retention, check=False)
            shared = ResilientStore(redis_store, retention, probe=redis_store.ping)
            try:
                redis_store.ping()
            except STORE_ERRORS as exc:  # down at start: serve from memory, join it later
                shared.degrade(exc)
            return shared
        primary: Store = SQLiteStore(path or settings.data_dir / "bot.sqlite", retention)
        return ResilientStore(primary, retention)
    except STORE_ERRORS as exc:
        store = ResilientStore(SQLiteStore(":memory:", retention), retention)
        store.degrade(exc)
        return store


def open_app(env: Environment, store_path: Path | str | None = None,
             service: KnowledgeService | None = None) -> App:
    """Load the encoder and knowledge (or the last good build) and open the store."""
    settings = Settings.from_environment(env)
    service = service or make_service(settings)
    if not service.started:
        service.start()
    store = open_store(settings, store_path)
    return App(env, settings, service, store, Engine(service, store, settings))


def make_limiter(app: App) -> RateLimiter:
    """One per-user limit: shared through Redis when replicas run, else in memory."""
    shared = getattr(app.store.primary, "client", None)
    return RateLimiter(app.settings.user_rate_limit, app.settings.user_rate_window,
                       shared=shared)


async def serve(app: App, configured: list[channels.Channel]) -> None:
    """Run every configured channel and the HTTP server in one loop until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    limiter = make_limiter(app)
    announce = reload_announcer(app.store)
    runs = []
    routes: list[http.Routes] = []
    for channel in configured:
        desk = FrontDesk(app.engine, app.service, app.store, limiter,
                         channel.admins(app.env), announce=announce)
        routes += channel.routes(desk)
        runs.append(channel.run(desk, stop))
    routes += console.routes(app)  # the knowledge console under /admin, when configured
    if announce is not None:
        from bot.store.redis import watch_reloads

        runs.append(watch_reloads(app.store.primary, app.service, stop))  # type: ignore[arg-type]
        runs.append(_keep_recovering(app.store, stop))
    kb = app.service.current
    lifecycle.info("serving %s with %d entries, knowledge version %s (%s)",
                   ", ".join(c.name for c in configured) or "the knowledge console",
                   len(kb.kb.entries), kb.version,
                   "from the files" if kb.origin == "files" else "last good build: files broken")
    # The HTTP server always runs: /healthz and /metrics, and the callbacks channels install.
    # /healthz stays 200 while the store is degraded (the bot still answers) but says so.
    site = http.application(*routes, health=lambda: {
        "store": "degraded" if app.store.degraded else "ok"})
    runs.append(http.serve(site, app.env.HTTP_HOST, app.env.HTTP_PORT, stop))
    tasks = [asyncio.ensure_future(run) for run in runs]
    try:
        # A channel that fails (a rejected token, a port in use) stops the whole bot.
        for finished in asyncio.as_completed(tasks):
            await finished
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        lifecycle.info("stopped")


async def _keep_recovering(store: ResilientStore, stop: asyncio.Event) -> None:
    """Without traffic nothing probes the store: go back to shared state all the same."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROBE_EVERY)
        if store.degraded:
            await asyncio.to_thread(store.recover)
