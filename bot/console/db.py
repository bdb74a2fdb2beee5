"""The console's own small database (console.sqlite): sessions, login failures, inbox
decisions, the audit log and cached evaluation figures.

It is apart from the bot's store: the console's bookkeeping never mixes with what sellers asked.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user TEXT NOT NULL,
                                     csrf TEXT NOT NULL, created REAL NOT NULL,
                                     seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS login_failures (at REAL NOT NULL, user TEXT NOT NULL,
                                           address TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
CREATE TABLE IF NOT EXISTS decisions (key TEXT PRIMARY KEY, kind TEXT NOT NULL,
                                      reason TEXT NOT NULL, user TEXT NOT NULL,
                                      at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
                                  user TEXT NOT NULL, action TEXT NOT NULL,
                                  target TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS figures (knowledge TEXT PRIMARY KEY, data TEXT NOT NULL,
                                    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, text TEXT NOT NULL, at REAL NOT NULL);
"""

SESSION_IDLE = 8 * 3600.0  # a session unused this long ends
SESSION_MAX = 24 * 3600.0  # and none lasts longer than this


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str


@dataclass(frozen=True)
class Decision:
    """What a maintainer did with an inbox group: dismissed (with a reason) or attached."""

    key: str
    kind: str
    reason: str
    user: str
    at: float


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: float
    user: str
    action: str
    target: str
    detail: str


def _token_key(token: str) -> str:
    # Only a hash of the cookie is stored: a copy of the database opens no session.
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleDB:
    """console.sqlite, safe to share between the server's threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    # ------------------------------------------------------------------ sessions

    def open_session(self, user: str, now: float) -> tuple[str, str]:
        """Start a session; return (cookie token, CSRF token)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._lock, self._db:
            self._db.execute("DELETE FROM sessions WHERE seen < ? OR created < ?",
                             (now - SESSION_IDLE, now - SESSION_MAX))
            self._db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                             (_token_key(token), user, csrf, now, now))
        return token, csrf

    def session(self, token: str, now: float) -> Session | None:
        """Return the live session of a cookie token (and mark it used), or None."""
        key = _token_key(token)
        with self._lock, self._db:
            row = self._db.execute("SELECT user, csrf, created, seen FROM sessions "
                                   "WHERE token = ?", (key,)).fetchone()
            if row is None:
                return None
            if row[3] < now - SESSION_IDLE or row[2] < now - SESSION_MAX:
                self._db.execute("DELETE FROM sessions WHERE token = ?", (key,))
                return None
            self._db.execute("UPDATE sessions SET seen = ? WHERE token = ?", (now, key))
        return Session(row[0], row[1])

    def close_session(self, token: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM sessions WHERE token = ?", (_token_key(token),))

    # ------------------------------------------------------------------ login attempts

    def login_failed(self, user: str, address: str, now: float) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO login_failures VALUES (?, ?, ?)", (now, user, address))
            self._db.execute("DELETE FROM login_failures WHERE at < ?", (now - 86400,))

    def recent_failures(self, user: str, address: str, since: float) -> int:
        """Count failed logins since a time for this name or from this address."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX((SELECT COUNT(*) FROM login_failures WHERE at >= ? AND user = ?), "
                "(SELECT COUNT(*) FROM login_failures WHERE at >= ? AND address = ?))",
                (since, user, since, address)).fetchone()
        return int(row[0])

    def oldest_failure(self, user: str, address: str, since: float) -> float:
        with self._lock:
            row = self._db.execute("SELECT MIN(at) FROM login_failures WHERE at >= ? AND "
                                   "(user = ? OR address = ?)", (since, user, address)).fetchone()
        return float(row[0] or since)

    # ------------------------------------------------------------------ inbox decisions

    def decide(self, key: str, kind: str, reason: str, user: str, now: float) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?)",
                             (key, kind, reason, user, now))

    def undo_decision(self, key: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM decisions WHERE key = ?", (key,))

    def decisions(self) -> dict[str, Decision]:
        with self._lock:
            rows = self._db.execute("SELECT key, kind, reason, user, at FROM decisions").fetchall()
        return {row[0]: Decision(*row) for row in rows}

    # ------------------------------------------------------------------ audit log

    def audit(self, now: float, user: str, action: str, target: str, detail: str = "") -> None:
        with self._lock, self._db:
            self._db.execute("INSERT INTO audit (at, user, action, target, detail) "
                             "VALUES (?, ?, ?, ?, ?)", (now, user, action, target, detail))

    def audit_log(self, limit: int = 200, action: str = "") -> list[AuditRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, user, action, target, detail FROM audit "
                "WHERE ? = '' OR action = ? ORDER BY id DESC LIMIT ?",
                (action, action, limit)).fetchall()
        return [AuditRecord(*row) for row in rows]

    # ------------------------------------------------------------------ evaluation figures

    def figures(self, knowledge: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM figures WHERE knowledge = ?",
                                   (knowledge,)).fetchone()
        return json.loads(row[0]) if row else None

    def save_figures(self, knowledge: str, data: dict, now: float) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO figures VALUES (?, ?, ?)",
                             (knowledge, json.dumps(data, ensure_ascii=False), now))

    # ------------------------------------------------------------------ file versions

    def keep(self, key: str, text: str, now: float) -> None:
        """Keep a version of a file under its digest (what an editor opened)."""
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?, ?)", (key, text, now))
            self._db.execute("DELETE FROM blobs WHERE at < ?", (now - 30 * 86400,))

    def kept(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT text FROM blobs WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
