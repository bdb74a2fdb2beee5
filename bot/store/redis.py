"""Shared state for several replicas: a Redis store, a Redis rate limiter, reload fan-out.

With `REDIS_URL` set, conversation state (pending clarifications), message-id de-duplication,
rate limits and statistics live in Redis, so any replica can continue any conversation. A
`/reload` on one replica bumps a knowledge version key; every replica polls it and reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.kb.service import KnowledgeService
from bot.store.base import Conversation, Unanswered

log = logging.getLogger(__name__)

VERSION_KEY = "knowledge:version"


class RedisStore:
    """The Store protocol on Redis: keys expire by themselves, history is trimmed by age."""

    def __init__(self, url: str, retention: float, prefix: str = "xhsbot:",
                 check: bool = True) -> None:
        # Short waits: a frozen or dead Redis must not hold a message for long (WeCom allows
        # 5 s; without a socket timeout a frozen Redis held every call until it thawed); the
        # resilient wrapper answers from memory instead. One immediate retry on a broken
        # connection (a Redis restart breaks the pooled ones), none on a timeout, whatever
        # this redis-py version's default.
        self.client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
        if check:
            self.client.ping()  # fail at start, not at the first message
        self.retention = retention
        self.prefix = prefix

    def _k(self, name: str) -> str:
        return self.prefix + name

    def load_conversation(self, key: str, now: float) -> Conversation:
        # decode_responses=True: replies are str (redis-py's types cannot tell), here and below.
        raw = cast("str | None", self.client.get(self._k(f"conv:{key}")))
        return Conversation.from_json(raw) if raw else Conversation()

    def save_conversation(self, key: str, conversation: Conversation, expires: float) -> None:
        self.client.set(self._k(f"conv:{key}"), conversation.to_json(),
                        exat=max(int(expires), int(time.time()) + 1))

    @contextlib.contextmanager
    def conversation_lock(self, key: str) -> Iterator[None]:
        """Hold a conversation across replicas while its state is read and written back."""
        with self.client.lock(self._k(f"lock:{key}"), timeout=10, blocking_timeout=2):
            yield

    def _log(self, name: str, at: float, record: dict) -> None:
        member = json.dumps({**record, "_id": uuid.uuid4().hex}, ensure_ascii=False)
        pipe = self.client.pipeline()
        pipe.zadd(self._k(name), {member: at})
        pipe.zremrangebyscore(self._k(name), "-inf", at - self.retention)
        pipe.execute()

    def _since(self, name: str, since: float) -> list[dict]:
        members = cast("list[str]", self.client.zrangebyscore(self._k(name), since, "+inf"))
        return [json.loads(m) for m in members]

    def log_reply(self, at: float, channel: str, kind: str, entry_id: str | None,
                  score: float) -> None:
        self._log("replies", at, {"channel": channel, "kind": kind, "entry": entry_id})

    def log_unanswered(self, item: Unanswered) -> None:
        self._log("unanswered", item.at, {"at": item.at, "channel": item.channel,
                                          "chat": item.chat, "user": item.user,
                                          "text": item.text})

    def record_feedback(self, at: float, channel: str, user: str, entry_id: str,
                        useful: bool) -> bool:
        """Keep one vote per user and entry (a second press replaces the first)."""
        member = json.dumps({"channel": channel, "user": user, "entry": entry_id},
                            ensure_ascii=False)
        added = self.client.hset(self._k("votes"), member,
                                 json.dumps({"at": at, "useful": useful}))
        return bool(added)  # HSET counts the fields it created: 0 when the vote is replaced

    def latest_unanswered(self, limit: int) -> list[Unanswered]:
        rows = cast("list[str]", self.client.zrevrange(self._k("unanswered"), 0, limit - 1))
        return [Unanswered(**{k: v for k, v in json.loads(r).items() if k != "_id"})
                for r in rows]

    def reply_counts(self, since: float) -> dict[str, int]:
        return dict(Counter(r["kind"] for r in self._since("replies", since)))

    def feedback_counts(self, since: float) -> tuple[int, int]:
        votes = [v["useful"] for v in map(json.loads, self.client.hvals(self._k("votes")))
                 if v["at"] >= since]
        return sum(votes), len(votes) - sum(votes)

    def top_unanswered(self, since: float, limit: int) -> list[tuple[str, int]]:
        return Counter(r["text"] for r in self._since("unanswered", since)).most_common(limit)

    def first_sighting(self, key: str, now: float, ttl: float) -> bool:
        return bool(self.client.set(self._k(f"seen:{key}"), "1", nx=True, ex=max(int(ttl), 1)))

    def knowledge_version(self) -> int:
        return int(self.client.get(self._k(VERSION_KEY)) or 0)

    def announce_reload(self) -> int:
        """Tell every replica the knowledge changed; return the new version."""
        return int(self.client.incr(self._k(VERSION_KEY)))

    def ping(self) -> None:
        """Raise unless Redis answers."""
        self.client.ping()

    def close(self) -> None:
        self.client.close()


async def watch_reloads(store: RedisStore, service: KnowledgeService, stop: asyncio.Event,
                        interval: float = 1.0,
                        on_reload: Callable[[], None] | None = None) -> None:
    """Reload this replica's knowledge whenever another replica announces a reload.

    While Redis is unreachable this replica keeps its index (one warning, not one a second);
    a version that changed meanwhile is followed once Redis answers again.
    """
    seen: int | None = None
    unreachable = False
    while not stop.is_set():
        try:
            version = await asyncio.to_thread(store.knowledge_version)
        except redis.RedisError as exc:
            if not unreachable:
                log.warning("cannot follow other replicas' reloads while Redis is "
                            "unreachable (%s)", type(exc).__name__)
            unreachable = True
        else:
            unreachable = False
            if seen is not None and version != seen:
                try:
                    report = await asyncio.to_thread(service.reload)
                    log.info("knowledge reloaded after another replica's /reload: %d entries",
                             report.entries)
                    if on_reload:
                        on_reload()
                except Exception:
                    # A broken file must not stop this replica serving.
                    log.exception("following another replica's reload failed; serving the "
                                  "old index")
            seen = version
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
