"""Conversation state, unanswered questions, reply log and feedback behind one small interface.

SQLite in the data directory is the embedded default; another backend (Redis) implements the
same `Store` protocol.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from bot.dialogue.replies import Option


@dataclass
class Pending:
    """A clarifying question (or offered suggestions) waiting for the user's pick."""

    kind: str  # "concept", "candidates" or "suggest"
    question: str  # the user's message that led to it
    options: list[Option]
    concept: str | None = None
    asked_at: float = 0.0


@dataclass
class Conversation:
    """What the bot remembers of one (channel, chat, user) conversation."""

    pending: Pending | None = None
    history: list[str] = field(default_factory=list)  # recent normalised user messages

    def to_json(self) -> str:
        """Serialise for storage."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Conversation:
        """Restore from to_json output."""
        data = json.loads(raw)
        pending = data.get("pending")
        if pending:
            pending["options"] = [Option(**o) for o in pending["options"]]
            pending = Pending(**pending)
        return cls(pending=pending, history=list(data.get("history", [])))


@dataclass(frozen=True)
class Unanswered:
    """A question the knowledge base could not answer."""

    at: float
    channel: str
    chat: str
    user: str
    text: str


class Store(Protocol):
    """Persistence used by the dialogue engine and the channels."""

    def load_conversation(self, key: str, now: float) -> Conversation: ...

    def save_conversation(self, key: str, conversation: Conversation, expires: float) -> None: ...

    def log_reply(self, at: float, channel: str, kind: str, entry_id: str | None,
                  score: float) -> None: ...

    def log_unanswered(self, item: Unanswered) -> None: ...

    def record_feedback(self, at: float, channel: str, user: str, entry_id: str,
                        useful: bool) -> None: ...

    def latest_unanswered(self, limit: int) -> list[Unanswered]: ...

    def reply_counts(self, since: float) -> dict[str, int]: ...

    def feedback_counts(self, since: float) -> tuple[int, int]: ...

    def first_sighting(self, key: str, now: float, ttl: float) -> bool: ...

    def conversation_lock(self, key: str) -> AbstractContextManager: ...

    def top_unanswered(self, since: float, limit: int) -> list[tuple[str, int]]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (key TEXT PRIMARY KEY, state TEXT NOT NULL,
                                          expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS replies (at REAL NOT NULL, channel TEXT NOT NULL, kind TEXT NOT NULL,
                                    entry_id TEXT, score REAL NOT NULL);
CREATE TABLE IF NOT EXISTS unanswered (at REAL NOT NULL, channel TEXT NOT NULL,
                                       chat TEXT NOT NULL, user TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (at REAL NOT NULL, channel TEXT NOT NULL, user TEXT NOT NULL,
                                     entry_id TEXT NOT NULL, useful INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen_messages (key TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen_messages (at);
CREATE INDEX IF NOT EXISTS replies_at ON replies (at);
CREATE INDEX IF NOT EXISTS unanswered_at ON unanswered (at);
"""


log = logging.getLogger(__name__)
PRUNE_EVERY = 60.0  # seconds between deletions of statistics older than the retention


class SQLiteStore:
    """The embedded Store: one SQLite file, safe to share between threads."""

    def __init__(self, path: Path | str, retention: float = 90 * 86400.0) -> None:
        self.retention = retention
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        self._lock = threading.Lock()
        with self._lock, self._db:
            if str(path) != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL survives a crash of this process and skips an fsync per
                # commit; only a power cut can lose the last replies' statistics.
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        self._pruned_at = 0.0

    def load_conversation(self, key: str, now: float) -> Conversation:
        """Return the conversation's state, or a fresh one if none is stored or it expired."""
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM conversations WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
        return Conversation.from_json(row[0]) if row else Conversation()

    def save_conversation(self, key: str, conversation: Conversation, expires: float) -> None:
        """Store the conversation's state until expires (a Unix time)."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO conversations VALUES (?, ?, ?)",
                (key, conversation.to_json(), expires),
            )
            self._db.execute("DELETE FROM conversations WHERE expires <= ?", (expires - 86400,))

    def conversation_lock(self, key: str) -> AbstractContextManager:
        """One process owns SQLite: the engine's own per-conversation lock is enough."""
        return contextlib.nullcontext()

    def log_reply(self, at: float, channel: str, kind: str, entry_id: str | None,
                  score: float) -> None:
        """Record one reply for statistics (kept for the retention period)."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO replies VALUES (?, ?, ?, ?, ?)",
                             (at, channel, kind, entry_id, score))
            if at - self._pruned_at >= PRUNE_EVERY:  # retention is in days: once a minute will do
                self._pruned_at = at
                for table in ("replies", "unanswered", "feedback"):
                    self._db.execute(f"DELETE FROM {table} WHERE at < ?",
                                     (at - self.retention,))

    def log_unanswered(self, item: Unanswered) -> None:
        """Record a question the knowledge did not cover."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO unanswered VALUES (?, ?, ?, ?, ?)",
                             (item.at, item.channel, item.chat, item.user, item.text))

    def record_feedback(self, at: float, channel: str, user: str, entry_id: str,
                        useful: bool) -> None:
        """Record a 👍 (useful) or 👎 on an answer."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?)",
                             (at, channel, user, entry_id, int(useful)))

    def latest_unanswered(self, limit: int) -> list[Unanswered]:
        """Return the most recent unanswered questions, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, channel, chat, user, text FROM unanswered ORDER BY at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Unanswered(*row) for row in rows]

    def reply_counts(self, since: float) -> dict[str, int]:
        """Count replies by kind since a Unix time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, COUNT(*) FROM replies WHERE at >= ? GROUP BY kind", (since,)
            ).fetchall()
        return dict(rows)

    def first_sighting(self, key: str, now: float, ttl: float) -> bool:
        """Remember a platform message id; False if it was already seen within ttl seconds.

        Platforms retry deliveries they think were lost: this is what answers each once.
        """
        with self._lock, self._db:
            self._db.execute("DELETE FROM seen_messages WHERE at < ?", (now - ttl,))
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen_messages VALUES (?, ?)", (key, now))
            return cursor.rowcount == 1

    def feedback_counts(self, since: float) -> tuple[int, int]:
        """Count 👍 and 👎 since a Unix time."""
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(useful), 0), COALESCE(SUM(1 - useful), 0) FROM feedback "
                "WHERE at >= ?", (since,)
            ).fetchone()
        return int(row[0]), int(row[1])

    def top_unanswered(self, since: float, limit: int) -> list[tuple[str, int]]:
        """Return the most often asked unanswered questions since a Unix time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT text, COUNT(*) AS n FROM unanswered WHERE at >= ? GROUP BY text "
                "ORDER BY n DESC, MAX(at) DESC LIMIT ?", (since, limit)
            ).fetchall()
        return [(text, int(n)) for text, n in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


STORE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
try:  # Redis errors count too when the redis client is installed
    import redis.exceptions

    STORE_ERRORS = (*STORE_ERRORS, redis.exceptions.RedisError)
except ImportError:  # pragma: no cover - redis is a dependency; this guards odd installs
    log.debug("redis client not installed; only SQLite errors are caught")


class ResilientStore:
    """Use a store; when it fails (read-only or full disk, Redis gone), say so and go on in memory.

    The first failure is logged as an error naming the cause; from then on this process keeps
    conversations and statistics in memory, so answering never stops. A restart with the
    problem fixed returns to the real store.
    """

    def __init__(self, primary: Store, retention: float = 90 * 86400.0) -> None:
        self.primary = primary
        self.retention = retention
        self.fallback: SQLiteStore | None = None

    @property
    def degraded(self) -> bool:
        return self.fallback is not None

    def degrade(self, error: BaseException) -> SQLiteStore:
        """Switch to memory (once), logging why."""
        if self.fallback is None:
            log.error("the store failed (%s: %s); continuing in memory: conversations and "
                      "statistics from now on are kept only until this process stops",
                      type(error).__name__, error)
            self.fallback = SQLiteStore(":memory:", self.retention)
        return self.fallback

    def __getattr__(self, name: str):
        if self.fallback is not None:
            return getattr(self.fallback, name)
        target = getattr(self.primary, name)
        if not callable(target):
            return target

        def call(*args: object, **kwargs: object) -> object:
            try:
                return target(*args, **kwargs)
            except STORE_ERRORS as exc:
                return getattr(self.degrade(exc), name)(*args, **kwargs)

        return call
