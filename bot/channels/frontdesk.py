"""What every channel shares: the channel-neutral inbound message and the dialogue front desk.

A channel turns a platform event into an `Inbound`, hands it to `Dialogue`, and renders what
comes back. Rate limits, admin checks and running the (blocking) engine off the event loop live
here once, so adding a channel is adding one module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bot.channels.admin import ADMIN_COMMANDS, GROUP_NOTICE, REFUSAL, AdminConsole
from bot.dialogue.engine import ConversationKey, Engine
from bot.dialogue.replies import Reply
from bot.kb.service import KnowledgeService
from bot.ops import metrics
from bot.settings import Settings
from bot.store.ratelimit import RateLimiter
from bot.store.sqlite import Store

T = TypeVar("T")
RATE_LIMITED = "你提问太快了，请稍等一分钟再问。"
EMPTY_ASK = "请在命令后面写上你的问题，例如：/ask 个体店怎么开"
# Threads that run the (blocking) engine. Most of them wait, not work: the more questions are
# in flight, the larger the batches the encoder gathers (measured on 2 cores with all-new texts:
# 6 threads 50 replies/s, 12 → 61/s, 24 → 67/s).
ENGINE_THREADS = 32


class Limiter(Protocol):
    """Per-user question limits: in memory, or in Redis when replicas share them."""

    def allow(self, key: str) -> bool: ...


@dataclass(frozen=True)
class Inbound:
    """One message from a user, whatever the platform."""

    channel: str
    chat: str
    user: str
    text: str
    group: bool = False

    @property
    def key(self) -> ConversationKey:
        # Per chat and user: two sellers in one group never share a pending question.
        return ConversationKey(self.channel, self.chat, self.user)


class Dialogue:
    """Answer inbound messages with the engine, within limits, and run admin commands."""

    def __init__(self, engine: Engine, service: KnowledgeService, store: Store,
                 settings: Settings, admins: frozenset[str],
                 clock: Callable[[], float] = time.time, limiter: Limiter | None = None) -> None:
        self.engine = engine
        self.service = service
        self.store = store
        self.admins = admins
        self.console = AdminConsole(service, store, clock,
                                    announce=getattr(store, "announce_reload", None))
        self.limiter = limiter or RateLimiter(settings.user_rate_limit, settings.user_rate_window)
        self.clock = clock
        self._pool = ThreadPoolExecutor(ENGINE_THREADS, thread_name_prefix="engine")
        metrics.track_index_size(lambda: len(service.current.kb.entries))

    async def ask(self, message: Inbound) -> Reply | str:
        """Reply to a question: a Reply, or a plain notice (rate limited, empty /ask)."""
        started = time.perf_counter()
        if not message.text.strip():
            result: Reply | str = EMPTY_ASK
        elif not self.limiter.allow(f"{message.channel}:{message.user}"):
            result = RATE_LIMITED
        else:
            # The encoder is CPU work: keep it off the event loop so other chats go on.
            result = await self._run(self.engine.reply, message.key, message.text)
        _observe(message.channel, result, started)
        return result

    async def choose(self, message: Inbound, option_id: str) -> Reply | None:
        """Apply a button pick; None when the option is stale."""
        started = time.perf_counter()
        reply = await self._run(self.engine.choose, message.key, option_id)
        if reply is not None:
            _observe(message.channel, reply, started)
        return reply

    def is_admin(self, user: str) -> bool:
        return user in self.admins

    async def admin(self, message: Inbound, command: str, argument: str) -> str:
        """Run an admin command for an admin in a private chat; refuse everyone else."""
        if command not in ADMIN_COMMANDS:
            raise ValueError(f"unknown admin command {command!r}")
        if not self.is_admin(message.user):
            return REFUSAL
        if message.group:
            return GROUP_NOTICE  # statistics and errors are not for a seller group's eyes
        return await self._run(self.console.run, command, argument)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def feedback(self, message: Inbound, entry_id: str, useful: bool) -> bool:
        """Record 👍/👎 on an answered entry; False if the entry is unknown."""
        if entry_id not in self.service.current.kb.entries:
            return False
        self.store.record_feedback(self.clock(), message.channel, message.user, entry_id, useful)
        return True

    def help_text(self) -> str:
        """Describe what the bot knows, with example questions (plain text)."""
        kb = self.service.current.kb
        topics = list(dict.fromkeys(e.topic for e in kb.entries.values()))
        examples = [kb.entries[c.general[0]].title for c in kb.concepts if c.general][:4]
        lines = [
            "我根据整理过的知识库回答小红书卖家和博主的平台规则问题，每个回答都注明依据、来源和"
            "信息截至时间；问题有歧义时会先反问，不知道时会直说。",
            "",
            "我了解的主题：" + "、".join(topics),
            "",
            "可以这样问：",
            *[f"· {q}" for q in examples],
            "",
            "私聊直接发问题即可。群里请用 /ask 问题，或 @我，或回复我的消息。",
        ]
        return "\n".join(lines)


def _observe(channel: str, result: Reply | str, started: float) -> None:
    kind = result.kind if isinstance(result, Reply) else "notice"
    metrics.REPLIES.labels(kind, channel).inc()
    metrics.REPLY_SECONDS.labels(channel).observe(time.perf_counter() - started)
