"""Logging that never prints secrets: tokens and keys are masked in every formatted line.

The secrets come from the one loaded Environment (process environment and .env alike), plus
any the bot learns while running (a WeCom access token), registered with `mask`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable

_secrets: list[str] = []
_guard = threading.Lock()


def mask(*values: str) -> None:
    """Never print these values again (only values of 6 characters or more are masked)."""
    with _guard:
        found = {*_secrets, *(v.strip() for v in values if v and len(v.strip()) >= 6)}
        _secrets[:] = sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """Replace every known secret in text with ***."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """Format as usual (or as one JSON object), then mask every secret.

    Libraries log URLs that carry the bot token; masking the final line catches them all.
    """

    def __init__(self, fmt: str, secrets: Iterable[str] = (), as_json: bool = False) -> None:
        super().__init__(fmt)
        mask(*secrets)
        self._json = as_json

    def format(self, record: logging.LogRecord) -> str:
        if self._json:
            entry = {"time": self.formatTime(record), "level": record.levelname,
                     "logger": record.name, "message": record.getMessage()}
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            text = json.dumps(entry, ensure_ascii=False)
        else:
            text = super().format(record)
        return redact(text)


def configure(level: str, secrets: Iterable[str] = (), as_json: bool = False) -> None:
    """Send logs to stderr at level (JSON lines if as_json), every secret masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            secrets, as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Every HTTP request line names its URL; at INFO that is noise, not news.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # At DEBUG, python-telegram-bot dumps whole updates, user ids and all: never below INFO.
    logging.getLogger("telegram").setLevel(max(logging.INFO, root.level))
    # Start-up and shutdown lines say where the bot listens: an operator always sees them.
    logging.getLogger("bot.lifecycle").setLevel(min(logging.INFO, root.level))
    # asyncio's accept errors repeat for every refused connection: one line a minute is news.
    logging.getLogger("asyncio").addFilter(_Throttle(60.0))


class _Throttle(logging.Filter):
    """Let the same message through at most once per interval."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)[:80]
        last = self._last.get(key, 0.0)
        if record.created - last < self.interval:
            return False
        self._last[key] = record.created
        if len(self._last) > 1000:
            self._last.clear()
        return True
