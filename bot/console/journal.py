"""What the console reads from the bot's store: replies per day, votes, unanswered questions.

The store's Stats port gives totals (the numbers `/stats` prints); the dashboard and the inbox
need rows too. SQLite has read methods for them; with Redis (replicas) the same records are
read from the sorted sets RedisStore writes. While the store is degraded the in-memory
fallback is read, as `/stats` does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any, Protocol

from bot.store.base import Stats, Unanswered
from bot.store.resilient import STORE_ERRORS


class _Rows(Protocol):
    def reply_summary(self, since: float) -> list[tuple[str, str, str, int]]: ...

    def entry_counts(self, since: float, limit: int) -> list[tuple[str, int]]: ...

    def votes_since(self, since: float) -> list[tuple[float, str, str, bool]]: ...

    def unanswered_since(self, since: float, limit: int) -> list[Unanswered]: ...


class _RedisRows:
    """The same rows from RedisStore's keys (replies and unanswered by time, votes a hash)."""

    def __init__(self, store: Any) -> None:
        self.client = store.client
        self.prefix = store.prefix

    def _since(self, name: str, since: float) -> list[tuple[dict, float]]:
        members = self.client.zrangebyscore(self.prefix + name, since, "+inf", withscores=True)
        return [(json.loads(m), float(at)) for m, at in members]

    def reply_summary(self, since: float) -> list[tuple[str, str, str, int]]:
        counts = Counter((_day(at), r["channel"], r["kind"]) for r, at in self._since("replies",
                                                                                      since))
        return [(*key, n) for key, n in counts.items()]

    def entry_counts(self, since: float, limit: int) -> list[tuple[str, int]]:
        counts = Counter(r["entry"] for r, _ in self._since("replies", since)
                         if r["kind"] == "answer" and r.get("entry"))
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    def votes_since(self, since: float) -> list[tuple[float, str, str, bool]]:
        rows = []
        for member, value in self.client.hgetall(self.prefix + "votes").items():
            who, vote = json.loads(member), json.loads(value)
            if vote["at"] >= since:
                rows.append((float(vote["at"]), who["channel"], who["entry"],
                             bool(vote["useful"])))
        return sorted(rows, reverse=True)

    def unanswered_since(self, since: float, limit: int) -> list[Unanswered]:
        rows = [Unanswered(r["at"], r["channel"], r["chat"], r["user"], r["text"])
                for r, _ in self._since("unanswered", since)]
        return sorted(rows, key=lambda u: -u.at)[:limit]


def _day(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d")


class Journal:
    """Rows and totals from whichever store serves now."""

    def __init__(self, store: Stats) -> None:
        self.store = store  # the ResilientStore the bot writes to

    def _rows(self) -> _Rows:
        live: Any = getattr(self.store, "fallback", None) or getattr(self.store, "primary",
                                                                      self.store)
        if hasattr(live, "reply_summary"):
            return live  # type: ignore[no-any-return]
        if hasattr(live, "client") and hasattr(live, "prefix"):
            return _RedisRows(live)
        raise TypeError(f"the console cannot read a {type(live).__name__}")

    def _read(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._rows(), name)(*args)
        except STORE_ERRORS:
            return []  # an outage: show what the totals show, and no rows

    def reply_summary(self, since: float) -> list[tuple[str, str, str, int]]:
        return list(self._read("reply_summary", since))

    def entry_counts(self, since: float, limit: int) -> list[tuple[str, int]]:
        return list(self._read("entry_counts", since, limit))

    def votes_since(self, since: float) -> list[tuple[float, str, str, bool]]:
        return list(self._read("votes_since", since))

    def unanswered_since(self, since: float, limit: int) -> list[Unanswered]:
        return list(self._read("unanswered_since", since, limit))
