"""Logging that never prints secrets: tokens and keys are masked in every formatted line."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|AES_KEY|PASSWORD|API_KEY)$")


def secrets_in(env: Mapping[str, str]) -> list[str]:
    """Return the values of environment variables whose names say they are secrets."""
    values = {v.strip() for k, v in env.items() if _SECRET_NAME.search(k) and len(v.strip()) >= 6}
    return sorted(values, key=len, reverse=True)


class RedactingFormatter(logging.Formatter):
    """Format as usual (or as one JSON object), then mask every secret.

    Libraries log URLs that carry the bot token; masking the final line catches them all.
    """

    def __init__(self, fmt: str, secrets: Iterable[str], as_json: bool = False) -> None:
        super().__init__(fmt)
        self._secrets = [s for s in secrets if s]
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
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def configure(level: str, env: Mapping[str, str] | None = None) -> None:
    """Send logs to stderr at level (JSON lines when LOG_FORMAT=json), secrets masked."""
    env = os.environ if env is None else env
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            secrets_in(env),
                                            env.get("LOG_FORMAT", "").lower() == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Every HTTP request line names its URL; at INFO that is noise, not news.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # At DEBUG, python-telegram-bot dumps whole updates, user ids and all: never below INFO.
    logging.getLogger("telegram").setLevel(max(logging.INFO, root.level))
