"""Chat channels. Each platform is one module here that offers `plug(env)`; the registry below
is the only list of them, so adding a channel is adding one module and one line.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.channels.frontdesk import FrontDesk
    from bot.ops.server import Routes
    from bot.settings import Environment

CHANNEL_MODULES = ("bot.channels.telegram", "bot.channels.wecom")


class Channel(Protocol):
    """A configured platform: where its admins come from, and how it serves."""

    name: str

    def admins(self, env: Environment) -> frozenset[str]: ...

    def routes(self, desk: FrontDesk) -> list[Routes]:
        """HTTP routes on the bot's own server (callbacks), if any."""
        ...

    async def run(self, desk: FrontDesk, stop: asyncio.Event) -> None:
        """Serve until stop is set (long polling, an own listener), or return at once."""
        ...


def configured(env: Environment) -> list[Channel]:
    """Return the channels whose credentials are set, in registry order."""
    found = []
    for name in CHANNEL_MODULES:
        channel = importlib.import_module(name).plug(env)
        if channel is not None:
            found.append(channel)
    return found
