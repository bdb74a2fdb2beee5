"""Per-user question limits, so one user cannot flood a group or the encoder.

One sliding window, kept in memory, or in Redis when replicas share it. Only allowed questions
count: a refused attempt does not push the window forward. When Redis fails, the in-memory
window takes over and Redis is tried again a few seconds later.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable

from bot.store.resilient import STORE_ERRORS

log = logging.getLogger(__name__)
RETRY_SHARED = 5.0  # seconds before a failed shared window is tried again

# KEYS[1]: the user's window; ARGV: now, window, limit, member. Atomic across replicas.
_ALLOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return 1
"""


class RateLimiter:
    """Allow at most `limit` questions per `window` seconds for each key."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic,
                 shared: object | None = None, prefix: str = "xhsbot:rate:") -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()  # least recent first
        self._lock = threading.Lock()
        self._shared = shared  # a redis.Redis client, or None
        self._script = shared.register_script(_ALLOW) if shared is not None else None  # type: ignore[attr-defined]
        self._prefix = prefix
        self._shared_failed_at: float | None = None

    def allow(self, key: str) -> bool:
        """Record a question for key if it is within the limit; tell whether it is."""
        if self.limit <= 0:
            return True
        if self._script is not None and self._shared_usable():
            try:
                now = time.time()
                allowed = bool(self._script(keys=[self._prefix + key],
                                            args=[now, self.window, self.limit,
                                                  uuid.uuid4().hex]))
            except STORE_ERRORS as exc:
                # One warning per outage; the retries every RETRY_SHARED seconds stay quiet.
                (log.warning if self._shared_failed_at is None else log.debug)(
                    "shared rate limit unavailable (%s); limiting in memory", exc)
                self._shared_failed_at = self.clock()
            else:
                if self._shared_failed_at is not None:
                    log.warning("shared rate limit available again")
                    self._shared_failed_at = None
                return allowed
        return self._allow_locally(key)

    def _shared_usable(self) -> bool:
        with self._lock:
            failed = self._shared_failed_at
            if failed is None:
                return True
            if self.clock() - failed < RETRY_SHARED:
                return False
            # This caller tries Redis again; the others keep to memory meanwhile, so a frozen
            # Redis costs one question its timeout every few seconds, not every one in flight.
            self._shared_failed_at = self.clock()
            return True

    def _allow_locally(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                events = self._events[key] = deque()
            self._events.move_to_end(key)
            while events and now - events[0] >= self.window:
                events.popleft()
            allowed = len(events) < self.limit
            if allowed:
                events.append(now)
            # Forget users idle for a whole window, oldest first: O(1) per call, memory bounded.
            while self._events:
                oldest_key, oldest = next(iter(self._events.items()))
                if oldest and now - oldest[-1] < self.window:
                    break
                del self._events[oldest_key]
            return allowed
