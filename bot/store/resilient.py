"""Keep answering when the store fails: degrade to memory with live state, and come back.

The first failure is logged once, naming the cause; from then on this process keeps
conversations, statistics and seen message ids in memory, starting from the ones it handled
recently (so an open clarification survives and a retried message is still recognised). Every
few seconds it probes the real store; once that answers, the conversations changed, message ids
seen and statistics recorded meanwhile are written back and the real store serves again.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

from bot.ops import metrics
from bot.store.base import Conversation, Store, Unanswered
from bot.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)
T = TypeVar("T")

STORE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
LOCK_BUSY: tuple[type[BaseException], ...] = ()  # a lock held elsewhere: contention, no outage
try:  # Redis errors count too when the redis client is installed
    import redis.exceptions

    STORE_ERRORS = (*STORE_ERRORS, redis.exceptions.RedisError)
    LOCK_BUSY = (redis.exceptions.LockError,)
except ImportError:  # pragma: no cover - redis is a dependency; this guards odd installs
    log.debug("redis client not installed; only SQLite errors are caught")

RECENT = 10_000  # conversations and message ids remembered for a switch to memory
JOURNAL_KEPT = 100_000  # statistics records kept during an outage, to write back
PROBE_EVERY = 5.0  # seconds between attempts to reach a failed store again


class ResilientStore:
    """A Store that never fails: the real one while it works, memory while it does not."""

    def __init__(self, primary: Store, retention: float = 90 * 86400.0,
                 clock: Callable[[], float] = time.monotonic,
                 probe: Callable[[], object] | None = None) -> None:
        self.primary = primary
        self.retention = retention
        self.clock = clock
        self.fallback: SQLiteStore | None = None
        self._probe = probe  # None: a local store is not probed; a restart brings it back
        self._probed_at = 0.0
        self._guard = threading.Lock()
        self._conversations: OrderedDict[str, tuple[Conversation, float]] = OrderedDict()
        self._seen: OrderedDict[str, tuple[float, float]] = OrderedDict()  # id -> (at, ttl)
        self._changed_while_down: set[str] = set()
        self._seen_while_down: dict[str, tuple[float, float]] = {}
        self._journal_while_down: deque[tuple[str, Callable[[Store], object]]] = deque(
            maxlen=JOURNAL_KEPT)

    @property
    def degraded(self) -> bool:
        return self.fallback is not None

    def degrade(self, error: BaseException) -> SQLiteStore:
        """Switch to memory (once per outage), seeded with recent live state; log why."""
        with self._guard:
            if self.fallback is None:
                log.error("the store failed (%s: %s); continuing in memory until it is back",
                          type(error).__name__, error)
                metrics.STORE_DEGRADED.set(1)
                fallback = SQLiteStore(":memory:", self.retention)
                for key, (conversation, expires) in self._conversations.items():
                    fallback.save_conversation(key, conversation, expires)
                for key, (at, _ttl) in self._seen.items():
                    fallback.first_sighting(key, at, float("inf"))
                self.fallback = fallback
                self._probed_at = self.clock()
            return self.fallback

    def recover(self, force: bool = False) -> bool:
        """Probe the real store (at most every PROBE_EVERY seconds unless forced); once it
        answers, write back what changed meanwhile and serve from it again. Tell whether the
        real store serves."""
        with self._guard:
            if self.fallback is None:
                return True
            if self._probe is None or (not force
                                       and self.clock() - self._probed_at < PROBE_EVERY):
                return False
            self._probed_at = self.clock()
        try:
            self._probe()
        except STORE_ERRORS as exc:
            log.debug("store still unavailable: %s", exc)
            return False
        # Under the guard, so nothing recorded meanwhile misses the write-back: conversations
        # changed in memory win (they are the newest this process knows), and message ids seen
        # meanwhile are added (never overwriting), so another replica recognises their retries.
        with self._guard:
            try:
                for key in list(self._changed_while_down):
                    conversation, expires = self._conversations.get(key, (None, 0.0))
                    if conversation is not None:
                        self.primary.save_conversation(key, conversation, expires)
                    self._changed_while_down.discard(key)
                for key, (at, ttl) in list(self._seen_while_down.items()):
                    self.primary.first_sighting(key, at, ttl)
                    del self._seen_while_down[key]
            except STORE_ERRORS as exc:
                log.debug("store failed again while catching up: %s", exc)
                return False
            self.fallback = None
            metrics.STORE_DEGRADED.set(0)
            journal = list(self._journal_while_down)
            self._journal_while_down.clear()
        log.warning("the store is back; shared state serves again (%d statistics records "
                    "from the outage written back)", len(journal))
        for name, use in journal:  # replies, unanswered questions and votes of the outage
            self._record(name, use)
        return True

    def _recover(self) -> None:
        if self.fallback is not None:
            self.recover()

    def _call(self, name: str, use: Callable[[Store], T]) -> T:
        return self._serve(name, use)[0]

    def _serve(self, name: str, use: Callable[[Store], T]) -> tuple[T, bool]:
        """Run use on the store that serves; tell whether that was memory."""
        self._recover()
        fallback = self.fallback
        if fallback is not None:
            return use(fallback), True
        try:
            return use(self.primary), False
        except STORE_ERRORS as exc:
            metrics.ERRORS.labels(f"store.{name}").inc()
            return use(self.degrade(exc)), True

    # ------------------------------------------------------------------ conversations

    def load_conversation(self, key: str, now: float) -> Conversation:
        return self._call("load", lambda s: s.load_conversation(key, now))

    def save_conversation(self, key: str, conversation: Conversation, expires: float) -> None:
        with self._guard:
            self._conversations[key] = (conversation, expires)
            self._conversations.move_to_end(key)
            while len(self._conversations) > RECENT:
                self._conversations.popitem(last=False)
            if self.fallback is not None:
                self._changed_while_down.add(key)
        self._call("save", lambda s: s.save_conversation(key, conversation, expires))
        if self.fallback is not None:  # this very save may have been the first to fail
            with self._guard:
                self._changed_while_down.add(key)

    @contextlib.contextmanager
    def conversation_lock(self, key: str) -> Iterator[None]:
        """Hold the real store's lock; without one (an outage) the process's own lock does."""
        lock: AbstractContextManager[object] = contextlib.nullcontext()
        self._recover()
        if self.fallback is None:
            try:
                lock = self.primary.conversation_lock(key)
                lock.__enter__()
            except LOCK_BUSY as exc:
                # Another replica held this conversation too long: go on rather than drop
                # the message (the store itself works, so this is no reason to degrade).
                log.warning("conversation lock not acquired in time (%s); going on", exc)
                lock = contextlib.nullcontext()
            except STORE_ERRORS as exc:
                metrics.ERRORS.labels("store.lock").inc()
                self.degrade(exc)
                lock = contextlib.nullcontext()
        try:
            yield
        finally:
            try:
                lock.__exit__(None, None, None)
            except STORE_ERRORS as exc:  # the lock expires by itself in the real store
                log.debug("releasing a conversation lock failed: %s", exc)

    # ------------------------------------------------------------------ journal and stats

    def log_reply(self, at: float, channel: str, kind: str, entry_id: str | None,
                  score: float) -> None:
        self._record("log_reply", lambda s: s.log_reply(at, channel, kind, entry_id, score))

    def log_unanswered(self, item: Unanswered) -> None:
        self._record("log_unanswered", lambda s: s.log_unanswered(item))

    def record_feedback(self, at: float, channel: str, user: str, entry_id: str,
                        useful: bool) -> bool:
        return self._record("feedback",
                            lambda s: s.record_feedback(at, channel, user, entry_id, useful))

    def _record(self, name: str, use: Callable[[Store], T]) -> T:
        """Journal something; what memory took during an outage is replayed on recovery."""
        result, in_memory = self._serve(name, use)
        if in_memory:
            with self._guard:
                catch_up = self.fallback is None  # recovered meanwhile
                if not catch_up:
                    self._journal_while_down.append((name, use))
            if catch_up:
                self._record(name, use)
        return result

    def latest_unanswered(self, limit: int) -> list[Unanswered]:
        return self._call("stats", lambda s: s.latest_unanswered(limit))

    def reply_counts(self, since: float) -> dict[str, int]:
        return self._call("stats", lambda s: s.reply_counts(since))

    def feedback_counts(self, since: float) -> tuple[int, int]:
        return self._call("stats", lambda s: s.feedback_counts(since))

    def top_unanswered(self, since: float, limit: int) -> list[tuple[str, int]]:
        return self._call("stats", lambda s: s.top_unanswered(since, limit))

    # ------------------------------------------------------------------ de-duplication

    def first_sighting(self, key: str, now: float, ttl: float) -> bool:
        first, in_memory = self._serve("dedup", lambda s: s.first_sighting(key, now, ttl))
        # Remembered after the call: if this very call fails over to memory, the memory store
        # must not know the id yet (it would take the message for a retry and drop it).
        with self._guard:
            if first or key not in self._seen:
                self._seen[key] = (now, ttl)
            self._seen.move_to_end(key)
            while len(self._seen) > RECENT:
                self._seen.popitem(last=False)
            catch_up = in_memory and self.fallback is None  # the write-back ran meanwhile
            if in_memory and not catch_up:
                self._seen_while_down.setdefault(key, (now, ttl))
                if len(self._seen_while_down) > RECENT:  # retries come within minutes
                    del self._seen_while_down[next(iter(self._seen_while_down))]
        if catch_up:
            self._call("dedup", lambda s: s.first_sighting(key, now, ttl))
        return first

    def close(self) -> None:
        with contextlib.suppress(*STORE_ERRORS):
            self.primary.close()


def reload_announcer(store: object) -> Callable[[], object] | None:
    """Return how to tell the other replicas to reload (None without replicas); with Redis
    down it logs that they were not told instead of failing the reload or publish."""
    primary = getattr(store, "primary", store)
    announce = getattr(primary, "announce_reload", None)
    if announce is None:
        return None

    def safely() -> object:
        try:
            return announce()
        except STORE_ERRORS as exc:
            log.error("reloaded here, but other replicas were not told (%s); send /reload to "
                      "them once Redis is back", type(exc).__name__)
            return None

    return safely
