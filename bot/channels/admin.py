"""Admin commands shared by every channel: reload the knowledge, statistics, unanswered questions.

They return plain text; each channel escapes it for its own format.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from bot.kb.loader import KnowledgeError
from bot.kb.service import KnowledgeService
from bot.ops import metrics
from bot.store.sqlite import Store

ADMIN_COMMANDS = ("reload", "stats", "unanswered")
REFUSAL = "这个命令仅限管理员使用。"
GROUP_NOTICE = "管理命令请在和机器人的私聊中使用。"
_KINDS = (("answer", "回答"), ("clarify", "反问澄清"), ("fallback", "无法回答"))


class AdminConsole:
    """Run admin commands against the live knowledge and the store."""

    def __init__(self, service: KnowledgeService, store: Store,
                 clock: Callable[[], float] = time.time,
                 announce: Callable[[], object] | None = None) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self.announce = announce  # tells other replicas to reload too

    def run(self, command: str, argument: str = "") -> str:
        """Run one admin command by name; blocking (call it off the event loop)."""
        if command == "reload":
            return self.reload()
        if command == "stats":
            return self.stats(argument)
        if command == "unanswered":
            return self.unanswered(argument)
        raise ValueError(f"unknown admin command {command!r}")

    def reload(self) -> str:
        """Re-read the knowledge, validate, rebuild and swap; report what changed."""
        try:
            report = self.service.reload()
        except KnowledgeError as exc:
            metrics.RELOADS.labels("invalid").inc()
            lines = [str(p) for p in exc.problems[:20]]
            more = len(exc.problems) - len(lines)
            if more > 0:
                lines.append(f"……还有 {more} 处")
            return ("知识库文件有错误，没有重新加载，仍在使用之前的版本：\n" + "\n".join(lines))
        metrics.RELOADS.labels("ok").inc()
        if self.announce:
            self.announce()
        parts = [f"已重新加载知识库：共 {report.entries} 条，用时 {report.seconds:.2f} 秒。"]
        for label, ids in (("新增", report.added), ("修改", report.changed),
                           ("删除", report.removed)):
            parts.append(f"{label} {len(ids)} 条" + (f"：{', '.join(ids)}" if ids else ""))
        return "\n".join(parts)

    def stats(self, argument: str = "") -> str:
        """Count replies by kind, feedback and the top unanswered questions since a date."""
        try:
            since = _since(argument.strip(), self.clock())
        except ValueError:
            return "用法：/stats [开始日期，如 2026-11-01]（默认最近 7 天）"
        counts = self.store.reply_counts(since)
        up, down = self.store.feedback_counts(since)
        day = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d")
        lines = [f"自 {day} 起："]
        lines += [f"{label}：{counts.get(kind, 0)}" for kind, label in _KINDS]
        lines.append(f"反馈：👍 {up}　👎 {down}")
        top = self.store.top_unanswered(since, 5)
        if top:
            lines.append("最常见的未回答问题：")
            lines += [f"{i}. {text}（{n} 次）" for i, (text, n) in enumerate(top, 1)]
        return "\n".join(lines)

    def unanswered(self, argument: str = "") -> str:
        """List the latest unanswered questions."""
        try:
            limit = min(max(int(argument or 10), 1), 50)
        except ValueError:
            return "用法：/unanswered [条数，默认 10]"
        items = self.store.latest_unanswered(limit)
        if not items:
            return "还没有未回答的问题。"
        lines = [f"最近 {len(items)} 个未回答的问题："]
        for item in items:
            when = dt.datetime.fromtimestamp(item.at, dt.UTC).strftime("%m-%d %H:%M")
            lines.append(f"{when} [{item.channel}] {item.text}")
        return "\n".join(lines)


def _since(argument: str, now: float) -> float:
    """Parse a YYYY-MM-DD start date (UTC); default: seven days ago."""
    if not argument:
        return now - 7 * 86400
    day = dt.datetime.strptime(argument, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    return day.timestamp()
