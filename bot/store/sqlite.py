"""The embedded store: conversations, journal, statistics and de-duplication in one SQLite file."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path

from bot.store.base import Conversation, Unanswered

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (key TEXT PRIMARY KEY, state TEXT NOT NULL,
                                          expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS replies (at REAL NOT NULL, channel TEXT NOT NULL, kind TEXT NOT NULL,
                                    entry_id TEXT, score REAL NOT NULL);
CREATE TABLE IF NOT EXISTS unanswered (at REAL NOT NULL, channel TEXT NOT NULL,
                                       chat TEXT NOT NULL, user TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS votes (at REAL NOT NULL, channel TEXT NOT NULL, user TEXT NOT NULL,
                                  entry_id TEXT NOT NULL, useful INTEGER NOT NULL,
                                  PRIMARY KEY (channel, user, entry_id));
CREATE INDEX IF NOT EXISTS conversations_expires ON conversations (expires);
CREATE TABLE IF NOT EXISTS seen_messages (key TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen_messages (at);
CREATE INDEX IF NOT EXISTS replies_at ON replies (at);
CREATE INDEX IF NOT EXISTS unanswered_at ON unanswered (at);
"""


log = logging.getLogger(__name__)
PRUNE_EVERY = 60.0  # seconds between deletions of statistics older than the retention


def _check_writable(path: Path) -> None:
    """Raise OSError naming the file if the database or its WAL files cannot be written.

    SQLite maps `-shm` into memory: found unwritable at open, it is refused here (the bot
    then answers from memory); cut short while the bot runs, the next access is a SIGBUS that
    no program can catch (README "When things fail").
    """
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        candidate = path.with_name(name)
        if candidate.exists():
            with candidate.open("r+b"):  # opening for writing fails where writing would
                pass


class SQLiteStore:
    """The embedded Store: one SQLite file, safe to share between threads."""

    def __init__(self, path: Path | str, retention: float = 90 * 86400.0) -> None:
        self.retention = retention
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            _check_writable(Path(path))
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

    def conversation_lock(self, key: str) -> AbstractContextManager[object]:
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
                for table in ("replies", "unanswered", "votes"):
                    self._db.execute(f"DELETE FROM {table} WHERE at < ?",
                                     (at - self.retention,))
                # Expired conversations go by the index on expires, a day after they lapse.
                self._db.execute("DELETE FROM conversations WHERE expires <= ?", (at - 86400,))

    def log_unanswered(self, item: Unanswered) -> None:
        """Record a question the knowledge did not cover."""
        with self._lock, self._db:
            self._db.execute("INSERT INTO unanswered VALUES (?, ?, ?, ?, ?)",
                             (item.at, item.channel, item.chat, item.user, item.text))

    def record_feedback(self, at: float, channel: str, user: str, entry_id: str,
                        useful: bool) -> bool:
        """Record one user's 👍 (useful) or 👎 on an entry; a second press replaces the first.

        Returns whether this is the user's first vote on the entry.
        """
        with self._lock, self._db:
            first = self._db.execute(
                "SELECT 1 FROM votes WHERE channel = ? AND user = ? AND entry_id = ?",
                (channel, user, entry_id)).fetchone() is None
            self._db.execute("INSERT OR REPLACE INTO votes VALUES (?, ?, ?, ?, ?)",
                             (at, channel, user, entry_id, int(useful)))
        return first

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
                "SELECT COALESCE(SUM(useful), 0), COALESCE(SUM(1 - useful), 0) FROM votes "
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

    # Read-only views for the knowledge console (bot/console/journal.py).

    def reply_summary(self, since: float) -> list[tuple[str, str, str, int]]:
        """Count replies per UTC day, channel and kind since a Unix time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT strftime('%Y-%m-%d', at, 'unixepoch'), channel, kind, COUNT(*) "
                "FROM replies WHERE at >= ? GROUP BY 1, 2, 3", (since,)).fetchall()
        return [(day, channel, kind, int(n)) for day, channel, kind, n in rows]

    def entry_counts(self, since: float, limit: int) -> list[tuple[str, int]]:
        """Return the most often answered entries since a Unix time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT entry_id, COUNT(*) AS n FROM replies WHERE at >= ? AND kind = 'answer' "
                "AND entry_id IS NOT NULL GROUP BY entry_id ORDER BY n DESC, entry_id LIMIT ?",
                (since, limit)).fetchall()
        return [(entry, int(n)) for entry, n in rows]

    def votes_since(self, since: float) -> list[tuple[float, str, str, bool]]:
        """Return the votes (at, channel, entry, useful) cast since a Unix time."""
        with self._lock:
            rows = self._db.execute("SELECT at, channel, entry_id, useful FROM votes "
                                    "WHERE at >= ? ORDER BY at DESC", (since,)).fetchall()
        return [(at, channel, entry, bool(useful)) for at, channel, entry, useful in rows]

    def unanswered_since(self, since: float, limit: int) -> list[Unanswered]:
        """Return the unanswered questions since a Unix time, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT at, channel, chat, user, text FROM unanswered WHERE at >= ? "
                "ORDER BY at DESC LIMIT ?", (since, limit)).fetchall()
        return [Unanswered(*row) for row in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


