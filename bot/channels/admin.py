"""Admin commands shared by every channel: reload the knowledge, statistics, unanswered
questions and entries due for review.

They return plain text; each channel escapes it for its own format.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from bot.copy import say
from bot.kb.freshness import needing_review
from bot.kb.loader import KnowledgeError
from bot.kb.service import KnowledgeService
from bot.ops import metrics
from bot.store.base import Stats

ADMIN_COMMANDS = ("reload", "stats", "unanswered", "stale")
_KINDS = ("answer", "clarify", "fallback")


class AdminConsole:
    """Run admin commands against the live knowledge and the store."""

    def __init__(self, service: KnowledgeService, store: Stats,
                 clock: Callable[[], float] = time.time,
                 announce: Callable[[], object] | None = None) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self.announce = announce  # tells other replicas to reload too

    def run(self, command: str, argument: str = "") -> str:
        """Run one admin command by name; blocking (call it off the event loop)."""
        commands: dict[str, Callable[[str], str]] = {
            "reload": lambda _: self.reload(), "stats": self.stats,
            "unanswered": self.unanswered, "stale": lambda _: self.stale()}
        if command not in commands:
            raise ValueError(f"unknown admin command {command!r}")
        return commands[command](argument)

    def reload(self) -> str:
        """Re-read the knowledge, validate, rebuild and swap; report what changed."""
        try:
            report = self.service.reload()
        except KnowledgeError as exc:
            metrics.RELOADS.labels("invalid").inc()
            lines = [str(p) for p in exc.problems[:20]]
            more = len(exc.problems) - len(lines)
            if more > 0:
                lines.append(say("zh", "reload_more", more=more))
            return say("zh", "reload_failed", problems="\n".join(lines))
        metrics.RELOADS.labels("ok").inc()
        if self.announce:
            self.announce()
        parts = [say("zh", "reloaded", entries=report.entries, seconds=report.seconds)]
        for key, ids in (("reload_added", report.added), ("reload_changed", report.changed),
                         ("reload_removed", report.removed)):
            parts.append(say("zh", "reload_count", label=say("zh", key), count=len(ids))
                         + (f"：{', '.join(ids)}" if ids else ""))
        return "\n".join(parts)

    def stats(self, argument: str = "") -> str:
        """Count replies by kind, feedback and the top unanswered questions since a date."""
        try:
            since = _since(argument.strip(), self.clock())
        except ValueError:
            return say("zh", "stats_usage")
        counts = self.store.reply_counts(since)
        up, down = self.store.feedback_counts(since)
        day = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d")
        lines = [say("zh", "stats_since", day=day)]
        lines += [f"{say('zh', 'kind_' + kind)}：{counts.get(kind, 0)}" for kind in _KINDS]
        lines.append(say("zh", "stats_feedback", up=up, down=down))
        top = self.store.top_unanswered(since, 5)
        if top:
            lines.append(say("zh", "stats_top_unanswered"))
            lines += [f"{i}. {text}（{n} 次）" for i, (text, n) in enumerate(top, 1)]
        return "\n".join(lines)

    def unanswered(self, argument: str = "") -> str:
        """List the latest unanswered questions."""
        try:
            limit = min(max(int(argument or 10), 1), 50)
        except ValueError:
            return say("zh", "unanswered_usage")
        items = self.store.latest_unanswered(limit)
        if not items:
            return say("zh", "unanswered_none")
        lines = [say("zh", "unanswered_latest", count=len(items))]
        for item in items:
            when = dt.datetime.fromtimestamp(item.at, dt.UTC).strftime("%m-%d %H:%M")
            lines.append(f"{when} [{item.channel}] {item.text}")
        return "\n".join(lines)

    def stale(self) -> str:
        """List entries whose stated period has ended or whose as-of date is over a year old."""
        today = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()
        found = needing_review(self.service.current.kb.entries.values(), today)
        if not found:
            return say("zh", "stale_none")
        lines = [say("zh", "stale_header", count=len(found))]
        for entry, fresh in found:
            why = (say("zh", "stale_expired", valid_until=entry.valid_until) if fresh.expired
                   else say("zh", "stale_old", as_of=entry.as_of))
            lines.append(f"· {entry.id}（{entry.path}）：{why}")
        return "\n".join(lines)


def _since(argument: str, now: float) -> float:
    """Parse a YYYY-MM-DD start date (UTC); default: seven days ago."""
    if not argument:
        return now - 7 * 86400
    day = dt.datetime.strptime(argument, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    return day.timestamp()
