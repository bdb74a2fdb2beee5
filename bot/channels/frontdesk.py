"""What every channel shares: the channel-neutral inbound message and the front desk.

A channel turns a platform event into an `Inbound`, hands it to `FrontDesk`, and renders the
`Reply` that comes back. Rate limits, admin checks, feedback, de-duplication and running the
blocking engine and store off the event loop live here once, so adding a channel is adding one
module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from bot.channels.admin import ADMIN_COMMANDS, AdminConsole
from bot.copy import say
from bot.dialogue.engine import ConversationKey, Engine
from bot.dialogue.replies import Reply, notice
from bot.dialogue.senses import language
from bot.kb.service import KnowledgeService
from bot.ops import metrics
from bot.store.base import Store
from bot.store.ratelimit import RateLimiter

T = TypeVar("T")
# Threads that run the (blocking) engine. Most of them wait, not work: the more questions are
# in flight, the larger the batches the encoder gathers (measured on 2 cores with all-new texts:
# 6 threads 50 replies/s, 12 → 61/s, 24 → 67/s).
ENGINE_THREADS = 32


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


class FrontDesk:
    """Answer inbound messages with the engine, within limits, and run admin commands."""

    def __init__(self, engine: Engine, service: KnowledgeService, store: Store,
                 limiter: RateLimiter, admins: frozenset[str],
                 announce: Callable[[], object] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.service = service
        self.store = store
        self.limiter = limiter
        self.admins = admins
        self.console = AdminConsole(service, store, clock, announce=announce)
        self.clock = clock
        self._pool = ThreadPoolExecutor(ENGINE_THREADS, thread_name_prefix="engine")
        metrics.track_index_size(lambda: len(service.current.kb.entries))

    async def ask(self, message: Inbound) -> Reply:
        """Reply to a question, or say why not (empty /ask, asking too fast)."""
        started = time.perf_counter()
        lang = language(message.text)
        if not message.text.strip():
            reply = Reply("notice", reason="empty_ask", message=say(lang, "empty_ask"),
                          lang=lang)
        elif not await self._run(self.limiter.allow, f"{message.channel}:{message.user}"):
            reply = Reply("notice", reason="rate_limited", message=say(lang, "rate_limited"),
                          lang=lang)
        else:
            # The encoder is CPU work: keep it off the event loop so other chats go on.
            reply = await self._run(self.engine.reply, message.key, message.text)
        _observe(message.channel, reply, started)
        return reply

    async def choose(self, message: Inbound, option_id: str) -> Reply | None:
        """Apply a button pick; None when the option is stale."""
        started = time.perf_counter()
        reply = await self._run(self.engine.choose, message.key, option_id)
        if reply is not None:
            _observe(message.channel, reply, started)
        return reply

    def is_admin(self, user: str) -> bool:
        return user in self.admins

    async def admin(self, message: Inbound, command: str, argument: str) -> Reply:
        """Run an admin command for an admin in a private chat; refuse everyone else."""
        if command not in ADMIN_COMMANDS:
            raise ValueError(f"unknown admin command {command!r}")
        if not self.is_admin(message.user):
            return notice(say("zh", "admin_only"))
        if message.group:
            # Statistics and errors are not for a seller group's eyes.
            return notice(say("zh", "admin_private_only"))
        return notice(await self._run(self.console.run, command, argument))

    async def feedback(self, message: Inbound, entry_id: str, useful: bool) -> bool:
        """Record one 👍/👎 per user on an entry this user was shown; False otherwise."""
        return await self._run(self._feedback, message, entry_id, useful)

    def _feedback(self, message: Inbound, entry_id: str, useful: bool) -> bool:
        if entry_id not in self.service.current.kb.entries:
            return False
        now = self.clock()
        if entry_id not in self.store.load_conversation(str(message.key), now).shown:
            return False  # a vote on an answer this user never got is no evidence
        self.store.record_feedback(now, message.channel, message.user, entry_id, useful)
        return True

    async def first_sighting(self, key: str, ttl: float) -> bool:
        """Tell whether a platform message id is new (off the loop: Redis may be slow)."""
        return await self._run(self.store.first_sighting, key, self.clock(), ttl)

    def help(self, lang: str = "zh") -> Reply:
        """Describe what the bot knows, with example questions."""
        return notice(help_text(self.service, lang), lang)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)


def help_text(service: KnowledgeService, lang: str = "zh") -> str:
    """The introduction every channel and the console show: what, how, and examples."""
    kb = service.current.kb
    topics = list(dict.fromkeys(e.topic for e in kb.entries.values()))
    general = [kb.entries[c.general[0]] for c in kb.concepts if c.general][:4]
    examples = [e.title_en if lang == "en" and e.title_en else e.title for e in general]
    lines = [say(lang, "intro"), "", say(lang, "topics", topics="、".join(topics)), "",
             say(lang, "try_asking"), *[f"· {q}" for q in examples], "",
             say(lang, "how_to_ask")]
    return "\n".join(lines)


def _observe(channel: str, reply: Reply, started: float) -> None:
    metrics.REPLIES.labels(reply.kind, channel).inc()
    metrics.REPLY_SECONDS.labels(channel).observe(time.perf_counter() - started)
