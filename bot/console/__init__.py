"""The knowledge console: a browser UI under /admin on the bot's HTTP server for the people who
look after the knowledge (inbox, entries, try-it, publish, dashboard). Off unless
BOT_CONSOLE_USERS is set; see README "Knowledge console".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App
    from bot.ops.server import Routes


def routes(app: App) -> list[Routes]:
    """The console's routes when accounts are configured, else none.

    A console that cannot open its files (a read-only or full data directory) is left off
    with one error: the bot keeps answering.
    """
    if not app.env.BOT_CONSOLE_USERS.strip():
        return []
    import sqlite3

    from bot.console.core import Console
    from bot.console.web import ConsoleRoutes

    try:
        return [ConsoleRoutes(Console.open(app))]
    except (OSError, sqlite3.Error) as exc:
        logging.getLogger(__name__).error("the knowledge console is off: cannot use %s (%s)",
                                          app.settings.data_dir / "console", exc)
        return []
